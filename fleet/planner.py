"""One planning pass over a Karmada fleet: where each managed policy's workloads should run, and
whether moving them there pays. Pure: records in, decisions out.

Member clusters are regions (``MemberCluster.region``). For each workload a policy propagates, the
same ``core.placement.rank_regions`` the webhook uses ranks the configured regions for one replica
(its pod template's demand, its ``ecopulse.io/`` hints over its namespace's); a policy's clusters are
ranked by the cost of all its replicas there, eligible regions only, ties by name. The desired
placement is Karmada's: one ``clusterAffinities`` term per eligible cluster, best first (Karmada
fails over down the list), named ``ecopulse-<rank>`` so that a new best cluster changes the term
the scheduler last used and Karmada reschedules. Divided replicas with static weights get one first
term over the clusters ``core.placement.choose_regions`` picks, weighted as the webhook weighs
regions, then the failover terms.

Where the replicas run now comes from the ResourceBinding. A move (from there to the desired
distribution) is proposed only when its net benefit through ``core.economics`` (price, carbon,
egress to the data region, latency, migration of the replicas that move) exceeds
``fleet.minNetBenefitUsd``, the policy's cooldown is over and the pass's limits allow it (best
moves first). A policy whose replicas already run where we want them is kept, and nothing is
written: rewriting weights would make Karmada reshuffle replicas for nothing.

Faults come before carbon. Replicas in a member Karmada reports NotReady count as not running and
are moved to the best Ready member whatever the net benefit; a move settles only on fresh evidence
(its new copy available for ``fleet.moveStabilitySeconds`` in a member Ready throughout), goes back
at once when its new member turns NotReady, and is dropped when someone else rewrote the placement
between its two steps. A policy that propagates a Job is never rewritten.
"""

from __future__ import annotations

import json
from collections import Counter as Tally
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from operator import attrgetter

from core.collector import collections_paused
from core.config import EcoPulseConfiguration, FleetSettings
from core.economics import NetBenefit, RegionCost, migration_cost_usd
from core.managed import unmanaged as never_managed
from core.model import OPT_OUT_LABEL, NamespaceInfo, PlacementHints, SignalSnapshot, Subject
from core.placement import (
    Ineligible,
    PlacementChoice,
    Ranking,
    RegionAssessment,
    choose_regions,
    rank_regions,
)
from core.podspec import placement_hints
from fleet.records import (
    AFFINITY_PREFIX,
    API_VERSION_APPS,
    DEPLOYMENT,
    AffinityTerm,
    BindingRecord,
    MemberCluster,
    Placement,
    PolicyRecord,
    ReplicaMode,
    WorkloadRecord,
    workload_subject,
)


class Outcome(StrEnum):
    PLACE = "place"  # not scheduled yet: write the ranked placement (nothing moves)
    KEEP = "keep"  # the replicas already run where we would put them
    MOVE = "move"  # moving pays: write the placement, Karmada moves the replicas
    REFUSE = "refuse"  # we would move, or place, but may not: see the reason


class Reason(StrEnum):
    BEST_CLUSTER = "in-best-cluster"
    NEW_WORKLOAD = "not-scheduled-yet"
    PAYS = "net-benefit-above-minimum"
    # core.managed.Unmanaged's names, for the objects fleet mode never touches
    SYSTEM_NAMESPACE = "system-namespace"
    NAMESPACE_OPTED_OUT = "namespace-opted-out"
    OPTED_OUT = "opted-out"
    NO_WORKLOAD = "no-workload"
    NO_SIGNAL = "no-usable-signals"
    NO_ELIGIBLE_CLUSTER = "no-eligible-cluster"
    BELOW_MIN_BENEFIT = "below-min-net-benefit"
    COOLDOWN = "cooldown"
    LIMIT_PASS = "limit-pass"  # noqa: S105 - a reason, not a password
    LIMIT_NAMESPACE = "limit-namespace"
    MOVE_IN_PROGRESS = "move-in-progress"  # the new cluster's replicas are not all available yet
    NEW_CLUSTER_AVAILABLE = "new-cluster-available"  # the move's second step: the old copy may go
    MOVE_TIMED_OUT = "move-timed-out"  # the new replicas never all came up: back where they ran
    # Replicas (or a move's new copy) in a member Karmada reports NotReady count as not running:
    # they go to the best Ready member (or back where the old copy serves), whatever the net benefit.
    MEMBER_NOT_READY = "member-not-ready"
    # Someone else rewrote the placement while a move was under way: their edit stands, the move is
    # dropped (its annotations removed, the policy's own replicaScheduling put back).
    PLACEMENT_EDITED = "placement-edited"
    # The policy propagates a Job or CronJob: a placement change would restart started work elsewhere.
    RUNS_JOBS = "propagates-jobs"


class MoveStep(StrEnum):
    EXPAND = "expand"  # start the replicas in the new cluster, keep the old ones (Duplicated)
    SETTLE = "settle"  # the final placement: the old cluster's copy goes


