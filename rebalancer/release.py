"""When to release a held Job, where to, and the one PATCH that does it. Pure.

Each cycle the leader re-plans every held Job with the newest signals (core.deferral_jobs, the
planner the webhook held it with) and releases those whose best start is now. ``release-by`` is
hard: a Job at or past it (or that would be past it before the next cycle) is released at once,
whatever the signals say. A Job the planner cannot plan for (no fresh signal in any region it
may run in) is released too: waiting blind saves nothing anyone can show. A controller that
starts leading releases the overdue holds first, and the janitor (``release-overdue``) releases
only the overdue ones, with no signals at all.

A release is one JSON Patch: ``test`` that the hold is still ours (suspended, or our Kueue gate
still there), then ``suspend: false`` or the gate without our name, the region pinned in the pod
template (``nodeSelector`` on the region label, ANDed with whatever the template asks; allowed
while the Job is suspended and has never started) unless the user's template constrains the
region itself, and the record of the release. A Job changed in between fails the ``test``, and
nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from core.config import EcoPulseConfiguration
from core.deferral import DeferralRequest, ForecastTable, HourlyForecast, StartPlan, StartReason, plan_start
from core.deferral_hints import (
    KUEUE_GATE_ANNOTATION,
    DeferralIntent,
    JobFacts,
    gates_without_ours,
    overdue,
    read_intent,
    stamp,
)
from core.deferral_jobs import describe_plan, job_request, user_constrained
from core.deferral_memo import PassMemo
from core.model import (
    DECISION_ANNOTATION,
    PREFERRED_REGION_ANNOTATION,
    REGION_LABEL,
    RELEASED_AT_ANNOTATION,
    NamespaceInfo,
    PriceRates,
)
from core.podspec import as_mapping, placement_hints
from core.policy import PolicySet, resolve


class ReleaseReason(StrEnum):
    GREEN_HOUR = "green-hour"  # the planner's best start is now
    RELEASE_BY = "release-by"  # the hold reached its release-by
    NO_FORECAST = "no-forecast"  # nothing to plan with
    # The wait no longer pays: by less than deferral.minBenefitUsd, or not robustly to the
    # forecast's measured error (which the webhook, holding, could not know).
    NOT_WORTH_WAITING = "not-worth-waiting"
    CONTROLLER_START = "controller-start"  # a new leader found it overdue
    JANITOR = "janitor"  # release-overdue found it overdue


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    job: JobFacts
    reason: ReleaseReason
    region: str = ""  # "" when no region is pinned (no plan, or the user's template constrains it)
    plan: StartPlan | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Waiting:
    job: JobFacts
    plan: StartPlan


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleasePlan:
    releases: tuple[Release, ...]
    waiting: tuple[Waiting, ...]


def release_overdue(jobs: Iterable[JobFacts], *, now: datetime, reason: ReleaseReason) -> tuple[Release, ...]:
    """The janitor's rule (and a new leader's first): every held Job past release-by, unpinned."""
    return tuple(
        Release(job=job, reason=reason)
        for job in sorted(jobs, key=_order)
        if job.held and overdue(job, now=now)
    )


def _order(job: JobFacts) -> tuple[str, str]:
    return (job.namespace, job.name)


def intent_of(
    job: JobFacts, *, namespaces: Mapping[str, NamespaceInfo], policies: PolicySet
) -> tuple[DeferralIntent | None, Mapping[str, str]]:
    """The held Job's intent as the webhook resolved it (it wrote the deadline and run length on
    the Job), and the hints its namespace and policies give."""
    info = namespaces.get(job.namespace)
    own = {**info.hint_annotations, **job.annotations} if info is not None else dict(job.annotations)
    merged = resolve(policies, namespace=job.namespace, pod_labels=job.labels).annotations(own)
    intent = read_intent(job.annotations, merged, created_at=job.created_at or job.held_at or _EPOCH)
    return (intent if isinstance(intent, DeferralIntent) else None), merged


_RELEASE_REASONS = {
    StartReason.GREEN_HOUR: ReleaseReason.GREEN_HOUR,
    StartReason.RELEASE_BY: ReleaseReason.RELEASE_BY,
    StartReason.NO_FORECAST: ReleaseReason.NO_FORECAST,
    StartReason.NOT_WORTH_WAITING: ReleaseReason.NOT_WORTH_WAITING,
    StartReason.NOT_ROBUST: ReleaseReason.NOT_WORTH_WAITING,
}


@dataclass(frozen=True, slots=True)
class Asked:
    """What a held Job asks, as the planner takes it; None: its annotations no longer say."""

    request: DeferralRequest | None
    constrained: bool = False  # its template steers the region itself: a release pins none


def _asked(
    job: JobFacts,
    *,
    namespaces: Mapping[str, NamespaceInfo],
    policies: PolicySet,
    config: EcoPulseConfiguration,
    now: datetime,
) -> Asked:
    intent, merged = intent_of(job, namespaces=namespaces, policies=policies)
    if intent is None or intent.runtime_hours is None:
        return Asked(request=None)
    hints = placement_hints(merged, known_regions=config.known_regions).hints
    return Asked(
        request=job_request(job, intent, hints=hints, config=config, now=now),
        constrained=user_constrained(job),
    )


def plan_releases(
    jobs: Iterable[JobFacts],
    *,
    forecasts: Iterable[HourlyForecast],
    config: EcoPulseConfiguration,
    namespaces: Mapping[str, NamespaceInfo],
    policies: PolicySet,
    now: datetime,
    prices: Mapping[str, PriceRates] | None = None,
    memo: PassMemo[Asked] | None = None,
) -> ReleasePlan:
    """One cycle's decision over every held Job; the same answer whatever the input order.
    ``prices``: the price signal's live rates by region (the configuration's table elsewhere).
    ``memo``: what each held Job asks, and what their costs share (core.deferral_memo), kept from
    cycle to cycle by the caller."""
    slack = config.rebalancer.interval_seconds
    memo = memo if memo is not None else PassMemo()
    # Built once, shared by every Job of the pass.
    table = ForecastTable(forecasts, now=now, prices=prices, extras=memo.extras(config))
    releases: list[Release] = []
    waiting: list[Waiting] = []
    seen: list[str] = []
    for job in sorted(jobs, key=_order):
        if not job.held:
            continue
        seen.append(job.uid)
        if overdue(job, now=now, slack_seconds=slack):
            # Forced by the clock: no region pinned, its pods are placed as any others (/mutate).
            releases.append(Release(job=job, reason=ReleaseReason.RELEASE_BY))
            continue
        info = namespaces.get(job.namespace)
        asked = memo.jobs.get(
            job,
            (info, policies, config),
            lambda held: _asked(held, namespaces=namespaces, policies=policies, config=config, now=now),
        )
        if asked.request is None:
            # Its annotations no longer say what it asked (edited by hand): nothing to plan.
            releases.append(Release(job=job, reason=ReleaseReason.NO_FORECAST))
            continue
        plan = plan_start(
            asked.request,
            forecasts=table,
            now=now,
            config=config,
            min_benefit_usd=config.deferral.min_benefit_usd,
            confidence_z=config.deferral.confidence_z,
        )
        if not plan.release_now:
            waiting.append(Waiting(job=job, plan=plan))
            continue
        reason = _RELEASE_REASONS.get(plan.reason, ReleaseReason.GREEN_HOUR)
        # Pinned only where the planner chose with what it knew of every allowed region.
        pinned = reason is not ReleaseReason.NO_FORECAST and not asked.constrained
        releases.append(Release(job=job, reason=reason, region=plan.region if pinned else "", plan=plan))
    memo.jobs.keep_only(seen)
    return ReleasePlan(releases=tuple(releases), waiting=tuple(waiting))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def release_patch(job: JobFacts, *, release: Release, now: datetime) -> list[dict[str, object]]:
    """The one JSON Patch of a release (see the module doc)."""
    ops: list[dict[str, object]] = []
    annotations_path = "/metadata/annotations"
    if job.kueue:
        gate_path = f"{annotations_path}/{_escape(KUEUE_GATE_ANNOTATION)}"
        ops.append({"op": "test", "path": gate_path, "value": job.annotations[KUEUE_GATE_ANNOTATION]})
        remaining = gates_without_ours(job.gates)
        if remaining:
            ops.append({"op": "replace", "path": gate_path, "value": remaining})
        else:
            ops.append({"op": "remove", "path": gate_path})
    else:
        ops.append({"op": "test", "path": "/spec/suspend", "value": True})
        ops.append({"op": "replace", "path": "/spec/suspend", "value": False})
    if release.region:
        spec = as_mapping(job.template.get("spec"))
        if spec.get("nodeSelector") is None:
            ops.append(
                {
                    "op": "add",
                    "path": "/spec/template/spec/nodeSelector",
                    "value": {REGION_LABEL: release.region},
                }
            )
        else:
            ops.append(
                {
                    "op": "add",
                    "path": f"/spec/template/spec/nodeSelector/{_escape(REGION_LABEL)}",
                    "value": release.region,
                }
            )
        # The pods' own webhook call then leaves them as placed (no second opinion on a region).
        template_annotations = as_mapping(job.template.get("metadata")).get("annotations")
        if template_annotations is None:
            if job.template.get("metadata") is None:
                ops.append(
                    {
                        "op": "add",
                        "path": "/spec/template/metadata",
                        "value": {"annotations": {PREFERRED_REGION_ANNOTATION: release.region}},
                    }
                )
            else:
                ops.append(
                    {
                        "op": "add",
                        "path": "/spec/template/metadata/annotations",
                        "value": {PREFERRED_REGION_ANNOTATION: release.region},
                    }
                )
        else:
            ops.append(
                {
                    "op": "add",
                    "path": f"/spec/template/metadata/annotations/{_escape(PREFERRED_REGION_ANNOTATION)}",
                    "value": release.region,
                }
            )
    ops.append(
        {
            "op": "add",
            "path": f"{annotations_path}/{_escape(RELEASED_AT_ANNOTATION)}",
            "value": stamp(now),
        }
    )
    ops.append(
        {
            "op": "add",
            "path": f"{annotations_path}/{_escape(DECISION_ANNOTATION)}",
            "value": describe(release)[:250],
        }
    )
    return ops


def describe(release: Release) -> str:
    where = f" into {release.region}" if release.region else ""
    why = f"; {describe_plan(release.plan)}" if release.plan is not None else ""
    return f"released ({release.reason}){where}{why}"


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
