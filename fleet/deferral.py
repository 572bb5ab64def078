"""Deferrable Jobs across a Karmada fleet: which member and which hour a held Job gets, and the two
writes of its release. Pure.

The planner is one cluster's, ``core.deferral`` (through ``core.deferral_jobs.plan_job``): a fleet
only narrows the regions it may choose to those of members that are Ready now and that the Job's
binding (its PropagationPolicy's placement) allows; in the chosen region the member is the first
Ready one by name. A member not Ready at the chosen hour is therefore never chosen: every pass
re-plans, and the release happens in a pass.

The hold is two admission answers on the Karmada API server (docs/fleet.md, "Deferrable Jobs"):
the Job suspended (``spec.suspend``, one cluster's hold) and its ResourceBinding's scheduling
suspended (``spec.suspension.scheduling``), so Karmada's scheduler never picks a cluster for it.
The release is, in this order, the Job's suspension lifted (:func:`job_release_patch`), then the
binding pinned to the member and its scheduling resumed (:func:`binding_release_patch`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from core.collector import collections_paused
from core.config import EcoPulseConfiguration
from core.deferral import DeferralRequest, ForecastTable, HourlyForecast, StartPlan, StartReason, plan_start
from core.deferral_bindings import FLEET_MEMBER_ANNOTATION, JobBinding, escape
from core.deferral_hints import DeferralIntent, JobFacts, overdue, read_intent, stamp
from core.deferral_jobs import describe_plan, job_request
from core.deferral_memo import PassMemo
from core.model import DECISION_ANNOTATION, HELD_AT_ANNOTATION, RELEASED_AT_ANNOTATION, PlacementHints
from core.podspec import placement_hints
from fleet.records import MemberCluster


def ready_members(clusters: Iterable[MemberCluster], binding: JobBinding | None) -> dict[str, str]:
    """region -> the member a release into that region goes to: Ready, with a region, allowed by
    the binding's placement; the first by name (the same answer whatever the input order)."""
    found: dict[str, str] = {}
    for cluster in clusters:
        if not cluster.ready or not cluster.region:
            continue
        allowed = binding.allowed_clusters if binding is not None else None
        if allowed is not None and cluster.name not in allowed:
            continue
        current = found.get(cluster.region)
        if current is None or cluster.name < current:
            found[cluster.region] = cluster.name
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetRelease:
    job: JobFacts
    binding: JobBinding | None  # None: Karmada has not made it yet (the Job write only)
    reason: StartReason
    member: str = ""  # "" unpinned: Karmada places it by the user's policy
    region: str = ""
    plan: StartPlan | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetWaiting:
    job: JobFacts
    member: str
    plan: StartPlan


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetReleasePlan:
    releases: tuple[FleetRelease, ...]
    waiting: tuple[FleetWaiting, ...]
    # Released Jobs whose binding is still suspended (the second write failed): finish them.
    unfinished: tuple[FleetRelease, ...] = ()


def _released(job: JobFacts) -> bool:
    """We held it once and recorded a release."""
    return HELD_AT_ANNOTATION in job.annotations and RELEASED_AT_ANNOTATION in job.annotations


def _order(job: JobFacts) -> tuple[str, str]:
    return (job.namespace, job.name)


def _narrowed(hints: PlacementHints, regions: Iterable[str]) -> PlacementHints:
    """The Job's hints, its allowed regions crossed with those a Ready member serves."""
    usable = frozenset(regions)
    allowed = usable if hints.allowed_regions is None else hints.allowed_regions & usable
    return dataclasses.replace(hints, allowed_regions=allowed)


@dataclass(frozen=True, slots=True)
class _Prepared:
    intent: DeferralIntent | None  # None: not plannable (edited by hand)
    request: DeferralRequest | None


class RequestMemo:
    """What each held Job asks (its intent and planner request), read once and reused
    (core.deferral_memo.PassMemo, with the costs the Jobs share) while the Job record, its
    namespace's annotations, the configuration and the regions of its usable members stay the
    same. Without it every pass re-reads the same JSON of every held Job; with it a pass only plans."""

    def __init__(self) -> None:
        self.memo: PassMemo[_Prepared] = PassMemo()

    def prepare(
        self,
        job: JobFacts,
        *,
        namespace_annotations: Mapping[str, str],
        config: EcoPulseConfiguration,
        regions: frozenset[str],
        now: datetime,
    ) -> _Prepared:
        return self.memo.jobs.get(
            job,
            (namespace_annotations, config, regions),
            lambda held: _prepare(
                held, namespace_annotations=namespace_annotations, config=config, regions=regions, now=now
            ),
        )

    def keep_only(self, uids: set[str]) -> None:
        self.memo.jobs.keep_only(uids)


_NO_ANNOTATIONS: Mapping[str, str] = {}


def _prepare(
    job: JobFacts,
    *,
    namespace_annotations: Mapping[str, str],
    config: EcoPulseConfiguration,
    regions: frozenset[str],
    now: datetime,
) -> _Prepared:
    own = {**namespace_annotations, **job.annotations}
    read = read_intent(job.annotations, own, created_at=job.created_at or job.held_at or now)
    intent = read if isinstance(read, DeferralIntent) and read.runtime_hours is not None else None
    request = None
    if intent is not None and regions:
        hints = _narrowed(placement_hints(own, known_regions=config.known_regions).hints, regions)
        request = job_request(job, intent, hints=hints, config=config, now=now)
    return _Prepared(intent=intent, request=request)


