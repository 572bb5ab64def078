"""One planning cycle: which running pods should move, where, and why. Pure.

For each scheduled pod: where would the webhook place a fresh copy right now (the same
``core.placement.rank_regions``)? If that is another region, price the move from where the pod
runs (its node's region and capacity type) with ``core.economics``, including migration cost.
Propose it only if the net benefit exceeds ``rebalancer.minNetBenefitUsd``, the pod is not
protected, its workload has no replica already on the move, and a node in the target region
has room for its requests. Candidates come out best first; the evictor applies the limits.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from core.config import EcoPulseConfiguration
from core.economics import NetBenefit, RegionCost, migration_cost_usd, net_benefit, region_cost
from core.kube.caches import NamespaceInfo, NodeRecord, PodRecord
from core.model import CapacityType, PlacementHints, PodDemand, SignalSnapshot
from core.placement import Ranking, rank_regions
from core.podspec import placement_hints
from rebalancer.protections import Protected, protection


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    pod: PodRecord
    source_region: str
    target_region: str
    benefit: NetBenefit
    source_g_per_kwh: float
    target_g_per_kwh: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    pod: PodRecord
    reason: str
    target_region: str = ""
    net_benefit_usd: float | None = None


@dataclass(slots=True)
class Plan:
    candidates: list[Candidate] = field(default_factory=list)
    # Refused moves: pods whose best region is elsewhere but that may not (or need not) go.
    refusals: list[Refusal] = field(default_factory=list)
    pods_considered: int = 0
    pods_in_best_region: int = 0


NO_SIGNAL = "no-usable-signals"
UNKNOWN_REGION = "unknown-region"
BELOW_MIN_BENEFIT = "below-min-net-benefit"
NO_ROOM = "no-room-in-target"
WORKLOAD_MOVING = "workload-already-moving"


def plan(
    *,
    pods: Iterable[PodRecord],
    nodes: Mapping[str, NodeRecord],
    namespaces: Mapping[str, NamespaceInfo],
    signals: SignalSnapshot,
    config: EcoPulseConfiguration,
    now: datetime,
    own_namespace: str = "",
) -> Plan:
    pods = list(pods)
    result = Plan(pods_considered=len(pods))
    free = _free_capacity(pods, nodes)
    moving = {p.workload for p in pods if p.workload is not None and (p.deleting or not p.ready)}
    known = frozenset(config.region_names)
    rankings: dict[tuple[int, int], Ranking] = {}
    # ... and price each (shape, source region, capacity type) move once.
    moves: dict[tuple[tuple[int, int], str, CapacityType], _Move | None] = {}
    hints_of: dict[tuple[tuple[str, str], ...], PlacementHints] = {}
    settings = config.rebalancer

    for pod in pods:
        node = nodes.get(pod.node_name)
        source = node.region if node is not None else None
        if source is None or source not in known:
            continue  # not in a region we manage: nothing to say
        namespace = namespaces.get(pod.namespace)
        annotations = pod.hint_annotations
        if namespace is not None and namespace.hint_annotations:
            annotations = {**namespace.hint_annotations, **annotations}
        hints_key = tuple(sorted(annotations.items())) if annotations else ()
        hints = hints_of.get(hints_key)
        if hints is None:
            hints = hints_of[hints_key] = placement_hints(annotations, known_regions=known).hints
        # Thousands of replicas share a shape: rank each (demand, hints) once per cycle. Demands
        # are interned by the pod cache, so their identity is a cheap key for a shape.
        key = (id(pod.demand), id(hints))
        ranking = rankings.get(key)
        if ranking is None:
            ranking = rankings[key] = rank_regions(
                demand=pod.demand, hints=hints, signals=signals, config=config
            )
        best = ranking.best
        if best is None:
            result.refusals.append(Refusal(pod=pod, reason=NO_SIGNAL))
            continue
        if best.region == source:
            result.pods_in_best_region += 1
            continue
        reason = protection(pod, namespace=namespace, settings=settings, now=now, own_namespace=own_namespace)
        if reason is not None:
            result.refusals.append(Refusal(pod=pod, reason=str(reason), target_region=best.region))
            continue
        capacity = node.capacity_type if node is not None else pod.demand.capacity_type
        move_key = (key, source, capacity)
        if move_key not in moves:
            moves[move_key] = _price_move(
                ranking, source, capacity=capacity, demand=pod.demand, hints=hints, config=config
            )
        move = moves[move_key]
        if move is None:
            result.refusals.append(Refusal(pod=pod, reason=NO_SIGNAL, target_region=best.region))
            continue
        benefit, source_cost, target_cost = move
        if benefit.net_usd <= settings.min_net_benefit_usd:
            result.refusals.append(
                Refusal(
                    pod=pod,
                    reason=BELOW_MIN_BENEFIT,
                    target_region=best.region,
                    net_benefit_usd=benefit.net_usd,
                )
            )
            continue
        if pod.workload in moving:
            result.refusals.append(
                Refusal(
                    pod=pod,
                    reason=WORKLOAD_MOVING,
                    target_region=best.region,
                    net_benefit_usd=benefit.net_usd,
                )
            )
            continue
        result.candidates.append(
            Candidate(
                pod=pod,
                source_region=source,
                target_region=best.region,
                benefit=benefit,
                source_g_per_kwh=source_cost.carbon_g_per_kwh,
                target_g_per_kwh=target_cost.carbon_g_per_kwh,
            )
        )

    result.candidates.sort(key=lambda c: (-c.benefit.net_usd, c.pod.key))
    return _fit(result, free, nodes)


_Move = tuple[NetBenefit, RegionCost, RegionCost]


def _price_move(
    ranking: Ranking,
    source: str,
    *,
    capacity: CapacityType,
    demand: PodDemand,
    hints: PlacementHints,
    config: EcoPulseConfiguration,
) -> _Move | None:
    """The net benefit of moving a pod of this shape from ``source`` to the ranking's best region."""
    best = ranking.best
    source_assessment = ranking.assessment(source)
    if best is None or best.cost is None or source_assessment is None or source_assessment.cost is None:
        return None
    source_cost = source_assessment.cost
    if capacity is not demand.capacity_type:
        # Price the source as it really runs: on its node's capacity type.
        source_cost = region_cost(
            region=source,
            demand=replace(demand, capacity_type=capacity),
            hints=hints,
            carbon_g_per_kwh=source_cost.carbon_g_per_kwh,
            hours=source_cost.hours,
            config=config,
        )
    benefit = net_benefit(source_cost, best.cost, migration_usd=migration_cost_usd(source_cost, config))
    return benefit, source_cost, best.cost


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