class Window(StrEnum):
    """The stability window of a move's new copy (``ecopulse.io/available-since``)."""

    OPEN = "open"  # first seen all available in a Ready member: the window starts now
    CLOSE = "close"  # no longer all available there (or the member left Ready): start again later


@dataclass(frozen=True, slots=True, kw_only=True)
class DesiredPlacement:
    cluster_affinities: tuple[AffinityTerm, ...]
    static_weights: tuple[tuple[str, int], ...] = ()  # only for Divided replicas with static weights
    duplicated: bool = False  # a move's first step: every cluster of the first term runs all replicas

    def matches(self, current: Placement) -> bool:
        return (
            not current.has_cluster_affinity
            and current.cluster_affinities == self.cluster_affinities
            and (not self.static_weights or current.static_weights == self.static_weights)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    policy: PolicyRecord
    outcome: Outcome
    reason: Reason
    workloads: tuple[str, ...] = ()  # namespace/name of the Deployments the policy propagates
    replicas: int = 0
    ranked_clusters: tuple[str, ...] = ()  # eligible clusters, best first
    source_clusters: tuple[str, ...] = ()  # where the replicas run now
    target_cluster: str | None = None  # the best cluster
    desired: DesiredPlacement | None = None
    benefit: NetBenefit | None = None  # of the move, all replicas, over the horizon
    # The placement is already what we want and Karmada still runs the replicas elsewhere (a
    # failover term stuck, a steady division): a WorkloadRebalancer asks for a fresh schedule.
    reschedule: bool = False
    step: MoveStep | None = None  # for a move: which of its two steps this is
    window: Window | None = None  # the stability window's annotation to write, if any
    abandon: bool = False  # drop the move under way: its annotations, and our Duplicated scheduling

    @property
    def writes_placement(self) -> bool:
        return self.outcome in (Outcome.PLACE, Outcome.MOVE) and not self.reschedule

    @property
    def namespace_key(self) -> str:
        """The namespace the limits and metrics count this policy in."""
        return _namespace_key(self.policy, self.workloads)


@dataclass(slots=True)
class FleetPlan:
    decisions: list[Decision] = field(default_factory=list)
    policies_considered: int = 0

    def tally(self) -> Tally[tuple[str, str]]:
        return Tally((d.outcome.value, d.reason.value) for d in self.decisions)

    def refuse(
        self, policy: PolicyRecord, reason: Reason, *, workloads: tuple[str, ...] = (), replicas: int = 0
    ) -> None:
        """The policy is left as it is, for ``reason``: nothing to rank it by, nowhere to go."""
        self.decisions.append(
            Decision(
                policy=policy, outcome=Outcome.REFUSE, reason=reason, workloads=workloads, replicas=replicas
            )
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetSnapshot:
    """What one pass reads: the watch caches' contents at one instant."""

    clusters: Mapping[str, MemberCluster]
    policies: Iterable[PolicyRecord]
    workloads: Mapping[str, WorkloadRecord]  # namespace/name
    bindings: Mapping[tuple[str, str, str], BindingRecord]  # (kind, namespace, name) of the template
    namespaces: Mapping[str, NamespaceInfo]


# --- which workloads a policy propagates ---------------------------------------------------------


class _WorkloadIndex:
    """Deployments by the policy that claimed them, and unclaimed ones by namespace."""

    def __init__(self, workloads: Mapping[str, WorkloadRecord]) -> None:
        self.claimed: dict[tuple[str, str, str], list[WorkloadRecord]] = defaultdict(list)
        self.unclaimed: dict[str, dict[str, WorkloadRecord]] = defaultdict(dict)
        for workload in workloads.values():
            if workload.claimed_by is not None:
                self.claimed[workload.claimed_by].append(workload)
            else:
                self.unclaimed[workload.namespace][workload.name] = workload

    def of(self, policy: PolicyRecord) -> list[WorkloadRecord]:
        claimed = self.claimed.get(policy.ref)
        if claimed:
            return sorted(claimed, key=lambda w: w.key)
        found: dict[str, WorkloadRecord] = {}
        for selector in policy.selectors:
            if selector.api_version != API_VERSION_APPS or selector.kind != DEPLOYMENT:
                continue
            namespace = policy.namespace or selector.namespace
            spaces = [namespace] if namespace else sorted(self.unclaimed)
            for space in spaces:
                candidates = self.unclaimed.get(space, {})
                if selector.name is not None:
                    named = candidates.get(selector.name)
                    pool = [named] if named is not None else []
                else:
                    pool = list(candidates.values())
                for workload in pool:
                    if selector.selects(
                        api_version=API_VERSION_APPS,
                        kind=DEPLOYMENT,
                        namespace=workload.namespace,
                        name=workload.name,
                        labels=workload.labels,
                    ):
                        found[workload.key] = workload
        return [found[key] for key in sorted(found)]


# --- opt-out ---------------------------------------------------------------------------------------


def effective_annotations(
    policy: PolicyRecord, workload: WorkloadRecord, namespace: NamespaceInfo | None
) -> dict[str, str]:
    """ecopulse.io/ keys as the webhook reads them: namespace defaults, then the policy's, then the
    Deployment's and its pod template's (the most specific wins)."""
    base = dict(namespace.hint_annotations) if namespace is not None else {}
    return {**base, **policy.annotations, **workload.hint_annotations}


def unmanaged(
    policy: PolicyRecord,
    workloads: Sequence[WorkloadRecord],
    namespaces: Mapping[str, NamespaceInfo],
    *,
    own_namespace: str = "",
) -> Reason | None:
    """Why fleet mode never touches this policy: core.managed's rule, as in one cluster, asked of
    the policy in each namespace it reaches and of each workload it propagates (the policy's
    annotations over the Deployment's own, the namespace's defaults applied by the rule). A
    ClusterPropagationPolicy is left alone if any namespace it reaches opts out."""
    subjects = [
        Subject(namespace=space, labels={}, annotations=policy.annotations)
        for space in sorted({policy.namespace} if policy.namespace else set())
    ]
    # A workload with no label or ecopulse.io/ annotation of its own reads as the policy does in
    # its namespace: asked once per namespace (the answer is the same; most workloads are plain).
    plain = {policy.namespace} if policy.namespace else set()
    for workload in workloads:
        if not workload.hint_annotations and OPT_OUT_LABEL not in workload.labels:
            if workload.namespace in plain:
                continue
            plain.add(workload.namespace)
        subjects.append(workload_subject(workload, policy_annotations=policy.annotations))
    for subject in subjects:
        reason = never_managed(
            subject, namespace=namespaces.get(subject.namespace), own_namespace=own_namespace
        )
        if reason is not None:
            return Reason(reason.value)
    return None


# --- costs -----------------------------------------------------------------------------------------


def _add_costs(parts: Sequence[tuple[RegionCost, float]], region: str) -> RegionCost:
    """The cost of ``count`` replicas of each shape in one region (costs are linear in replicas)."""
    return RegionCost(
        region=region,
        hours=max(cost.hours for cost, _ in parts),
        energy_kwh=sum(c.energy_kwh * n for c, n in parts),
        carbon_g_per_kwh=parts[0][0].carbon_g_per_kwh,
        emissions_grams=sum(c.emissions_grams * n for c, n in parts),
        compute_usd=sum(c.compute_usd * n for c, n in parts),
        carbon_usd=sum(c.carbon_usd * n for c, n in parts),
        egress_usd=sum(c.egress_usd * n for c, n in parts),
        latency_penalty_usd=sum(c.latency_penalty_usd * n for c, n in parts),
    )


def _add_benefits(parts: Sequence[tuple[NetBenefit, float]], *, source: str, target: str) -> NetBenefit:
    return NetBenefit(
        source=source,
        target=target,
        price_savings_usd=sum(b.price_savings_usd * n for b, n in parts),
        carbon_value_usd=sum(b.carbon_value_usd * n for b, n in parts),
        migration_cost_usd=sum(b.migration_cost_usd * n for b, n in parts),
        egress_cost_usd=sum(b.egress_cost_usd * n for b, n in parts),
        latency_penalty_usd=sum(b.latency_penalty_usd * n for b, n in parts),
        avoided_grams=sum(b.avoided_grams * n for b, n in parts),
    )


def _policy_ranking(shapes: Sequence[tuple[Ranking, int]]) -> Ranking:
    """One ranking for all the replicas of a policy: a region is eligible only if it is for every
    workload; its cost and its benefit against the baseline are the sums over replicas."""
    if len(shapes) == 1:
        return shapes[0][0]  # scaling every region by the same count keeps the order and the weights
    first = shapes[0][0]
    assessments: list[RegionAssessment] = []
    for assessment in first.assessments:
        region = assessment.region
        per_shape = [(ranking.assessment(region), float(count)) for ranking, count in shapes]
        costs = [(a.cost, n) for a, n in per_shape if a is not None and a.cost is not None]
        benefits = [(a.versus_baseline, n) for a, n in per_shape if a is not None and a.versus_baseline]
        ineligible = next(
            (
                a.ineligible if a is not None else Ineligible.NO_SIGNAL
                for a, _ in per_shape
                if a is None or a.ineligible
            ),
            None,
        )
        if ineligible is None and len(costs) < len(per_shape):
            ineligible = Ineligible.NO_SIGNAL
        assessments.append(
            RegionAssessment(
                region=region,
                cost=_add_costs(costs, region) if len(costs) == len(per_shape) else None,
                versus_baseline=(
                    _add_benefits(benefits, source=first.baseline_region, target=region)
                    if len(benefits) == len(per_shape)
                    else None
                ),
                ineligible=ineligible,
                signal_age_seconds=assessment.signal_age_seconds,
                signal_observed_at=assessment.signal_observed_at,
            )
        )

    def order(a: RegionAssessment) -> tuple[int, float, str]:
        return (0 if a.eligible else 1, a.cost.total_usd if a.cost is not None else float("inf"), a.region)

    assessments.sort(key=order)
    return Ranking(
        baseline_region=first.baseline_region,
        hours=max(r.hours for r, _ in shapes),
        assessments=tuple(assessments),
        baseline_known=all(r.baseline_known for r, _ in shapes),
    )


# --- the desired placement -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Target:
    ranked_clusters: tuple[str, ...]
    desired: DesiredPlacement
    distribution: tuple[tuple[str, float], ...]  # (cluster, share of the replicas) the desired one gives


def _target(
    ranking: Ranking,
    *,
    clusters_by_region: Mapping[str, tuple[str, ...]],
    mode: ReplicaMode,
    config: EcoPulseConfiguration,
) -> _Target | None:
    ranked = tuple(c for a in ranking.eligible for c in clusters_by_region.get(a.region, ()))
    if not ranked:
        return None
    failover = tuple(
        AffinityTerm(name=f"{AFFINITY_PREFIX}{rank}", cluster_names=(cluster,))
        for rank, cluster in enumerate(ranked)
    )
    if mode is not ReplicaMode.STATIC_WEIGHTED:
        return _Target(
            ranked_clusters=ranked,
            desired=DesiredPlacement(cluster_affinities=failover),
            distribution=((ranked[0], 1.0),),
        )
    choice = choose_regions(ranking, config)
    preferred = (
        choice.preferred if isinstance(choice, PlacementChoice) else ((ranking.eligible[0].region, 100),)
    )
    weights = tuple(
        (cluster, weight) for region, weight in preferred for cluster in clusters_by_region.get(region, ())
    )
    if not weights:
        weights = ((ranked[0], 1),)
    group = tuple(cluster for cluster, _ in weights)
    rest = tuple(c for c in ranked if c not in group)
    terms = (
        AffinityTerm(name=f"{AFFINITY_PREFIX}0", cluster_names=group),
        *(
            AffinityTerm(name=f"{AFFINITY_PREFIX}{rank + 1}", cluster_names=(c,))
            for rank, c in enumerate(rest)
        ),
    )
    total = sum(weight for _, weight in weights)
    return _Target(
        ranked_clusters=ranked,
        desired=DesiredPlacement(cluster_affinities=terms, static_weights=weights),
        distribution=tuple((cluster, weight / total) for cluster, weight in weights),
    )


def _settled(target: _Target, cluster: str) -> _Target:
    """The final placement of a move to ``cluster``: that cluster first, then the others in rank order."""
    if cluster == target.ranked_clusters[0] or cluster not in target.ranked_clusters:
        return target
    ranked = (cluster, *(c for c in target.ranked_clusters if c != cluster))
    if target.desired.static_weights:
        return target  # a weighted group: the ranking's group stands
    terms = tuple(
        AffinityTerm(name=f"{AFFINITY_PREFIX}{rank}", cluster_names=(c,)) for rank, c in enumerate(ranked)
    )
    return _Target(
        ranked_clusters=ranked,
        desired=DesiredPlacement(cluster_affinities=terms),
        distribution=((cluster, 1.0),),
    )


def _expanded(target: _Target, sources: tuple[str, ...]) -> DesiredPlacement:
    """A move's first step: the best cluster and those the replicas run in now, Duplicated, so the
    old copies keep serving until the new ones are available; then the other clusters to fail over to."""
    best = target.ranked_clusters[0]
    group = (best, *(c for c in sources if c != best))
    rest = tuple(c for c in target.ranked_clusters if c not in group)
    terms = (
        AffinityTerm(name=f"{AFFINITY_PREFIX}0", cluster_names=group),
        *(
            AffinityTerm(name=f"{AFFINITY_PREFIX}{rank + 1}", cluster_names=(c,))
            for rank, c in enumerate(rest)
        ),
    )
    return DesiredPlacement(cluster_affinities=terms, duplicated=True)


# --- a move under way ------------------------------------------------------------------------------


def _move_progress(
    policy: PolicyRecord,
    running: Sequence[tuple[WorkloadRecord, BindingRecord | None]],
    sources: tuple[str, ...],
    target: _Target,
    snapshot: FleetSnapshot,
    *,
    settings: FleetSettings,
    now: datetime,
    workloads: tuple[str, ...],
) -> Decision | None:
    """A move whose first step is done: settle it on fresh evidence, roll it back, or wait.

    It settles only when every replica has been available in the new member for
    ``moveStabilitySeconds``, that member Ready (by Karmada) since before the window opened: a status
    reported for a NotReady member is not evidence, and a member that stopped answering inside the
    window would have been marked NotReady by then (docs/fleet.md, "Evidence"). If the new member is
    NotReady, the move goes back where the old copy still serves. None: it is NotReady and no Ready
    member runs the old copy, so the replicas are stranded and go to the best Ready member."""
    moving_to = policy.moving_to
    assert moving_to is not None
    replicas = sum(w.replicas for w, _ in running)
    first = policy.placement.cluster_affinities[:1]
    if not policy.placement.ours or not first or moving_to not in first[0].cluster_names:
        # Not the placement our first step wrote: a user's edit won (our write was conditional).
        return Decision(
            policy=policy,
            outcome=Outcome.KEEP,
            reason=Reason.PLACEMENT_EDITED,
            workloads=workloads,
            replicas=replicas,
            ranked_clusters=target.ranked_clusters,
            source_clusters=sources,
            target_cluster=moving_to,
            abandon=True,
        )
    wanted = replicas
    member = snapshot.clusters.get(moving_to)
    member_ready = member is not None and member.ready
    available = sum(b.available_in(moving_to) for _, b in running if b is not None) if member_ready else 0
    # Ranked clusters are Ready ones: a rollback only ever goes where the old copy can serve.
    back = next((c for c in target.ranked_clusters if c in sources and c != moving_to), None)
    settle_in, why, window = None, Reason.NEW_CLUSTER_AVAILABLE, None
    if available >= wanted and member is not None:
        since, ready_since = policy.available_since, member.ready_since
        if since is None or (ready_since is not None and ready_since > since):
            window = Window.OPEN  # first seen, or the member left Ready since: the window starts now
        elif ready_since is not None and (now - since).total_seconds() >= settings.move_stability_seconds:
            settle_in = moving_to
    else:
        if policy.available_since is not None:
            window = Window.CLOSE
        elapsed = (now - policy.moved_at).total_seconds() if policy.moved_at is not None else 0.0
        if not member_ready:
            if back is None:
                return None
            settle_in, why = back, Reason.MEMBER_NOT_READY
        elif elapsed > settings.move_timeout_seconds and back is not None:
            settle_in, why = back, Reason.MOVE_TIMED_OUT  # the old copy still serves
    if settle_in is None:
        return Decision(
            policy=policy,
            outcome=Outcome.KEEP,
            reason=Reason.MOVE_IN_PROGRESS,
            workloads=workloads,
            replicas=replicas,
            ranked_clusters=target.ranked_clusters,
            source_clusters=sources,
            target_cluster=moving_to,
            desired=target.desired,
            window=window,
        )
    settled = _settled(target, settle_in)
    return Decision(
        policy=policy,
        outcome=Outcome.MOVE,
        reason=why,
        workloads=workloads,
        replicas=replicas,
        ranked_clusters=settled.ranked_clusters,
        source_clusters=sources,
        target_cluster=settle_in,
        desired=settled.desired,
        step=MoveStep.SETTLE,
    )


# --- the pass --------------------------------------------------------------------------------------


# A pass allocates a few hundred thousand records and no cycle: at the default threshold the
# collector ran ~180 times inside it, 17 % of its CPU time (bench/fleet.py), as in the rebalancer.
@collections_paused()
def plan(
    snapshot: FleetSnapshot,
    *,
    signals: SignalSnapshot,
    config: EcoPulseConfiguration,
    now: datetime,
    own_namespace: str = "",
) -> FleetPlan:
    settings = config.fleet
    known = frozenset(config.region_names)
    clusters_by_region: dict[str, list[str]] = defaultdict(list)
    region_of: dict[str, str] = {}
    for cluster in sorted(snapshot.clusters.values(), key=lambda c: c.name):
        if cluster.region is not None and cluster.region in known:
            region_of[cluster.name] = cluster.region
            if cluster.ready:
                clusters_by_region[cluster.region].append(cluster.name)
    by_region = {region: tuple(names) for region, names in clusters_by_region.items()}
    ready = frozenset(c.name for c in snapshot.clusters.values() if c.ready)

    index = _WorkloadIndex(snapshot.workloads)
    hints_of: dict[tuple[tuple[str, str], ...], PlacementHints] = {}
    rankings: dict[tuple[int, int], Ranking] = {}
    targets: dict[tuple[object, ...], _Target | None] = {}
    result = FleetPlan()
    moves: list[_Proposal] = []
    moves_of: dict[tuple[int, str, int], _Move | None] = {}

    for policy in sorted(snapshot.policies, key=attrgetter("kind", "namespace", "name")):
        result.policies_considered += 1
        workloads = index.of(policy)
        keys = tuple(w.key for w in workloads)
        reason = unmanaged(policy, workloads, snapshot.namespaces, own_namespace=own_namespace)
        if reason is not None:
            result.refuse(policy, reason, workloads=keys)
            continue
        replicas = sum(w.replicas for w in workloads)
        if not workloads:
            result.refuse(policy, Reason.NO_WORKLOAD)
            continue
        if policy.selects_jobs:
            result.refuse(policy, Reason.RUNS_JOBS, workloads=keys, replicas=replicas)
            continue

        # One ranking per (demand, hints) shape: thousands of workloads share a few.
        shapes: list[tuple[Ranking, int]] = []
        shape_keys: list[tuple[int, int, int]] = []
        for workload in workloads:
            annotations = effective_annotations(policy, workload, snapshot.namespaces.get(workload.namespace))
            hints_key = tuple(sorted(annotations.items())) if annotations else ()
            hints = hints_of.get(hints_key)
            if hints is None:
                hints = hints_of[hints_key] = placement_hints(annotations, known_regions=known).hints
            key = (id(workload.demand), id(hints))
            ranking = rankings.get(key)
            if ranking is None:
                ranking = rankings[key] = rank_regions(
                    demand=workload.demand, hints=hints, signals=signals, config=config
                )
            shapes.append((ranking, max(workload.replicas, 1)))
            shape_keys.append((*key, workload.replicas if len(workloads) > 1 else 1))
        policy_ranking = _policy_ranking(shapes)
        if policy_ranking.best is None:
            result.refuse(policy, Reason.NO_SIGNAL, workloads=keys, replicas=replicas)
            continue
        target_key = (tuple(shape_keys), policy.placement.replica_mode)
        if target_key not in targets:
            targets[target_key] = _target(
                policy_ranking,
                clusters_by_region=by_region,
                mode=policy.placement.replica_mode,
                config=config,
            )
        target = targets[target_key]
        if target is None:
            result.refuse(policy, Reason.NO_ELIGIBLE_CLUSTER, workloads=keys, replicas=replicas)
            continue

        running = [
            (workload, snapshot.bindings.get((DEPLOYMENT, workload.namespace, workload.name)))
            for workload in workloads
        ]
        sources = tuple(sorted({c for _, b in running if b is not None for c, n in b.clusters if n > 0}))
        outcome, reason, benefit = Outcome.REFUSE, Reason.NO_SIGNAL, None
        if policy.moving_to is not None:
            progress = _move_progress(
                policy, running, sources, target, snapshot, settings=settings, now=now, workloads=keys
            )
            if progress is not None:
                result.decisions.append(progress)
                continue
        if not sources:
            # Karmada has not scheduled it yet: our placement is its first one, and nothing moves.
            outcome, reason = Outcome.PLACE, Reason.NEW_WORKLOAD
        else:
            move = _move(running, shapes, target, region_of, config, cache=moves_of)
            benefit = move.benefit if move is not None else None
            # Replicas in a NotReady member count as not running: availability comes before carbon,
            # so they go make-before-break to the best Ready member whatever the net benefit or the
            # cooldown (within the pass's limits, and first). Where Karmada's own failover acted
            # first, the binding no longer names that member and nothing is stranded here.
            stranded = any(c not in ready for c in sources)
            if stranded or move is None:
                pass  # move None: a cluster in an unknown region, or a grid we know nothing of now
            elif not move.changes:
                outcome, reason = Outcome.KEEP, Reason.BEST_CLUSTER
            elif not (move.benefit.net_usd > settings.min_net_benefit_usd and move.benefit.net_usd > 0):
                reason = Reason.BELOW_MIN_BENEFIT
            elif (
                policy.moved_at is not None
                and (now - policy.moved_at).total_seconds() < settings.cooldown_seconds
            ):
                reason = Reason.COOLDOWN
            else:
                reason = Reason.PAYS
            if stranded or reason is Reason.PAYS:
                # Decided after the limits, stranded replicas and then the best moves first.
                moves.append(
                    _Proposal(
                        policy=policy,
                        workloads=keys,
                        replicas=replicas,
                        target=target,
                        sources=sources,
                        benefit=benefit,
                        stranded=stranded,
                    )
                )
                continue
        result.decisions.append(
            Decision(
                policy=policy,
                outcome=outcome,
                reason=reason,
                workloads=keys,
                replicas=replicas,
                ranked_clusters=target.ranked_clusters,
                source_clusters=sources,
                target_cluster=target.ranked_clusters[0],
                desired=target.desired,
                benefit=benefit,
            )
        )

    result.decisions.extend(_within_limits(moves, settings))
    return result


@dataclass(frozen=True, slots=True, kw_only=True)
class _Move:
    benefit: NetBenefit  # of going from where the replicas run to the desired distribution
    changes: bool  # the desired distribution differs from where they run


def _move(
    running: Sequence[tuple[WorkloadRecord, BindingRecord | None]],
    shapes: Sequence[tuple[Ranking, int]],
    target: _Target,
    region_of: Mapping[str, str],
    config: EcoPulseConfiguration,
    *,
    cache: dict[tuple[int, str, int], _Move | None],
) -> _Move | None:
    """The move of a policy's replicas. The common case, one workload all of whose replicas run in
    one cluster, is linear in the replicas: priced once per (shape, cluster, target) for one replica."""
    if len(running) == 1:
        workload, binding = running[0]
        if binding is not None and len(binding.clusters) == 1 and binding.clusters[0][1] == workload.replicas:
            key = (id(shapes[0][0]), binding.clusters[0][0], id(target))
            if key not in cache:
                one = BindingRecord(
                    namespace="", kind=DEPLOYMENT, name="", clusters=((binding.clusters[0][0], 1),)
                )
                single = WorkloadRecord(
                    namespace="",
                    name="",
                    uid="",
                    labels={},
                    replicas=1,
                    max_unavailable="",
                    demand=workload.demand,
                    hint_annotations={},
                    claimed_by=None,
                )
                cache[key] = _priced([(single, one)], shapes, target, region_of, config)
            per_replica = cache[key]
            if per_replica is None:
                return None
            b, n = per_replica.benefit, float(workload.replicas)
            benefit = NetBenefit(
                source=binding.clusters[0][0],
                target=target.ranked_clusters[0],
                price_savings_usd=b.price_savings_usd * n,
                carbon_value_usd=b.carbon_value_usd * n,
                migration_cost_usd=b.migration_cost_usd * n,
                egress_cost_usd=b.egress_cost_usd * n,
                latency_penalty_usd=b.latency_penalty_usd * n,
                avoided_grams=b.avoided_grams * n,
            )
            return _Move(benefit=benefit, changes=per_replica.changes)
    return _priced(running, shapes, target, region_of, config)


def _priced(
    running: Sequence[tuple[WorkloadRecord, BindingRecord | None]],
    shapes: Sequence[tuple[Ranking, int]],
    target: _Target,
    region_of: Mapping[str, str],
    config: EcoPulseConfiguration,
) -> _Move | None:
    """Per workload and cluster: replicas there x the per-replica costs, now and as desired; the
    migration is priced per replica that starts somewhere new, as the rebalancer prices one move.
    None when a cluster's region or grid is unknown (unknown means do nothing)."""
    parts: list[tuple[NetBenefit, float]] = []
    changed = 0.0
    for (workload, binding), (ranking, _) in zip(running, shapes, strict=True):
        now_at = {c: float(n) for c, n in (binding.clusters if binding is not None else ()) if n > 0}
        if not now_at:
            continue
        wanted = {cluster: share * workload.replicas for cluster, share in target.distribution}
        costs: dict[str, RegionCost] = {}
        for cluster in now_at.keys() | wanted.keys():
            region = region_of.get(cluster)
            assessment = ranking.assessment(region) if region is not None else None
            if assessment is None or assessment.cost is None:
                return None
            costs[cluster] = assessment.cost
        source = _add_costs([(costs[c], n) for c, n in now_at.items()], "now")
        goal = _add_costs([(costs[c], n) for c, n in wanted.items()], "desired")
        starts = sum(max(0.0, n - now_at.get(c, 0.0)) for c, n in wanted.items())
        changed += sum(abs(wanted.get(c, 0.0) - now_at.get(c, 0.0)) for c in now_at.keys() | wanted.keys())
        heaviest = costs[max(now_at, key=lambda c: (now_at[c], c))]
        parts.append(
            (
                NetBenefit(
                    source="now",
                    target="desired",
                    price_savings_usd=source.compute_usd - goal.compute_usd,
                    carbon_value_usd=source.carbon_usd - goal.carbon_usd,
                    migration_cost_usd=starts * migration_cost_usd(heaviest, config),
                    egress_cost_usd=goal.egress_usd - source.egress_usd,
                    latency_penalty_usd=goal.latency_penalty_usd - source.latency_penalty_usd,
                    avoided_grams=source.emissions_grams - goal.emissions_grams,
                ),
                1.0,
            )
        )
    if not parts:
        return None
    sources = ",".join(sorted({c for _, b in running if b is not None for c, n in b.clusters if n > 0}))
    return _Move(
        benefit=_add_benefits(parts, source=sources, target=target.ranked_clusters[0]),
        # Less than half a replica apart: the rounding of weights, not a different place.
        changes=changed >= 0.5,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Proposal:
    policy: PolicyRecord
    workloads: tuple[str, ...]
    replicas: int
    target: _Target
    sources: tuple[str, ...]
    benefit: NetBenefit | None  # None: priced on an unknown grid (a stranded move goes anyway)
    stranded: bool = False  # replicas in a NotReady member: moved whatever the net benefit, first

    @property
    def net_usd(self) -> float:
        return self.benefit.net_usd if self.benefit is not None else 0.0


def _namespace_key(policy: PolicyRecord, workloads: tuple[str, ...]) -> str:
    if policy.namespace:
        return policy.namespace
    namespaces = {w.split("/", 1)[0] for w in workloads}
    return namespaces.pop() if len(namespaces) == 1 else ""


def namespaces_moved(policy: PolicyRecord, workloads: tuple[str, ...]) -> tuple[str, ...]:
    """Every namespace a move of this policy moves workloads in: a ClusterPropagationPolicy reaching
    several is counted under each of them for the per-namespace limit."""
    if policy.namespace:
        return (policy.namespace,)
    return tuple(sorted({w.split("/", 1)[0] for w in workloads})) or ("",)


def _within_limits(moves: list[_Proposal], settings: FleetSettings) -> list[Decision]:
    """Best moves first, as many as the pass and each namespace allow; the rest are refused."""
    moves.sort(key=lambda m: (not m.stranded, -m.net_usd, m.policy.kind, m.policy.key))
    per_namespace: Tally[str] = Tally()
    total = 0
    decided: list[Decision] = []
    for move in moves:
        spaces = namespaces_moved(move.policy, move.workloads)
        outcome, reason = Outcome.REFUSE, Reason.LIMIT_PASS
        if total + 1 > settings.max_moves_per_pass:
            pass
        elif any(per_namespace[space] + 1 > settings.max_moves_per_namespace for space in spaces):
            reason = Reason.LIMIT_NAMESPACE
        else:
            total += 1
            per_namespace.update(spaces)
            outcome, reason = Outcome.MOVE, Reason.MEMBER_NOT_READY if move.stranded else Reason.PAYS
        desired = move.target.desired
        reschedule = outcome is Outcome.MOVE and desired.matches(move.policy.placement)
        # No new copy needed where one already runs all the replicas: straight to the final placement.
        direct = reschedule or move.target.ranked_clusters[0] in move.sources
        step = MoveStep.SETTLE if direct else MoveStep.EXPAND
        if outcome is Outcome.MOVE and step is MoveStep.EXPAND:
            desired = _expanded(move.target, move.sources)
        decided.append(
            Decision(
                policy=move.policy,
                outcome=outcome,
                reason=reason,
                workloads=move.workloads,
                replicas=move.replicas,
                ranked_clusters=move.target.ranked_clusters,
                source_clusters=move.sources,
                target_cluster=move.target.ranked_clusters[0],
                desired=desired,
                benefit=move.benefit,
                reschedule=reschedule,
                step=step if outcome is Outcome.MOVE else None,
            )
        )
    return decided


# --- what the decision says -----------------------------------------------------------------------


def explain(decision: Decision) -> str:
    """One sentence for the Event note and the log: what, from where to where, and why in USD."""
    where = f"{','.join(decision.source_clusters) or 'nowhere yet'} -> {decision.target_cluster or '-'}"
    text = f"{decision.outcome.value} ({decision.reason.value}): {where}"
    b = decision.benefit
    if b is not None:
        text += (
            f"; net benefit {b.net_usd:+.4f} USD = price savings {b.price_savings_usd:+.4f} "
            f"+ carbon value {b.carbon_value_usd:+.4f} - migration {b.migration_cost_usd:.4f} "
            f"- egress {b.egress_cost_usd:.4f} - latency {b.latency_penalty_usd:.4f}; "
            f"avoids {b.avoided_grams:.1f} gCO2eq"
        )
    return text


def decision_annotation(decision: Decision, *, prices: str = "") -> str:
    """The ``ecopulse.io/decision`` value on the policy: stable for an unchanged decision (no clock,
    no figures on a refusal), so a pass that decides the same again writes nothing. A move names the
    source of its prices (``prices``: SignalSnapshot.price_sources, "" for the configuration's), not
    their age, which would change every pass."""
    body: dict[str, object] = {
        "decision": decision.outcome.value,
        "reason": decision.reason.value,
        "clusters": list(decision.ranked_clusters[:3]),
    }
    if decision.source_clusters:
        body["from"] = list(decision.source_clusters)
    if decision.outcome in (Outcome.MOVE, Outcome.PLACE) and decision.target_cluster:
        body["to"] = decision.target_cluster
    if decision.outcome is Outcome.MOVE and decision.benefit is not None:
        body["netBenefitUsd"] = round(decision.benefit.net_usd, 4)
        body["avoidedGrams"] = round(decision.benefit.avoided_grams, 1)
        body["prices"] = prices or "config"
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def placement_patch(
    desired: DesiredPlacement, current: Placement, *, restore: str | None = None
) -> dict[str, object]:
    """The JSON merge patch of ``spec.placement``: our affinity terms, the single clusterAffinity
    removed (Karmada allows only one of the two), static weights for divided replicas.

    A move's first step makes the replicas Duplicated over its first term; ``restore`` (the
    replicaScheduling saved then, as JSON; "" when there was none) puts the policy's own back."""
    placement: dict[str, object] = {
        "clusterAffinities": [
            {"affinityName": term.name, "clusterNames": list(term.cluster_names)}
            for term in desired.cluster_affinities
        ],
    }
    if current.has_cluster_affinity:
        placement["clusterAffinity"] = None
    scheduling: dict[str, object] | None = None
    if desired.duplicated:
        scheduling = {
            "replicaSchedulingType": "Duplicated",
            "replicaDivisionPreference": None,
            "weightPreference": None,
        }
    elif restore is not None:
        saved = json.loads(restore) if restore else None
        scheduling = dict(saved) if isinstance(saved, dict) else None
        placement["replicaScheduling"] = scheduling
    if desired.static_weights and not desired.duplicated:
        scheduling = dict(scheduling or {})
        scheduling["weightPreference"] = {
            "staticWeightList": [
                {"targetCluster": {"clusterNames": [cluster]}, "weight": weight}
                for cluster, weight in desired.static_weights
            ]
        }
    if scheduling is not None:
        placement["replicaScheduling"] = scheduling
    return placement