@collections_paused()  # a burst of allocation and no cycle (fleet.planner.plan's reason)
def plan_fleet_releases(
    jobs: Iterable[JobFacts],
    *,
    bindings: Mapping[tuple[str, str], JobBinding],
    clusters: Iterable[MemberCluster],
    forecasts: Iterable[HourlyForecast],
    config: EcoPulseConfiguration,
    namespace_annotations: Mapping[str, Mapping[str, str]],
    now: datetime,
    slack_seconds: float,
    memo: RequestMemo | None = None,
) -> FleetReleasePlan:
    """One pass over the held Jobs on the Karmada API server; the same answer whatever the order.

    ``slack_seconds`` is the pass interval: a Job whose release-by falls before the next pass goes
    now. ``bindings`` by (namespace, Job name). ``memo``: kept from pass to pass by the caller.
    """
    members = tuple(clusters)
    memo = memo if memo is not None else RequestMemo()
    table = ForecastTable(forecasts, now=now, extras=memo.memo.extras(config))
    usable: dict[frozenset[str] | None, dict[str, str]] = {}  # the binding's allowed clusters -> members
    seen: set[str] = set()
    releases: list[FleetRelease] = []
    waiting: list[FleetWaiting] = []
    unfinished: list[FleetRelease] = []
    for job in sorted(jobs, key=_order):
        binding = bindings.get((job.namespace, job.name))
        if binding is not None and binding.job_uid and job.uid and binding.job_uid != job.uid:
            binding = None  # a binding of an earlier Job of that name, not yet collected
        if not job.held:
            if _released(job) and binding is not None and binding.scheduling_suspended:
                member = job.annotations.get(FLEET_MEMBER_ANNOTATION, "")
                unfinished.append(
                    FleetRelease(job=job, binding=binding, reason=StartReason.GREEN_HOUR, member=member)
                )
            continue
        allowed = binding.allowed_clusters if binding is not None else None
        by_region = usable.get(allowed)
        if by_region is None:
            by_region = usable[allowed] = ready_members(members, binding)
        seen.add(job.uid)
        prepared = memo.prepare(
            job,
            namespace_annotations=namespace_annotations.get(job.namespace, _NO_ANNOTATIONS),
            config=config,
            regions=frozenset(by_region),
            now=now,
        )
        forced = overdue(job, now=now, slack_seconds=slack_seconds)
        if prepared.intent is None:
            # Its annotations no longer say what it asked (edited by hand): nothing to plan.
            releases.append(FleetRelease(job=job, binding=binding, reason=StartReason.NO_FORECAST))
            continue
        if prepared.request is None:
            # No Ready member it may run in: waiting is all there is, until release-by.
            if forced:
                releases.append(FleetRelease(job=job, binding=binding, reason=StartReason.RELEASE_BY))
            continue
        plan = plan_start(
            prepared.request,
            forecasts=table,
            now=now,
            config=config,
            min_benefit_usd=config.deferral.min_benefit_usd,
            confidence_z=config.deferral.confidence_z,
        )
        if not plan.release_now and not forced:
            waiting.append(FleetWaiting(job=job, member=by_region.get(plan.region, ""), plan=plan))
            continue
        reason = StartReason.RELEASE_BY if forced and not plan.release_now else plan.reason
        # Forced before the planned hour: the region best now. Unknown signals: no pin.
        region = plan.region if plan.release_now else plan.now_region
        # A pin needs the binding still suspended by us (the hold's second half): else Karmada
        # has placed it already, and the release lifts the Job's suspension where it is.
        pinnable = binding is not None and binding.scheduling_suspended
        member = by_region.get(region, "") if pinnable and plan.reason is not StartReason.NO_FORECAST else ""
        releases.append(
            FleetRelease(
                job=job,
                binding=binding,
                reason=reason,
                member=member,
                region=region if member else "",
                plan=plan,
            )
        )
    memo.keep_only(seen)
    return FleetReleasePlan(releases=tuple(releases), waiting=tuple(waiting), unfinished=tuple(unfinished))


def overdue_releases(
    jobs: Iterable[JobFacts],
    *,
    bindings: Mapping[tuple[str, str], JobBinding],
    now: datetime,
    reason: StartReason,
) -> tuple[FleetRelease, ...]:
    """The janitor's rule (and a new leader's first): every held Job past release-by, unpinned; and
    every released Job whose binding is still suspended, finished."""
    found: list[FleetRelease] = []
    for job in sorted(jobs, key=_order):
        binding = bindings.get((job.namespace, job.name))
        if job.held and overdue(job, now=now):
            found.append(FleetRelease(job=job, binding=binding, reason=reason))
        elif not job.held and _released(job) and binding is not None and binding.scheduling_suspended:
            member = job.annotations.get(FLEET_MEMBER_ANNOTATION, "")
            found.append(FleetRelease(job=job, binding=binding, reason=reason, member=member))
    return tuple(found)


def describe(release: FleetRelease) -> str:
    where = f" into {release.member} ({release.region})" if release.member else " (unpinned)"
    why = f"; {describe_plan(release.plan)}" if release.plan is not None else ""
    return f"released ({release.reason}){where}{why}"


def job_release_patch(release: FleetRelease, *, now: datetime) -> list[dict[str, object]]:
    """The first write: the Job's suspension lifted while the hold is still ours (``test``), and the
    record. Its binding is still suspended, so nothing runs anywhere yet."""
    path = "/metadata/annotations"
    ops: list[dict[str, object]] = [
        {"op": "test", "path": "/spec/suspend", "value": True},
        {"op": "replace", "path": "/spec/suspend", "value": False},
        {"op": "add", "path": f"{path}/{escape(RELEASED_AT_ANNOTATION)}", "value": stamp(now)},
        {"op": "add", "path": f"{path}/{escape(DECISION_ANNOTATION)}", "value": describe(release)[:250]},
    ]
    if release.member:
        ops.append(
            {"op": "add", "path": f"{path}/{escape(FLEET_MEMBER_ANNOTATION)}", "value": release.member}
        )
    return ops