def _fit(result: Plan, free: dict[str, list[float]], nodes: Mapping[str, NodeRecord]) -> Plan:
    """Keep, best first, only the candidates some node in the target region can still hold.

    Per region, nodes are tried roomiest first (a heap on free CPU): one look for most pods;
    only when the roomiest lacks memory are the others scanned.
    """
    heaps: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for name, (cpu, _) in free.items():
        region = nodes[name].region
        if region is not None:
            heaps[region].append((-cpu, name))
    for heap in heaps.values():
        heapq.heapify(heap)
    kept: list[Candidate] = []
    for candidate in result.candidates:
        demand = candidate.pod.demand
        heap = heaps[candidate.target_region]
        home: str | None = None
        if heap and -heap[0][0] >= demand.cpu_cores:
            top = heap[0][1]
            if free[top][1] >= demand.memory_gib:
                home = top
            else:
                home = next(
                    (
                        n
                        for _, n in heap
                        if free[n][0] >= demand.cpu_cores and free[n][1] >= demand.memory_gib
                    ),
                    None,
                )
        if home is None:
            result.refusals.append(
                Refusal(
                    pod=candidate.pod,
                    reason=NO_ROOM,
                    target_region=candidate.target_region,
                    net_benefit_usd=candidate.benefit.net_usd,
                )
            )
            continue
        free[home][0] -= demand.cpu_cores
        free[home][1] -= demand.memory_gib
        if home == heap[0][1]:
            heapq.heapreplace(heap, (-free[home][0], home))
        else:
            index = next(i for i, (_, n) in enumerate(heap) if n == home)
            heap[index] = (-free[home][0], home)
            heapq.heapify(heap)
        kept.append(candidate)
    result.candidates = kept
    return result


__all__ = ["Candidate", "Plan", "Protected", "Refusal", "plan"]
