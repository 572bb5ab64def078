"""One fleet pass: snapshot of the watch caches -> plan -> write within the plan's limits -> report.

Only the leader acts, and it checks its leadership (the elector's local view, no API call) before
each write. The plan has applied the limits already, and a write whose outcome is unknown is never
replaced by another move: a limit is used up by an attempt, not by a success.

What gets written, per decision (never anything for opted-out policies or policies without a
Deployment):

- place / move: the policy's ``spec.placement`` and its ``ecopulse.io/decision`` annotation (a move
  also ``ecopulse.io/moved-at``, for the cooldown) in one conditional merge patch, and an Event;
- move with the placement already as desired: a WorkloadRebalancer for a fresh schedule;
- keep / refuse: the decision annotation only, and only when it changed (plus an Event then).

In dry run the same requests go to the API server as server-side dry runs (validated, never
persisted), and one log line per change plus ``ecopulse_fleet_writes_total{result="dry-run"}``
report what would have changed.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from core.accounting import Interval, RunningPod
from core.config import EcoPulseConfiguration
from core.managed import unmanaged
from core.model import DECISION_ANNOTATION, SignalSnapshot
from fleet import metrics
from fleet.karmada import WriteOutcome, WriteResult
from fleet.planner import (
    Decision,
    FleetPlan,
    FleetSnapshot,
    MoveStep,
    Outcome,
    Reason,
    Window,
    decision_annotation,
    explain,
    placement_patch,
    plan,
)
from fleet.records import (
    AVAILABLE_SINCE_ANNOTATION,
    MOVED_AT_ANNOTATION,
    MOVING_TO_ANNOTATION,
    SAVED_SCHEDULING_ANNOTATION,
    PolicyRecord,
    workload_subject,
)

log = logging.getLogger("ecopulse.fleet")
# spec.placement.replicaScheduling as a move's first step leaves it (compact JSON, as records keep it)
OUR_DUPLICATED = '{"replicaSchedulingType":"Duplicated"}'

# A pass logs at most this many decisions one per line; the rest are counted in the summary.
MAX_DECISION_LINES = 200
NEVER_WRITTEN = frozenset(
    {Reason.SYSTEM_NAMESPACE, Reason.NAMESPACE_OPTED_OUT, Reason.OPTED_OUT, Reason.NO_WORKLOAD}
)
EVENT_REASONS = {
    Outcome.PLACE: "FleetPlaced",
    Outcome.MOVE: "FleetMoved",
    Outcome.KEEP: "FleetKept",
    Outcome.REFUSE: "FleetMoveRefused",
}


class FleetWriter(Protocol):
    """What a pass writes through: fleet.karmada.KarmadaApi, or a fake speaking its results."""

    def write_policy(
        self,
        policy: PolicyRecord,
        *,
        placement: dict[str, object] | None,
        annotations: dict[str, str | None],
        dry_run: bool,
    ) -> WriteResult: ...

    def request_fresh_schedule(
        self, policy: PolicyRecord, workloads: tuple[str, ...], *, dry_run: bool
    ) -> WriteResult: ...

    def post_event(
        self, policy: PolicyRecord, *, reason: str, message: str, event_type: str = "Normal"
    ) -> bool: ...


class DeferralRunner(Protocol):
    """fleet.deferral_loop.DeferralTurn: the held Jobs' turn of a pass."""

    def run(
        self,
        *,
        config: EcoPulseConfiguration,
        signals: SignalSnapshot,
        now: datetime,
        is_leader: Callable[[], bool],
    ) -> int: ...

    def lost_leadership(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PassInputs:
    config: Callable[[], EcoPulseConfiguration]
    signals: Callable[[], SignalSnapshot]
    snapshot: Callable[[], FleetSnapshot]
    synced: Callable[[], bool]
    is_leader: Callable[[], bool]
    api: FleetWriter
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    own_namespace: str = ""
    accountant: FleetAccountant | None = None
    deferral: DeferralRunner | None = None


@dataclass(slots=True)
class PassReport:
    outcome: str
    decisions: Tally[tuple[str, str]] = field(default_factory=Tally)
    writes: Tally[str] = field(default_factory=Tally)
    changes: int = 0  # placement writes wanted (dry run: not made)
    plan: FleetPlan | None = None


def run_pass(inputs: PassInputs) -> PassReport:
    return metrics.PASS.run(
        lambda: _pass(inputs),
        failed=lambda: PassReport(outcome="error"),
        log=log,
        message="fleet pass failed",
    )


def _pass(inputs: PassInputs) -> PassReport:
    if not inputs.is_leader():
        if inputs.accountant is not None:
            inputs.accountant.reset()
        if inputs.deferral is not None:
            inputs.deferral.lost_leadership()
        return PassReport(outcome="not-leader")
    if not inputs.synced():
        log.warning("fleet caches not synced yet; skipping this pass")
        return PassReport(outcome="not-synced")
    config = inputs.config()
    signals = inputs.signals()
    snapshot = inputs.snapshot()
    now = inputs.clock()
    if inputs.deferral is not None:
        # First: a release-by is hard, whatever the placement plan does after.
        inputs.deferral.run(config=config, signals=signals, now=now, is_leader=inputs.is_leader)
    if inputs.accountant is not None:
        inputs.accountant.tick(snapshot, signals=signals, config=config)
    result = plan(snapshot, signals=signals, config=config, now=now, own_namespace=inputs.own_namespace)
    dry_run = config.fleet.dry_run
    report = PassReport(outcome="completed", decisions=result.tally(), plan=result)
    for (outcome, reason), count in report.decisions.items():
        metrics.DECISIONS.labels(outcome=outcome, reason=reason).inc(count)
    for index, decision in enumerate(result.decisions):
        if decision.reason in NEVER_WRITTEN:
            continue
        if not inputs.is_leader():
            log.warning("leadership lost mid-pass; the remaining writes are not made")
            report.outcome = "leadership-lost"
            break
        written = _apply(inputs.api, decision, now=now, dry_run=dry_run, prices=signals.price_sources())
        if written is not None:
            report.writes[written] += 1
        if decision.writes_placement or decision.reschedule:
            report.changes += 1
        if index < MAX_DECISION_LINES:
            _log(decision, dry_run=dry_run, written=written, prices=signals.prices_note())
    metrics.PENDING_CHANGES.set(report.changes)
    log.info(
        "fleet pass",
        extra={
            "decision": "pass",
            "policies": result.policies_considered,
            "decisions": {f"{o}/{r}": n for (o, r), n in sorted(report.decisions.items())},
            "writes": dict(report.writes),
            "changes": report.changes,
            "dry_run": dry_run,
        },
    )
    return report


def _apply(
    api: FleetWriter, decision: Decision, *, now: datetime, dry_run: bool, prices: str = ""
) -> str | None:
    """Write what the decision needs, through the one writer. The result, or None if nothing was due."""
    policy = decision.policy
    annotation = decision_annotation(decision, prices=prices)
    space = metrics.namespace_label(decision.namespace_key)
    if decision.reschedule:
        result = api.request_fresh_schedule(policy, decision.workloads, dry_run=dry_run)
        metrics.WRITES.labels(kind="workloadrebalancer", result=result.outcome.value, namespace=space).inc()
        _count_move(decision, result, space)
        if result.outcome is WriteOutcome.WRITTEN:
            api.post_event(policy, reason=EVENT_REASONS[decision.outcome], message=explain(decision))
        return result.outcome.value
    annotations: dict[str, str | None] = {DECISION_ANNOTATION: annotation}
    placement = None
    if decision.writes_placement and decision.desired is not None:
        restore = None
        if decision.step is MoveStep.EXPAND:
            # Where to, and the policy's own replicaScheduling, for the second step to put back (a
            # move replacing one under way keeps what that one saved: ours is Duplicated).
            annotations[MOVING_TO_ANNOTATION] = decision.target_cluster
            annotations[SAVED_SCHEDULING_ANNOTATION] = (
                policy.saved_scheduling
                if policy.moving_to is not None and policy.saved_scheduling is not None
                else policy.placement.replica_scheduling
            )
            annotations[AVAILABLE_SINCE_ANNOTATION] = None
        elif decision.step is MoveStep.SETTLE and policy.moving_to is not None:
            restore = policy.saved_scheduling or ""
            annotations[MOVING_TO_ANNOTATION] = None  # a merge patch's null deletes the key
            annotations[SAVED_SCHEDULING_ANNOTATION] = None
            annotations[AVAILABLE_SINCE_ANNOTATION] = None
        placement = placement_patch(decision.desired, policy.placement, restore=restore)
        if decision.outcome is Outcome.MOVE and decision.reason is not Reason.NEW_CLUSTER_AVAILABLE:
            annotations[MOVED_AT_ANNOTATION] = now.astimezone(UTC).isoformat()
    elif decision.abandon:
        # Someone else's placement stands: only our move's annotations go, and the Duplicated
        # scheduling our first step wrote gives way to the policy's own (a merge patch of that key).
        for key in (MOVING_TO_ANNOTATION, SAVED_SCHEDULING_ANNOTATION, AVAILABLE_SINCE_ANNOTATION):
            annotations[key] = None
        if policy.placement.replica_scheduling == OUR_DUPLICATED and policy.saved_scheduling is not None:
            saved = json.loads(policy.saved_scheduling) if policy.saved_scheduling else None
            placement = {"replicaScheduling": saved if isinstance(saved, dict) else None}
    elif decision.window is not None:
        # The new copy's stability window opens (now) or closes: the next leader reads it here too.
        opened = now.astimezone(UTC).isoformat() if decision.window is Window.OPEN else None
        annotations[AVAILABLE_SINCE_ANNOTATION] = opened
    elif policy.annotations.get(DECISION_ANNOTATION) == annotation:
        return None  # decided as last time: nothing to write
    result = api.write_policy(policy, placement=placement, annotations=annotations, dry_run=dry_run)
    metrics.WRITES.labels(kind="policy", result=result.outcome.value, namespace=space).inc()
    if decision.outcome is Outcome.MOVE:
        _count_move(decision, result, space)
    if result.outcome is WriteOutcome.WRITTEN:
        api.post_event(
            policy,
            reason=EVENT_REASONS[decision.outcome],
            message=explain(decision),
            event_type="Normal",
        )
    return result.outcome.value


def _count_move(decision: Decision, result: WriteResult, space: str) -> None:
    metrics.MOVES.labels(result=result.outcome.value, namespace=space).inc()
    if result.outcome is WriteOutcome.WRITTEN and decision.benefit is not None:
        metrics.MOVE_NET_BENEFIT.labels(namespace=space).inc(max(0.0, decision.benefit.net_usd))


def _log(decision: Decision, *, dry_run: bool, written: str | None, prices: str = "") -> None:
    b = decision.benefit
    log.info(
        "fleet decision" if not dry_run or written is None else "fleet decision (dry run: not changed)",
        extra={
            "policy": decision.policy.key,
            "kind": decision.policy.kind,
            "decision": decision.outcome.value,
            "reason": decision.reason.value,
            "from_clusters": list(decision.source_clusters),
            "to_cluster": decision.target_cluster,
            "replicas": decision.replicas,
            "net_benefit_usd": None if b is None else round(b.net_usd, 6),
            "avoided_grams": None if b is None else round(b.avoided_grams, 3),
            "dry_run": dry_run,
            "write": written,
            "why": explain(decision),
            "prices": prices,  # which prices decided: source and age (core.signals.prices)
        },
    )


# --- accounting ------------------------------------------------------------------------------------


def running_replicas(snapshot: FleetSnapshot) -> Iterable[RunningPod]:
    """One RunningPod per replica Karmada scheduled, in its member cluster's region; namespaces that
    opted out (or are the system's) are left out, as one cluster's accounting leaves them out."""
    for workload in snapshot.workloads.values():
        if unmanaged(workload_subject(workload), namespace=snapshot.namespaces.get(workload.namespace)):
            continue
        binding = snapshot.bindings.get(("Deployment", workload.namespace, workload.name))
        if binding is None:
            continue
        for cluster_name, replicas in binding.clusters:
            member = snapshot.clusters.get(cluster_name)
            region = member.region if member is not None else None
            pod = RunningPod(
                namespace=workload.namespace,
                region=region,
                capacity_type=workload.demand.capacity_type,
                demand=workload.demand,
            )
            for _ in range(max(0, replicas)):
                yield pod


class FleetAccountant:
    """Per-namespace carbon and cost of the fleet's scheduled replicas, integrated between passes."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._interval = Interval(monotonic)

    def reset(self) -> None:
        self._interval.reset()
        metrics.ACCRUED.forget()

    def tick(
        self, snapshot: FleetSnapshot, *, signals: SignalSnapshot, config: EcoPulseConfiguration
    ) -> None:
        try:
            ledger = self._interval.accrue(running_replicas(snapshot), signals=signals, config=config)
        except Exception:
            log.exception("fleet accounting failed; the interval is not counted")
            self.reset()
            return
        metrics.ACCRUED.record(ledger, namespace_label=metrics.namespace_label)
