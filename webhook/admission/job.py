"""Decide whether to hold a Job at its CREATE: the one place a hold is made. Pure.

A Job that asks for a deadline (core.deferral_hints) is held when, and only when, the planner's
best start beats starting now by the configured minimum and someone will release it: the
rebalancer runs live (``rebalancer.dryRun: false``) and its Lease is fresh. Holding is
``spec.suspend: true`` (the Job controller then creates no pods), or for a Job Kueue manages
our name in ``kueue.x-k8s.io/admission-gated-by`` (Kueue owns ``suspend``). Either way the hold
is recorded in annotations: ``ecopulse.io/held-at``, ``ecopulse.io/release-by`` (deadline − run
− safety margin, hard), the decision, and the resolved deadline and run length.

Anything else admits the Job unchanged, with a warning where the user asked for something we
could not honour. Never a hold on a Job created suspended, with ``spec.managedBy`` set, or on a
bad value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from core.config import EcoPulseConfiguration
from core.deferral import StartPlan, StartReason
from core.deferral_hints import (
    GATE_NAME,
    KUEUE_GATE_ANNOTATION,
    DeferralIntent,
    DeferralProblem,
    NotDeferred,
    job_facts,
    read_intent,
    stamp,
)
from core.deferral_jobs import describe_plan, plan_job, snapshot_forecasts
from core.forecast_book import ForecastBook
from core.managed import Unmanaged, subject_of, unmanaged
from core.model import (
    DECISION_ANNOTATION,
    HELD_AT_ANNOTATION,
    RELEASE_BY_ANNOTATION,
    NamespaceInfo,
    SignalSnapshot,
)
from core.podspec import placement_hints
from core.policy import EMPTY_POLICY_SET, PolicySet, resolve
from webhook.admission.patch import Unpatchable, annotation_patch, escape
from webhook.admission.review import AdmissionRequest, PatchOperation, UnreadableObject, encode_patch
from webhook.pods import effective_annotations

JOB_KIND = "batch/v1/Job"


class JobSkip(StrEnum):
    """Why a Job is admitted unchanged before any deferral is read."""

    NOT_CREATE = "not-create"
    NOT_A_JOB = "not-a-job"
    NO_OBJECT = "no-object"
    UNREADABLE_OBJECT = "unreadable-object"
    NOT_DEFERRABLE = "not-deferrable"  # no deadline asked for: most Jobs
    POLICY_OFF = "policy-off"
    DEFERRAL_OFF = "deferral-off"  # deferral.enabled: false
    UNPATCHABLE = "unpatchable-job"
    ALREADY_HELD = "already-held"  # carries our hold already (a copy of a held Job)
    HELD = "held"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOutcome:
    held: bool
    reason: JobSkip | NotDeferred | Unmanaged
    patch: list[PatchOperation] = field(default_factory=list)
    patch_base64: str = ""
    warnings: list[str] = field(default_factory=list)
    plan: StartPlan | None = None
    kueue: bool = False
    policy: str = ""


def _skip(reason: JobSkip | NotDeferred | Unmanaged, *warnings: str, policy: str = "") -> JobOutcome:
    return JobOutcome(
        held=False, reason=reason, warnings=[f"eco-pulse: {w}" for w in warnings], policy=policy
    )


def decide_job(
    request: AdmissionRequest,
    *,
    signals: SignalSnapshot,
    config: EcoPulseConfiguration,
    now: datetime,
    releaser_live: bool,
    own_namespace: str = "",
    namespace_info: NamespaceInfo | None = None,
    policies: PolicySet = EMPTY_POLICY_SET,
    releaser_dry_run: bool | None = None,
    book: ForecastBook | None = None,
) -> JobOutcome:
    """``releaser_dry_run``: whether the releasing app runs dry (default: the rebalancer's
    ``dryRun``; fleet mode's on the Karmada API server, webhook setting ECOPULSE_RELEASER=fleet).
    ``book``: the process's forecast book (core.forecast_book), whose records judge the wait;
    None: the signals' own forecasts, with no record."""
    if request.operation != "CREATE":
        return _skip(JobSkip.NOT_CREATE)
    if request.kind != JOB_KIND or request.sub_resource:
        return _skip(JobSkip.NOT_A_JOB)
    try:
        job = request.object
    except UnreadableObject:
        return _skip(JobSkip.UNREADABLE_OBJECT)
    if job is None:
        return _skip(JobSkip.NO_OBJECT)
    facts = job_facts(job)
    namespace = request.namespace or facts.namespace
    merged_own = effective_annotations(job, namespace_info)
    exempt = unmanaged(
        subject_of(job, namespace=namespace, annotations=merged_own),
        namespace=namespace_info,
        own_namespace=own_namespace,
    )
    if exempt is not None:
        return _skip(exempt)
    resolution = resolve(policies, namespace=namespace, pod_labels=facts.labels)
    if resolution.opts_out(merged_own):
        return _skip(JobSkip.POLICY_OFF, policy=resolution.refs)
    inherited = resolution.annotations(merged_own)
    intent = read_intent(facts.annotations, inherited, created_at=now)
    refs = resolution.refs
    if intent is None:
        return _skip(JobSkip.NOT_DEFERRABLE, policy=refs)
    if isinstance(intent, DeferralProblem):
        return _skip(intent.reason, f"{intent.message}; the Job runs now", policy=refs)
    if HELD_AT_ANNOTATION in facts.annotations or GATE_NAME in facts.gates:
        return _skip(JobSkip.ALREADY_HELD, policy=refs)
    if facts.suspended and not facts.kueue:
        return _skip(NotDeferred.USER_SUSPENDED, policy=refs)
    if facts.managed_by:
        return _skip(NotDeferred.MANAGED_BY, policy=refs)
    if intent.runtime_hours is None:
        return _skip(
            NotDeferred.NO_RUNTIME,
            "no ecopulse.io/expected-runtime-hours: nothing to plan, the Job runs now",
            policy=refs,
        )
    if not config.deferral.enabled:
        return _skip(JobSkip.DEFERRAL_OFF, policy=refs)
    dry_run = config.rebalancer.dry_run if releaser_dry_run is None else releaser_dry_run
    if dry_run or not releaser_live:
        # Nobody would release it: a dry-run rebalancer never holds, and a stale Lease means none runs.
        return _skip(NotDeferred.NO_RELEASER, policy=refs)
    hints = placement_hints(inherited, known_regions=config.known_regions).hints
    # The forecasts, error record and confidence the release loop judges the wait by
    # (core.forecast_book): a hold it would undo at its next pass with the same signals is never
    # made, and while the record is unknown nothing is held (unknown: do nothing).
    plan = plan_job(
        facts,
        intent,
        hints=hints,
        forecasts=book.judge(signals, now=now) if book is not None else snapshot_forecasts(signals, now=now),
        config=config,
        now=now,
        confidence_z=config.deferral.confidence_z,
        prices=signals.price_table(),
    )
    if plan.release_now:
        return _skip(_NOT_HELD.get(plan.reason, NotDeferred.NOT_WORTH_WAITING), policy=refs)
    try:
        patch = hold_patch(
            job, intent=intent, plan=plan, now=now, release_by_at=plan.latest_start, kueue=facts.kueue
        )
    except Unpatchable as error:
        return _skip(JobSkip.UNPATCHABLE, f"{error}; not held", policy=refs)
    return JobOutcome(
        held=True,
        reason=JobSkip.HELD,
        patch=patch,
        patch_base64=encode_patch(patch),
        plan=plan,
        kueue=facts.kueue,
        policy=refs,
    )


_NOT_HELD = {
    StartReason.NO_FORECAST: NotDeferred.NO_FORECAST,
    StartReason.RELEASE_BY: NotDeferred.DEADLINE_TOO_CLOSE,
    StartReason.NOT_ROBUST: NotDeferred.NOT_ROBUST,
}


def hold_patch(
    job: Mapping[str, object],
    *,
    intent: DeferralIntent,
    plan: StartPlan,
    now: datetime,
    release_by_at: datetime,
    kueue: bool,
) -> list[PatchOperation]:
    """suspend (or our Kueue gate) and the hold's annotations; never an existing member replaced
    but our own gate appended to the user's."""
    ops: list[PatchOperation] = []
    wanted = {
        HELD_AT_ANNOTATION: stamp(now),
        RELEASE_BY_ANNOTATION: stamp(release_by_at),
        DECISION_ANNOTATION: f"held: {describe_plan(plan)}"[:250],
        **intent.resolved,
    }
    metadata = job.get("metadata")
    if not isinstance(metadata, Mapping):
        raise Unpatchable("Job has no metadata")
    annotations = metadata.get("annotations")
    existing_gates = annotations.get(KUEUE_GATE_ANNOTATION) if isinstance(annotations, Mapping) else None
    if kueue:
        if isinstance(existing_gates, str) and existing_gates.strip():
            path = f"/metadata/annotations/{escape(KUEUE_GATE_ANNOTATION)}"
            ops.append({"op": "replace", "path": path, "value": f"{existing_gates},{GATE_NAME}"})
        else:
            wanted[KUEUE_GATE_ANNOTATION] = GATE_NAME
    else:
        if not isinstance(job.get("spec"), Mapping):
            raise Unpatchable("Job has no spec")
        # add replaces a member that is there (suspend: false, the default written out).
        ops.append({"op": "add", "path": "/spec/suspend", "value": True})
    ops.extend(annotation_patch(job, wanted))
    return ops
