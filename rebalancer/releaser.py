"""The one place a held Job is released: the PATCH, its Event, its metrics and its log line.

The release loop (each leader cycle), a new leader's first cycle and the janitor
(``python -m rebalancer release-overdue``) all release through :meth:`JobReleaser.release`.
Releasing only ever undoes our own hold, so it happens in dry run too: a dry-run rebalancer
never has the webhook hold anything (webhook.admission.job), and what was held while it ran
live is released as planned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from kubernetes import client
from prometheus_client import Counter, Gauge, Histogram

from core.deferral_hints import DeferralIntent, JobFacts, read_intent
from core.kube.events import REQUEST_TIMEOUT_SECONDS, EventRecorder, EventRequest, raw_write
from core.logs import log_line
from rebalancer.release import Release, ReleaseReason, Waiting, describe, release_patch

log = logging.getLogger("ecopulse.rebalancer")

HELD_JOBS = Gauge("ecopulse_deferral_held_jobs", "Jobs held for a better hour, as the last cycle saw them.")
HOLD_DURATION = Histogram(
    "ecopulse_deferral_hold_duration_seconds",
    "How long a released Job was held (held-at to release).",
    buckets=(60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 16 * 3600, 24 * 3600, 48 * 3600),
)
RELEASES = Counter(
    "ecopulse_deferral_releases_total",
    "Held Jobs released, by reason (green-hour, release-by, no-forecast, controller-start, janitor).",
    ["reason"],
)
RELEASE_FAILURES = Counter(
    "ecopulse_deferral_release_failures_total",
    "Releases the API server refused or did not answer, by HTTP status ('none': no answer; 422: the "
    "Job changed under us, so the hold was no longer ours to undo).",
    ["status"],
)
OVERDUE_HOLDS = Gauge(
    "ecopulse_deferral_overdue_holds",
    "Held Jobs past their release-by, as the last cycle saw them (the alert's signal).",
)
DEADLINE_MISSES = Counter(
    "ecopulse_deferral_deadline_misses_total",
    "Deferrable Jobs that finished after their deadline, by namespace.",
    ["namespace"],
)
AVOIDED_GRAMS = Counter(
    "ecopulse_deferral_carbon_avoided_grams_total",
    "Emissions avoided by waiting for the planned hour instead of starting at once, as the last plan "
    "that waited expected them, counted at a green-hour release, by namespace.",
    ["namespace"],
)
AVOIDED_USD = Counter(
    "ecopulse_deferral_cost_avoided_usd_total",
    "The net benefit of waiting (carbon value, price, egress, latency) the last plan that waited "
    "expected, counted at a green-hour release, by namespace.",
    ["namespace"],
)
FORECAST_AGE = Gauge(
    "ecopulse_deferral_forecast_age_seconds",
    "Age of the forecast the release loop plans with, by region (from its newest observation).",
    ["region"],
)
FORECAST_HORIZON = Gauge(
    "ecopulse_deferral_forecast_horizon_hours",
    "How far ahead the forecast the release loop plans with reaches, by region (0: the current value only).",
    ["region"],
)
for _reason in ReleaseReason:
    RELEASES.labels(reason=str(_reason))

REPORTING_CONTROLLER = "ecopulse.io/rebalancer"


class JobReleaser:
    """Releases held Jobs (PATCH), posts their Events, counts. Never raises on an API error."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        reporting_instance: str,
        clock: Callable[[], datetime],
        post_events: bool = True,
    ) -> None:
        """``post_events`` False: the janitor, whose ServiceAccount may only get, list and patch Jobs."""
        self._batch = client.BatchV1Api(api_client)
        self._recorder = (
            EventRecorder(
                api_client, reporting_controller=REPORTING_CONTROLLER, reporting_instance=reporting_instance
            )
            if post_events
            else None
        )
        self._clock = clock
        self._announced: set[str] = set()  # uids whose Held Event this process posted
        self._finished: set[str] = set()  # uids whose finish was judged against the deadline
        # uid -> (grams, USD) waiting was expected to save, by the last plan that waited
        self._expected: dict[str, tuple[float, float]] = {}
        self._leading_since = clock()

    def release(self, release: Release) -> bool:
        job = release.job
        now = self._clock()
        patch = release_patch(job, release=release, now=now)

        def call() -> object:
            return self._batch.patch_namespaced_job(
                job.name,
                job.namespace,
                patch,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )

        answer = raw_write(call)
        fields: dict[str, object] = {
            "namespace": job.namespace,
            "job": job.name,
            "decision": "released" if answer.accepted else "release-failed",
            "reason": str(release.reason),
            "region": release.region,
            "status": answer.status,
        }
        if not answer.accepted:
            RELEASE_FAILURES.labels(status=str(answer.status or "none")).inc()
            log_line(log, logging.WARNING, "job release", {**fields, "detail": answer.message})
            return False
        RELEASES.labels(reason=str(release.reason)).inc()
        held_at = job.held_at
        if held_at is not None:
            HOLD_DURATION.observe(max(0.0, (now - held_at).total_seconds()))
        expected = self._expected.pop(job.uid, None)
        if expected is not None and release.reason is ReleaseReason.GREEN_HOUR:
            AVOIDED_GRAMS.labels(namespace=job.namespace).inc(max(0.0, expected[0]))
            AVOIDED_USD.labels(namespace=job.namespace).inc(max(0.0, expected[1]))
        log_line(log, logging.INFO, "job release", fields)
        self._post(
            EventRequest(
                namespace=job.namespace,
                involved=_reference(job),
                reason="Released",
                message=f"{describe(release)}; at {now:%Y-%m-%d %H:%M}Z"[:1000],
                action="Release",
            )
        )
        return True

    def leading(self, now: datetime) -> None:
        """This process leads from ``now``: it judges the finishes from then on (no double count)."""
        self._leading_since = now

    def observe(self, jobs: Iterable[JobFacts], waiting: Iterable[Waiting], *, now: datetime) -> None:
        """Each cycle: the Held Events of new holds, the gauges, and deadline misses."""
        held = 0
        overdue = 0
        plans = {w.job.uid: w for w in waiting}
        for uid, wait in plans.items():
            self._expected[uid] = (wait.plan.carbon_avoided_g, wait.plan.expected_net_benefit_usd)
        seen: set[str] = set()
        for job in jobs:
            seen.add(job.uid)
            if job.held:
                held += 1
                by = job.release_by
                if by is None or now >= by:
                    overdue += 1
                if job.uid not in self._announced:
                    self._announced.add(job.uid)
                    plan = plans.get(job.uid)
                    planned = (
                        f"; planned start {plan.plan.start:%Y-%m-%d %H:%M}Z in {plan.plan.region}"
                        if plan is not None
                        else ""
                    )
                    by_text = f"{by:%Y-%m-%d %H:%M}Z" if by is not None else "?"
                    self._post(
                        EventRequest(
                            namespace=job.namespace,
                            involved=_reference(job),
                            reason="Held",
                            message=f"held for a greener hour, released by {by_text} at the latest{planned}",
                            action="Hold",
                        )
                    )
            self._judge_finish(job)
        self._expected = {uid: value for uid, value in self._expected.items() if uid in seen}
        HELD_JOBS.set(held)
        OVERDUE_HOLDS.set(overdue)

    def _judge_finish(self, job: JobFacts) -> None:
        if job.finished_at is None or job.uid in self._finished:
            return
        self._finished.add(job.uid)
        if job.finished_at < self._leading_since:
            return  # finished before we led: judged by whoever led then
        intent = read_intent(job.annotations, {}, created_at=job.created_at or job.finished_at)
        if not isinstance(intent, DeferralIntent):
            return
        deadline = intent.deadline
        if job.finished_at > deadline:
            DEADLINE_MISSES.labels(namespace=job.namespace).inc()
            self._post(
                EventRequest(
                    namespace=job.namespace,
                    involved=_reference(job),
                    reason="DeadlineMissed",
                    message=f"finished at {job.finished_at:%Y-%m-%d %H:%M:%S}Z, after its deadline "
                    f"{deadline:%Y-%m-%d %H:%M:%S}Z",
                    event_type="Warning",
                    action="Observe",
                )
            )

    def _post(self, request: EventRequest) -> None:
        if self._recorder is not None:
            self._recorder.post(request)


def _reference(job: JobFacts) -> dict[str, str]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job.name,
        "namespace": job.namespace,
        "uid": job.uid,
    }
