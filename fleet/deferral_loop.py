"""The deferral turn of a fleet pass: plan every held Job on the Karmada API server (fleet.deferral,
on core.deferral), release through the one choke point (fleet.karmada.KarmadaApi.release_job),
post the Events and count. Only the leader runs it; a failure is logged, never raised."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from core.config import EcoPulseConfiguration
from core.deferral import StartReason
from core.deferral_bindings import JobBinding
from core.deferral_hints import JobFacts
from core.forecast_book import ForecastBook
from core.logs import log_line
from core.model import SignalSnapshot
from fleet import metrics
from fleet.deferral import FleetRelease, RequestMemo, describe, overdue_releases, plan_fleet_releases
from fleet.karmada import WriteOutcome, WriteResult
from fleet.records import MemberCluster

log = logging.getLogger("ecopulse.fleet")


class JobWriter(Protocol):
    """fleet.karmada.KarmadaApi, as the deferral turn uses it."""

    def release_job(
        self, release: FleetRelease, *, now: datetime
    ) -> tuple[WriteResult, WriteResult | None]: ...

    def post_job_event(self, job: JobFacts, *, reason: str, message: str, action: str) -> bool: ...


@dataclass(slots=True, kw_only=True)
class DeferralTurn:
    jobs: Callable[[], Mapping[str, JobFacts]]
    bindings: Callable[[], Iterable[JobBinding]]
    clusters: Callable[[], Iterable[MemberCluster]]
    namespace_annotations: Callable[[], Mapping[str, Mapping[str, str]]]
    api: JobWriter
    # The Jobs' and bindings' watches have listed: an empty view is not "nothing held".
    synced: Callable[[], bool] = lambda: True
    started: bool = False  # this process, leading, has released the overdue holds once
    _announced: set[str] = field(default_factory=set)
    _expected: dict[str, float] = field(default_factory=dict)
    _memo: RequestMemo = field(default_factory=RequestMemo)
    # The grid's recent hours and the forecasts' error records (core.forecast_book), as the
    # rebalancer's release loop keeps them: fed every pass, leader or not, so a new leader judges
    # waits by a record as warm as the process is old.
    book: ForecastBook = field(default_factory=ForecastBook)
    _observed: SignalSnapshot | None = None

    def lost_leadership(self) -> None:
        self.started = False

    def observe(self, *, signals: SignalSnapshot, now: datetime) -> None:
        """This pass's snapshot into the book; never raises (a failure keeps the last forecasts)."""
        self._observed = signals
        try:
            self.book.update(signals, now=now)
        except Exception:
            log.exception("fleet forecast book update failed; held Jobs are planned with the last forecasts")

    def run(
        self,
        *,
        config: EcoPulseConfiguration,
        signals: SignalSnapshot,
        now: datetime,
        is_leader: Callable[[], bool],
    ) -> int:
        """One turn; how many Jobs were released. Never raises."""
        if not self.synced():
            log.warning("the Jobs' and bindings' watches have not listed yet; no release this pass")
            return 0
        try:
            return self._run(config=config, signals=signals, now=now, is_leader=is_leader)
        except Exception:
            log.exception("fleet deferral turn failed; held Jobs wait for the next pass (or the janitor)")
            return 0

    def _run(
        self,
        *,
        config: EcoPulseConfiguration,
        signals: SignalSnapshot,
        now: datetime,
        is_leader: Callable[[], bool],
    ) -> int:
        if self._observed is not signals:
            self.observe(signals=signals, now=now)
        jobs = list(self.jobs().values())
        bindings = {b.job_key: b for b in self.bindings()}
        released = 0
        done: set[str] = set()
        if not self.started:
            # A new leader's first act: whatever is overdue goes now, before any planning.
            for release in overdue_releases(
                jobs, bindings=bindings, now=now, reason=StartReason.CONTROLLER_START
            ):
                if not is_leader():
                    return released
                if self._release(release, now=now):
                    released += 1
                    done.add(release.job.uid)
            self.started = True
        decided = plan_fleet_releases(
            (job for job in jobs if job.uid not in done),
            bindings=bindings,
            clusters=self.clusters(),
            forecasts=self.book.latest,
            config=config,
            namespace_annotations=self.namespace_annotations(),
            now=now,
            slack_seconds=config.fleet.interval_seconds,
            memo=self._memo,
        )
        for release in (*decided.unfinished, *decided.releases):
            if not is_leader():
                break
            if self._release(release, now=now):
                released += 1
        held = overdue = 0
        waiting = {w.job.uid: w for w in decided.waiting}
        for uid, waited in waiting.items():
            self._expected[uid] = waited.plan.carbon_avoided_g
        for job in jobs:
            if not job.held or job.uid in done:
                continue
            held += 1
            by = job.release_by
            overdue += by is None or now >= by
            if job.uid not in self._announced:
                self._announced.add(job.uid)
                wait = waiting.get(job.uid)
                planned = (
                    f"; planned start {wait.plan.start:%Y-%m-%d %H:%M}Z in {wait.member}" if wait else ""
                )
                by_text = f"{by:%Y-%m-%d %H:%M}Z" if by is not None else "?"
                self.api.post_job_event(
                    job,
                    reason="Held",
                    message=f"held for a greener member and hour, released by {by_text} at the latest"
                    + planned,
                    action="Hold",
                )
        metrics.HELD_JOBS.set(held)
        metrics.OVERDUE_HOLDS.set(overdue)
        return released

    def _release(self, release: FleetRelease, *, now: datetime) -> bool:
        job = release.job
        job_result, binding_result = self.api.release_job(release, now=now)
        fields: dict[str, object] = {
            "namespace": job.namespace,
            "job": job.name,
            "reason": str(release.reason),
            "member": release.member,
            "region": release.region,
            "job_write": job_result.outcome.value,
            "binding_write": binding_result.outcome.value if binding_result is not None else None,
        }
        if job_result.outcome is not WriteOutcome.WRITTEN:
            metrics.RELEASE_FAILURES.labels(object="job", result=job_result.outcome.value).inc()
            log_line(log, logging.WARNING, "fleet job release", {**fields, "decision": "release-failed"})
            return False
        if binding_result is not None and binding_result.outcome is not WriteOutcome.WRITTEN:
            # The Job is released, its binding still suspended: the next pass (or the janitor) finishes it.
            metrics.RELEASE_FAILURES.labels(object="binding", result=binding_result.outcome.value).inc()
        pinned = (
            binding_result is not None and binding_result.outcome is WriteOutcome.WRITTEN and release.member
        )
        if job.held:
            metrics.RELEASES.labels(reason=str(release.reason), pinned=str(bool(pinned)).lower()).inc()
            expected = self._expected.pop(job.uid, None)
            if expected is not None and release.reason is StartReason.GREEN_HOUR:
                metrics.AVOIDED_BY_WAITING.labels(namespace=metrics.namespace_label(job.namespace)).inc(
                    max(0.0, expected)
                )
            self.api.post_job_event(
                job,
                reason="Released",
                message=f"{describe(release)}; at {now:%Y-%m-%d %H:%M}Z"[:1000],
                action="Release",
            )
        log_line(log, logging.INFO, "fleet job release", {**fields, "decision": "released"})
        return True
