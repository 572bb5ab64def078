"""One planning cycle: which running pods should move, where, and why. Pure.

For each scheduled pod: where would the webhook place a fresh copy right now (the same
``core.placement.rank_regions``)? If that is another region, price the move from where the pod
runs (its node's region and capacity type) with ``core.economics``, including migration cost.

The replacement pod can only land in the regions the webhook puts in its node affinity (the same
``core.placement.choose_regions``: the top ``placement.maxPreferredRegions`` as weighted preferred
terms, or the top ``placement.requiredRegionCount`` as a required set; none when the webhook adds
no affinity), and the scheduler puts it in the most preferred one that has room. So the target is
the first of those regions, in ranking order and ranked above the pod's own region, with room for
the pod's requests (on a schedulable node, after the moves already planned this cycle); the move
is proposed only if its net benefit from where the pod runs exceeds ``rebalancer.minNetBenefitUsd``
and is positive. Given the grid's recent history (``core.history``, fed by the cycle), that net
benefit is the robust one (``core.economics.robust_net_benefit_usd``): the carbon gap counted is the
smallest of the predicted one and those of the last ``rebalancer.holdHours`` hours, less
``rebalancer.gapErrorMargin`` times the gap's recent horizon error, and it must stay positive (the
predicted one must still beat the minimum); with too little history to say,
nothing moves (``history-too-short``). The scheduler lands the replacement in the first landing
region with room, so that is the move judged; when it does not pay, the move is refused.

A move is proposed only if the pod is not protected and its workload has no replica already on the
move. Candidates come out in the order their room was reserved (by the net benefit of the pod's
best possible move, best first); the evictor keeps that order and applies the limits, so each
replacement finds the room the plan counted on.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

from core.collector import collections_paused
from core.config import EcoPulseConfiguration
from core.economics import (
    NetBenefit,
    RegionCost,
    lost_progress_usd,
    migration_cost_usd,
    net_benefit,
    region_cost,
    robust_net_benefit_usd,
)
from core.history import IntensityHistory
from core.managed import Unmanaged, unmanaged
from core.model import (
    CapacityType,
    NamespaceInfo,
    NodeRecord,
    PlacementHints,
    PodDemand,
    PodRecord,
    SignalSnapshot,
)
from core.placement import PlacementChoice, Ranking, choose_regions, landing_capacity, rank_regions
from core.podspec import placement_hints
from core.policy import EMPTY_POLICY_SET, PolicySet, Rebalance, Resolution, placement_config, resolve
from rebalancer.protections import Protected, eviction_protection


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveFigures:
    """What a move was judged on, for its log line and Event (rebalancer.explain)."""

    benefit: NetBenefit  # the predicted net benefit and its parts
    source_g_per_kwh: float
    target_g_per_kwh: float
    # The capacity types priced: the source node's, and the pod's own for the replacement.
    source_capacity: CapacityType = CapacityType.ON_DEMAND
    target_capacity: CapacityType = CapacityType.ON_DEMAND
    robust_net_usd: float | None = None  # what the robust rule counts on; None when it did not judge
    # The target offers both capacity types: like for like was assumed (core.placement.landing_capacity).
    capacity_assumed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A proposed move to ``target_region``; ``benefit`` is the predicted net benefit of that move."""

    pod: PodRecord
    source_region: str
    target_region: str
    benefit: NetBenefit
    source_g_per_kwh: float
    target_g_per_kwh: float
    policy: str = ""  # the refs of the policies that applied (core.policy)
    source_capacity: CapacityType = CapacityType.ON_DEMAND
    target_capacity: CapacityType = CapacityType.ON_DEMAND
    robust_net_usd: float | None = None
    capacity_assumed: bool = False
    prices: str = ""  # which prices priced it: SignalSnapshot.prices_note()

    @property
    def figures(self) -> MoveFigures:
        return MoveFigures(
            benefit=self.benefit,
            source_g_per_kwh=self.source_g_per_kwh,
            target_g_per_kwh=self.target_g_per_kwh,
            source_capacity=self.source_capacity,
            target_capacity=self.target_capacity,
            robust_net_usd=self.robust_net_usd,
            capacity_assumed=self.capacity_assumed,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    pod: PodRecord
    reason: str
    target_region: str = ""
    net_benefit_usd: float | None = None
    policy: str = ""
    source_region: str = ""
    figures: MoveFigures | None = None  # the move refused, when it was priced


@dataclass(slots=True)
class Plan:
    candidates: list[Candidate] = field(default_factory=list)
    # Refused moves: pods whose best region is elsewhere but that may not (or need not) go.
    refusals: list[Refusal] = field(default_factory=list)
    pods_considered: int = 0
    pods_in_best_region: int = 0
    prices: str = ""  # which prices priced this plan: SignalSnapshot.prices_note()


NO_SIGNAL = "no-usable-signals"
UNKNOWN_REGION = "unknown-region"
BELOW_MIN_BENEFIT = "below-min-net-benefit"
NO_ROOM = "no-room-in-target"
WORKLOAD_MOVING = "workload-already-moving"
POLICY_NEVER = "policy-rebalance-never"


def moving_allowed(resolution: Resolution, *, workload_pods: int) -> int:
    """How many of a workload's pods may be on the move at once: the policy's maxUnavailable, else 1."""
    limit = resolution.max_unavailable
    if isinstance(limit, int):
        return limit
    if isinstance(limit, str):
        return max(1, math.floor(workload_pods * int(limit.rstrip("%")) / 100))
    return 1


NOT_ROBUST = "not-robust-to-recent-grid"  # pays as predicted, not at the gap the grid has lately shown
HISTORY_SHORT = "history-too-short"  # too little recent history to tell whether it would pay


# A plan allocates per pod and makes no cycles: no collection while it runs (core.collector).
@collections_paused()
def plan(
    *,
    pods: Iterable[PodRecord],
    nodes: Mapping[str, NodeRecord],
    namespaces: Mapping[str, NamespaceInfo],
    signals: SignalSnapshot,
    config: EcoPulseConfiguration,
    now: datetime,
    own_namespace: str = "",
    policies: PolicySet = EMPTY_POLICY_SET,
    history: IntensityHistory | None = None,
) -> Plan:
    """The moves worth making now, and why every other pod stays; reads its arguments only, no I/O."""
    pods = list(pods)
    result = Plan(pods_considered=len(pods))
    free = _free_capacity(pods, nodes)
    workloads = [p.workload for p in pods]  # a string built per pod: build it once
    moving = Counter(
        w for p, w in zip(pods, workloads, strict=True) if w is not None and (p.deleting or not p.ready)
    )
    workload_sizes = Counter(w for w in workloads if w is not None)
    known = frozenset(config.region_names)
    rankings: dict[tuple[int, int, int], tuple[Ranking, tuple[str, ...]]] = {}
    # ... and price each (shape, source region, capacity type) move once.
    moves: dict[tuple[tuple[int, int, int], str, CapacityType], _Moves | None] = {}
    hints_of: dict[tuple[tuple[str, str], ...], PlacementHints] = {}
    # What a pod's namespace, labels, hint annotations and kind make of it. The cache interns
    # labels and hints, so the replicas of a template share both objects: worked out once each.
    intents: dict[tuple[str, int, int, str | None, bool, bool], _Intent | None] = {}
    settings = config.rebalancer
    pending: list[_Pending] = []
    offered = _offered_capacity(nodes)

    for pod, workload in zip(pods, workloads, strict=True):
        node = nodes.get(pod.node_name)
        source = node.region if node is not None else None
        if source is None or source not in known:
            continue  # not in a region we manage: nothing to say
        intent_key = (
            pod.namespace,
            id(pod.labels),
            id(pod.hint_annotations),
            pod.owner_kind,
            pod.mirror,
            pod.static,
        )
        if intent_key in intents:
            intent = intents[intent_key]
        else:
            intent = intents[intent_key] = _intent(
                pod,
                namespaces=namespaces,
                policies=policies,
                config=config,
                known=known,
                hints_of=hints_of,
                own_namespace=own_namespace,
            )
        if intent is None:
            continue  # mode: off: neither placed nor moved
        resolution, hints, effective = intent.resolution, intent.hints, intent.config
        # Thousands of replicas share a shape: rank each (demand, hints) once per cycle. Demands
        # are interned by the pod cache, so their identity is a cheap key for a shape.
        key = (id(pod.demand), id(hints), id(effective))
        ranked = rankings.get(key)
        if ranked is None:
            ranking = rank_regions(demand=pod.demand, hints=hints, signals=signals, config=effective)
            choice = choose_regions(ranking, effective)
            # Where the webhook lets the replacement land, most preferred first (none: no affinity).
            landing = choice.landing_regions if isinstance(choice, PlacementChoice) else ()
            ranked = rankings[key] = (ranking, landing)
        ranking, landing = ranked
        best = ranking.best
        refs = resolution.refs
        if best is None:
            result.refusals.append(Refusal(pod=pod, reason=NO_SIGNAL, policy=refs))
            continue
        if best.region == source:
            result.pods_in_best_region += 1
            continue
        reason: str | None = intent.unmanaged or eviction_protection(
            pod, settings=settings, now=now, run_to_completion_allowed=resolution.evict_run_to_completion
        )
        if reason is None and resolution.rebalance is Rebalance.NEVER:
            reason = POLICY_NEVER
        if intent.unmanaged is not None:
            # Not Eco-Pulse's to move (opted out, system): nothing is priced for it.
            result.refusals.append(
                Refusal(
                    pod=pod, reason=str(reason), target_region=best.region, policy=refs, source_region=source
                )
            )
            continue
        capacity = node.capacity_type if node is not None else pod.demand.capacity_type
        move_key = (key, source, capacity)
        # A run-to-completion pod (a policy allowed it) pays for the hours it has run: its own price.
        # A protected one is refused anyway: its shape's price explains the refusal, at no cost per pod.
        hours_run = _hours_run(pod, now) if pod.run_to_completion and reason is None else 0.0
        if move_key not in moves or hours_run > 0:
            priced = _price_moves(
                ranking,
                landing,
                source,
                capacity=capacity,
                demand=pod.demand,
                hints=hints,
                minimum_usd=settings.min_net_benefit_usd,
                config=effective,
                signals=signals,
                offered=offered,
                robust=_Robust(history=history, now=now) if history is not None else None,
                hours_run=hours_run,
            )
            if hours_run > 0:
                move = priced
            else:
                move = moves[move_key] = priced
        else:
            move = moves[move_key]
        if reason is not None:
            # Protected: the move it would be is priced (once per shape) so the refusal can say so.
            result.refusals.append(
                Refusal(
                    pod=pod,
                    reason=str(reason),
                    target_region=best.region,
                    policy=refs,
                    source_region=source,
                    net_benefit_usd=None if move is None else move.judged.benefit.net_usd,
                    figures=None if move is None else move.judged,
                )
            )
            continue
        if move is None:
            result.refusals.append(
                Refusal(
                    pod=pod, reason=NO_SIGNAL, target_region=best.region, policy=refs, source_region=source
                )
            )
            continue
        if not move.worth_it:
            # Not even the best region the replacement could land in pays for the move.
            result.refusals.append(
                Refusal(
                    pod=pod,
                    reason=move.options[0].refusal if move.options else BELOW_MIN_BENEFIT,
                    target_region=best.region,
                    net_benefit_usd=move.to_best.net_usd,
                    policy=refs,
                    source_region=source,
                    figures=move.judged,
                )
            )
            continue
        first = move.options[0]
        if workload is not None and moving[workload] >= moving_allowed(
            resolution, workload_pods=workload_sizes[workload]
        ):
            result.refusals.append(
                Refusal(
                    pod=pod,
                    reason=WORKLOAD_MOVING,
                    target_region=first.benefit.target,
                    net_benefit_usd=first.benefit.net_usd,
                    policy=refs,
                    source_region=source,
                    figures=first.figures,
                )
            )
            continue
        pending.append(_Pending(pod=pod, source=source, options=move.options, policy=refs))

    pending.sort(key=lambda p: (-p.options[0].benefit.net_usd, p.pod.key))
    result.prices = signals.prices_note()
    return _fit(result, pending, free, nodes)


class _Intent(NamedTuple):
    """What a pod's namespace, labels, hints and kind make of it: whether Eco-Pulse manages it, and
    the policies and placement it is decided with."""

    unmanaged: Unmanaged | None  # the never-managed rule's verdict (core.managed)
    resolution: Resolution
    hints: PlacementHints
    config: EcoPulseConfiguration  # the file's, with the policy's mode and floor


def _intent(
    pod: PodRecord,
    *,
    namespaces: Mapping[str, NamespaceInfo],
    policies: PolicySet,
    config: EcoPulseConfiguration,
    known: frozenset[str],
    hints_of: dict[tuple[tuple[str, str], ...], PlacementHints],
    own_namespace: str,
) -> _Intent | None:
    """None when a policy's mode: off takes the pod out of Eco-Pulse's hands."""
    namespace = namespaces.get(pod.namespace)
    annotations = pod.hint_annotations
    if namespace is not None and namespace.hint_annotations:
        annotations = {**namespace.hint_annotations, **annotations}
    # The same resolution as the webhook's, so a move lands where admission would send it.
    resolution = resolve(policies, namespace=pod.namespace, pod_labels=pod.labels)
    if resolution.opts_out(annotations):
        return None
    annotations = resolution.annotations(annotations)
    hints_key = tuple(sorted(annotations.items())) if annotations else ()
    hints = hints_of.get(hints_key)
    if hints is None:
        hints = hints_of[hints_key] = placement_hints(annotations, known_regions=known).hints
    verdict = unmanaged(pod, namespace=namespace, own_namespace=own_namespace)
    return _Intent(verdict, resolution, hints, placement_config(config, resolution))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Option:
    """One region the replacement may land in, and the predicted net benefit of the move there."""

    benefit: NetBenefit
    source_cost: RegionCost
    target_cost: RegionCost
    worth_it: bool  # above rebalancer.minNetBenefitUsd and positive (robustly, given a history)
    figures: MoveFigures
    refusal: str = BELOW_MIN_BENEFIT  # why not, when not worth it


@dataclass(frozen=True, slots=True)
class _Robust:
    history: IntensityHistory
    now: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class _Moves:
    """The moves open to a pod of one shape running in one region on one capacity type."""

    to_best: NetBenefit  # to the ranking's best region: what a refusal cites
    # The landing regions ranked above the source, in the scheduler's order of preference.
    options: tuple[_Option, ...]
    best_figures: MoveFigures  # the move to the best region, as a refusal explains it
    worth_it: bool = field(init=False)  # read for every pod of the shape: worked out once

    def __post_init__(self) -> None:
        object.__setattr__(self, "worth_it", any(option.worth_it for option in self.options))

    @property
    def judged(self) -> MoveFigures:
        """The move a refusal explains: to the first region it could land in, else to the best."""
        return self.options[0].figures if self.options else self.best_figures


@dataclass(frozen=True, slots=True, kw_only=True)
class _Pending:
    pod: PodRecord
    source: str
    options: tuple[_Option, ...]
    policy: str = ""


def _price_moves(
    ranking: Ranking,
    landing: tuple[str, ...],
    source: str,
    *,
    capacity: CapacityType,
    demand: PodDemand,
    hints: PlacementHints,
    minimum_usd: float,
    config: EcoPulseConfiguration,
    signals: SignalSnapshot,
    offered: Mapping[str, frozenset[CapacityType]],
    robust: _Robust | None = None,
    hours_run: float = 0.0,
) -> _Moves | None:
    """The net benefit of moving a pod of this shape from ``source`` to each region it could land in.

    The source is priced on its node's capacity type, each target on the one the pod will land on
    there (core.placement.landing_capacity): a pod with no capacity-type constraint takes what the
    region offers, so a spot pod moving to a spot-only region is priced at spot on both sides.
    """
    best = ranking.best
    source_assessment = ranking.assessment(source)
    if best is None or best.cost is None or source_assessment is None or source_assessment.cost is None:
        return None

    def on(cost: RegionCost, capacity_type: CapacityType) -> RegionCost:
        """The ranking's cost of a region, re-priced on ``capacity_type`` when the ranking used another."""
        if capacity_type is demand.capacity_type:
            return cost
        return region_cost(
            region=cost.region,
            demand=replace(demand, capacity_type=capacity_type),
            hints=hints,
            carbon_g_per_kwh=cost.carbon_g_per_kwh,
            hours=cost.hours,
            config=config,
            prices=signals.price_rates(cost.region),
        )

    def as_it_will_run(region: str, cost: RegionCost) -> tuple[RegionCost, CapacityType, bool]:
        lands_on, assumed = landing_capacity(
            demand, offered=offered.get(region, frozenset()), current=capacity
        )
        return on(cost, lands_on), lands_on, assumed

    # The source as it really runs: on its node's capacity type.
    source_cost = on(source_assessment.cost, capacity)
    migration_usd = migration_cost_usd(source_cost, config) + lost_progress_usd(
        source_cost, hours_run=hours_run
    )

    def figures(
        benefit: NetBenefit,
        target: RegionCost,
        robust_usd: float | None,
        lands_on: CapacityType,
        assumed: bool,
    ) -> MoveFigures:
        return MoveFigures(
            benefit=benefit,
            source_g_per_kwh=source_cost.carbon_g_per_kwh,
            target_g_per_kwh=target.carbon_g_per_kwh,
            source_capacity=capacity,
            target_capacity=lands_on,
            robust_net_usd=robust_usd,
            capacity_assumed=assumed,
        )

    options: list[_Option] = []
    for region in landing:
        if region == source:
            break  # the scheduler would rather keep it here than go anywhere after
        assessment = ranking.assessment(region)
        if assessment is None or assessment.cost is None:
            continue
        target_cost, lands_on, assumed = as_it_will_run(region, assessment.cost)
        benefit = net_benefit(source_cost, target_cost, migration_usd=migration_usd)
        worth_it = benefit.net_usd > minimum_usd and benefit.net_usd > 0.0
        refusal: str | None = BELOW_MIN_BENEFIT
        robust_usd: float | None = None
        if worth_it and robust is not None:
            refusal, robust_usd = _robust_refusal(
                benefit, source_cost, target_cost, robust=robust, config=config
            )
            worth_it = refusal is None
        options.append(
            _Option(
                benefit=benefit,
                source_cost=source_cost,
                target_cost=target_cost,
                worth_it=worth_it,
                figures=figures(benefit, target_cost, robust_usd, lands_on, assumed),
                refusal=refusal or BELOW_MIN_BENEFIT,
            )
        )
    best_cost, best_lands_on, best_assumed = as_it_will_run(best.region, best.cost)
    to_best = net_benefit(source_cost, best_cost, migration_usd=migration_usd)
    best_figures = figures(to_best, best_cost, None, best_lands_on, best_assumed)
    return _Moves(to_best=to_best, options=tuple(options), best_figures=best_figures)


def _hours_run(pod: PodRecord, now: datetime) -> float:
    if pod.started_at is None:
        return 0.0
    return max(0.0, (now - pod.started_at).total_seconds() / 3600.0)


def _robust_refusal(
    benefit: NetBenefit,
    source: RegionCost,
    target: RegionCost,
    *,
    robust: _Robust,
    config: EcoPulseConfiguration,
) -> tuple[str | None, float | None]:
    """Why a move that pays as predicted is not taken by the robust rule (None if it is), and the
    net benefit it counts on (None when the rule is off or has too little history to judge)."""
    settings = config.rebalancer
    if settings.hold_hours <= 0 and settings.gap_error_margin <= 0:
        return None, None  # the rule is off
    gap = robust.history.gap(
        source.region,
        target.region,
        now=robust.now,
        horizon_hours=source.hours,
        hold_hours=settings.hold_hours,
    )
    if gap is None:
        return HISTORY_SHORT, None
    counted = robust_net_benefit_usd(
        benefit,
        source,
        target,
        held_gaps_g_per_kwh=gap.held_gaps_g_per_kwh,
        gap_error_g_per_kwh=gap.error_g_per_kwh,
        confidence_z=settings.gap_error_margin,
        config=config,
    )
    # minNetBenefitUsd asks whether the predicted move is worth the disruption; this asks whether it
    # still pays at the gap the grid has lately shown. Asking both of the robust figure would count
    # the same safety twice.
    return (None if counted > 0.0 else NOT_ROBUST), counted


def _free_capacity(pods: list[PodRecord], nodes: Mapping[str, NodeRecord]) -> dict[str, list[float]]:
    """Per schedulable node: [free CPU cores, free GiB] after every pod bound to it."""
    used: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for pod in pods:
        if not pod.deleting:
            entry = used[pod.node_name]
            entry[0] += pod.demand.cpu_cores
            entry[1] += pod.demand.memory_gib
    return {
        name: [node.allocatable_cpu_cores - used[name][0], node.allocatable_memory_gib - used[name][1]]
        for name, node in nodes.items()
        if node.schedulable and node.region is not None
    }


def _fit(
    result: Plan, pending: list[_Pending], free: dict[str, list[float]], nodes: Mapping[str, NodeRecord]
) -> Plan:
    """Best first, land each pod where the scheduler would: the first landing region with room.

    The move is kept when that region is worth the move; room is then reserved there for the
    pods after it. Per region, nodes are tried roomiest first (a heap on free CPU): one look for
    most pods; only when the roomiest lacks memory are the others scanned.
    """
    heaps: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for name, (cpu, _) in free.items():
        region = nodes[name].region
        if region is not None:
            heaps[region].append((-cpu, name))
    for heap in heaps.values():
        heapq.heapify(heap)
    for item in pending:
        demand = item.pod.demand
        chosen: _Option | None = None
        home: str | None = None
        for option in item.options:
            home = _room(heaps[option.benefit.target], free, demand)
            if home is not None:
                chosen = option
                break
        if chosen is None or home is None:
            first = item.options[0]
            result.refusals.append(
                Refusal(
                    pod=item.pod,
                    reason=NO_ROOM,
                    target_region=first.benefit.target,
                    net_benefit_usd=first.benefit.net_usd,
                    policy=item.policy,
                    source_region=item.source,
                    figures=first.figures,
                )
            )
            continue
        if not chosen.worth_it:
            # The scheduler would land it here, and here the move does not pay.
            result.refusals.append(
                Refusal(
                    pod=item.pod,
                    reason=chosen.refusal,
                    target_region=chosen.benefit.target,
                    net_benefit_usd=chosen.benefit.net_usd,
                    policy=item.policy,
                    source_region=item.source,
                    figures=chosen.figures,
                )
            )
            continue
        heap = heaps[chosen.benefit.target]
        free[home][0] -= demand.cpu_cores
        free[home][1] -= demand.memory_gib
        if home == heap[0][1]:
            heapq.heapreplace(heap, (-free[home][0], home))
        else:
            index = next(i for i, (_, n) in enumerate(heap) if n == home)
            heap[index] = (-free[home][0], home)
            heapq.heapify(heap)
        result.candidates.append(
            Candidate(
                pod=item.pod,
                source_region=item.source,
                target_region=chosen.benefit.target,
                benefit=chosen.benefit,
                source_g_per_kwh=chosen.source_cost.carbon_g_per_kwh,
                target_g_per_kwh=chosen.target_cost.carbon_g_per_kwh,
                policy=item.policy,
                source_capacity=chosen.figures.source_capacity,
                target_capacity=chosen.figures.target_capacity,
                robust_net_usd=chosen.figures.robust_net_usd,
                capacity_assumed=chosen.figures.capacity_assumed,
                prices=result.prices,
            )
        )
    return result


def _room(heap: list[tuple[float, str]], free: dict[str, list[float]], demand: PodDemand) -> str | None:
    """A node of this region's heap with room for ``demand``: the roomiest in CPU when it has the memory."""
    if not heap or -heap[0][0] < demand.cpu_cores:
        return None
    top = heap[0][1]
    if free[top][1] >= demand.memory_gib:
        return top
    return next(
        (n for _, n in heap if free[n][0] >= demand.cpu_cores and free[n][1] >= demand.memory_gib),
        None,
    )


def _offered_capacity(nodes: Mapping[str, NodeRecord]) -> dict[str, frozenset[CapacityType]]:
    """The capacity types each region's schedulable nodes offer (from the node cache)."""
    offered: dict[str, set[CapacityType]] = defaultdict(set)
    for node in nodes.values():
        if node.schedulable and node.region is not None:
            offered[node.region].add(node.capacity_type)
    return {region: frozenset(types) for region, types in offered.items()}


__all__ = ["Candidate", "MoveFigures", "Plan", "Protected", "Refusal", "plan"]
