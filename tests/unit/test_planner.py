"""The rebalancer's planning, protections and eviction limits, with hand-built snapshots."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import EcoPulseConfiguration, PlacementMode, parse_config_text
from core.managed import Unmanaged
from core.model import (
    CapacityType,
    CarbonSignal,
    NamespaceInfo,
    NodeRecord,
    PlacementHints,
    PodDemand,
    PodRecord,
    SignalSnapshot,
)
from core.placement import PlacementChoice, choose_regions, rank_regions
from core.policy import PolicySet, build_policy_set, parse_policy
from rebalancer.cycle import CycleInputs, run_cycle
from rebalancer.planner import BELOW_MIN_BENEFIT, NO_ROOM, WORKLOAD_MOVING, plan
from rebalancer.protections import Protected
from tests.factories import FakeEvictionApi, pod_record

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(hours=5)

CONFIG = """\
apiVersion: ecopulse.io/v1alpha1
kind: EcoPulseConfiguration
regions:
  - {name: us-east-1, zone: US-MIDA-PJM}
  - {name: eu-north-1, zone: SE-SE3}
baselineRegion: us-east-1
carbon: {provider: mock, mock: {us-east-1: 450, eu-north-1: 30}}
economics: {horizonHours: 6, carbonPriceUsdPerTonne: 1000, maxCarbonPriceUsdPerTonne: 1000, migrationCostUsd: 0.001,
            restartDowntimeSeconds: 0}
prices:
  us-east-1: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}
  eu-north-1: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}
latencyMs: {us-east-1: {eu-north-1: 100}}
rebalancer: {minNetBenefitUsd: 0.001, minPodAgeSeconds: 1800, maxEvictionsPerCycle: 10,
             maxEvictionsPerNamespace: 5, maxEvictionsPerNode: 2, maxEvictionsPerWorkload: 1}
"""


def config(**rebalancer: Any) -> EcoPulseConfiguration:
    base = parse_config_text(CONFIG)
    # These tables are about acting; the shipped default (dry run) is tested on its own.
    return replace(base, rebalancer=replace(base.rebalancer, **({"dry_run": False} | rebalancer)))


def signals(us: float = 450, eu: float = 30) -> SignalSnapshot:
    def signal(region: str, zone: str, value: float) -> CarbonSignal:
        return CarbonSignal(
            region=region, zone=zone, carbon_g_per_kwh=value, observed_at=NOW, fetched_at=NOW, source="mock"
        )

    return SignalSnapshot(
        taken_at=NOW,
        provider="mock",
        carbon={
            "us-east-1": signal("us-east-1", "US-MIDA-PJM", us),
            "eu-north-1": signal("eu-north-1", "SE-SE3", eu),
        },
    )


def node(
    name: str, region: str, *, cpu: float = 16, memory: float = 64, schedulable: bool = True
) -> NodeRecord:
    return NodeRecord(
        name=name,
        region=region,
        capacity_type=CapacityType.ON_DEMAND,
        allocatable_cpu_cores=cpu,
        allocatable_memory_gib=memory,
        schedulable=schedulable,
    )


NODES = {
    n.name: n for n in (node("us-a", "us-east-1"), node("us-b", "us-east-1"), node("eu-a", "eu-north-1"))
}


def pod(name: str = "web-1", **overrides: Any) -> PodRecord:
    return pod_record(name, **{"started_at": OLD, "node_name": "us-a", **overrides})


def run(
    pods: list[PodRecord],
    cfg: EcoPulseConfiguration | None = None,
    nodes: dict[str, NodeRecord] | None = None,
    namespaces: dict[str, NamespaceInfo] | None = None,
    snapshot: SignalSnapshot | None = None,
) -> Any:
    return plan(
        pods=pods,
        nodes=nodes or NODES,
        namespaces=namespaces or {},
        signals=snapshot or signals(),
        config=cfg or config(),
        now=NOW,
    )


def test_a_pod_in_the_dirty_region_is_proposed_to_move_to_the_green_one() -> None:
    result = run([pod()])
    assert len(result.candidates) == 1
    candidate = result.candidates[0]
    assert (candidate.source_region, candidate.target_region) == ("us-east-1", "eu-north-1")
    assert candidate.benefit.net_usd > 0.001
    assert candidate.benefit.carbon_value_usd > 0
    assert candidate.benefit.price_savings_usd == pytest.approx(0)
    assert candidate.source_g_per_kwh == 450 and candidate.target_g_per_kwh == 30


def test_no_collection_runs_while_a_plan_does_and_the_collector_is_back_after() -> None:
    collections: list[str] = []

    def count(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(phase)

    pods, cfg, snapshot = [pod(f"web-{index}") for index in range(50)], config(), signals()
    threshold = gc.get_threshold()
    gc.set_threshold(1, 1, 1)  # with the collector on, any allocation would start one
    gc.callbacks.append(count)
    try:
        result = plan(pods=pods, nodes=NODES, namespaces={}, signals=snapshot, config=cfg, now=NOW)
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*threshold)
    assert result.pods_considered == 50 and result.candidates
    # Entering and leaving the pause allocate a few objects while the collector is on (a handful of
    # collections at threshold 1); the plan itself, without the pause, starts thousands.
    assert len(collections) <= 8
    assert gc.isenabled()


def test_a_pod_already_in_the_best_region_stays() -> None:
    result = run([pod(node_name="eu-a")])
    assert result.candidates == [] and result.refusals == []
    assert result.pods_in_best_region == 1


PROTECTIONS: dict[Unmanaged | Protected, dict[str, Any]] = {
    Unmanaged.OPTED_OUT: dict(hint_annotations={"ecopulse.io/opt-out": "true"}),
    Protected.BARE_POD: dict(owner_kind=None, owner_name=None),
    Unmanaged.DAEMONSET_POD: dict(owner_kind="DaemonSet"),
    Unmanaged.MIRROR_POD: dict(mirror=True),
    Unmanaged.STATIC_POD: dict(static=True),
    Protected.SYSTEM_CRITICAL: dict(priority=2_000_000_000),
    Protected.TERMINATING: dict(deleting=True),
    Protected.NOT_RUNNING: dict(phase="Pending"),
    Protected.NOT_READY: dict(ready=False),
    Protected.TOO_YOUNG: dict(started_at=NOW - timedelta(minutes=10)),
    Protected.LOCAL_STORAGE: dict(local_storage=True),
    Protected.PVC: dict(pvc=True),
    # The same name as the webhook's for the same case (the rebalancer said namespace-opted-out).
    Unmanaged.SYSTEM_NAMESPACE: dict(namespace="kube-system"),
}


@pytest.mark.parametrize("reason", sorted(PROTECTIONS), ids=str)
def test_protected_pods_are_never_proposed(reason: Unmanaged | Protected) -> None:
    result = run([pod(**PROTECTIONS[reason])])
    assert result.candidates == []
    assert [r.reason for r in result.refusals] == [str(reason)]


def test_an_opted_out_namespace_protects_its_pods() -> None:
    result = run([pod()], namespaces={"shop": NamespaceInfo(opted_out=True)})
    assert [r.reason for r in result.refusals] == ["namespace-opted-out"]


def test_local_storage_and_pvcs_move_when_configured() -> None:
    cfg = config(evict_local_storage_pods=True, evict_pvc_pods=True)
    assert len(run([pod(local_storage=True, pvc=True)], cfg).candidates) == 1


def test_a_move_below_the_minimum_net_benefit_is_refused() -> None:
    result = run([pod()], config(min_net_benefit_usd=100.0))
    assert [r.reason for r in result.refusals] == [BELOW_MIN_BENEFIT]


def test_the_equation_test_green_but_expensive_egress_stays_put() -> None:
    # The data lives in us-east-1 and the pod sends it 50 GB/h: 50 x 6 h x $0.02 = $6 of egress,
    # far more than the carbon value of moving 4 vCPU to a greener grid.
    heavy = pod(
        hint_annotations={"ecopulse.io/egress-gb-per-hour": "50", "ecopulse.io/data-region": "us-east-1"}
    )
    result = run([heavy])
    assert result.candidates == []
    assert result.pods_in_best_region == 1  # a fresh copy would be placed in us-east-1 too


def test_no_room_in_the_target_region_refuses_and_capacity_is_reserved_across_candidates() -> None:
    small_eu = {**NODES, "eu-a": node("eu-a", "eu-north-1", cpu=6, memory=64)}
    pods = [pod("web-1", owner_name="a"), pod("web-2", owner_name="b", node_name="us-b")]
    result = run(pods, nodes=small_eu)
    assert len(result.candidates) == 1  # 6 cores hold one 4-core pod, not two
    assert [r.reason for r in result.refusals] == [NO_ROOM]


def test_pods_already_in_the_target_count_against_its_room() -> None:
    pods = [pod("there", node_name="eu-a", demand=PodDemand(cpu_cores=14, memory_gib=8)), pod("here")]
    result = run(pods)
    assert result.candidates == []
    assert NO_ROOM in [r.reason for r in result.refusals]


def test_an_unschedulable_node_offers_no_room() -> None:
    nodes = {**NODES, "eu-a": node("eu-a", "eu-north-1", schedulable=False)}
    assert [r.reason for r in run([pod()], nodes=nodes).refusals] == [NO_ROOM]


def test_a_workload_with_a_replica_on_the_move_waits() -> None:
    pods = [pod("web-1"), pod("web-2", ready=False, phase="Pending")]
    reasons = sorted(r.reason for r in run(pods).refusals)
    assert reasons == sorted([WORKLOAD_MOVING, "not-running"])


def test_no_signals_no_moves() -> None:
    empty = SignalSnapshot(taken_at=NOW, provider="mock", carbon={})
    result = run([pod()], snapshot=empty)
    assert result.candidates == []


def many(count: int, **overrides: Any) -> list[PodRecord]:
    return [
        pod(f"p{i}", owner_name=f"w{i}", node_name="us-a" if i % 2 else "us-b", **overrides)
        for i in range(count)
    ]


@settings(max_examples=60, deadline=None)
@given(
    us=st.floats(0, 1000),
    eu=st.floats(0, 1000),
    egress=st.floats(0, 100),
    minimum=st.floats(0, 1),
)
def test_never_a_candidate_at_or_below_the_minimum_and_best_first(
    us: float, eu: float, egress: float, minimum: float
) -> None:
    pods = [
        pod(
            f"p{i}",
            owner_name=f"w{i}",
            hint_annotations={"ecopulse.io/egress-gb-per-hour": f"{egress * i:.3f}"},
        )
        for i in range(4)
    ]
    result = run(pods, config(min_net_benefit_usd=minimum), snapshot=signals(us, eu))
    benefits = [c.benefit.net_usd for c in result.candidates]
    assert all(b > minimum for b in benefits)
    assert benefits == sorted(benefits, reverse=True)
    if eu >= us:
        assert result.candidates == []  # no benefit in moving to a dirtier (equally priced) grid


# -- next-best region: where the webhook's affinity lets the replacement land --------------------

CONFIG3 = (
    CONFIG.replace(
        "  - {name: eu-north-1, zone: SE-SE3}\n",
        "  - {name: eu-north-1, zone: SE-SE3}\n  - {name: eu-west-1, zone: IE}\n",
    )
    .replace(
        "  eu-north-1: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}\n",
        "  eu-north-1: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}\n"
        "  eu-west-1: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}\n",
    )
    .replace(
        "carbon: {provider: mock, mock: {us-east-1: 450, eu-north-1: 30}}",
        "carbon: {provider: mock, mock: {us-east-1: 450, eu-north-1: 30, eu-west-1: 300}}",
    )
)
FULL_NORTH = {
    "us-a": node("us-a", "us-east-1"),
    "eu-a": node("eu-a", "eu-north-1", cpu=2),  # cannot hold a 4-core pod
    "ie-a": node("ie-a", "eu-west-1"),
}


def config3(*, placement: dict[str, Any] | None = None, **rebalancer: Any) -> EcoPulseConfiguration:
    base = parse_config_text(CONFIG3)
    return replace(
        base,
        rebalancer=replace(base.rebalancer, **rebalancer),
        placement=replace(base.placement, **(placement or {})),
    )


def signals3(us: float = 450, north: float = 30, west: float = 300) -> SignalSnapshot:
    values = {"us-east-1": ("US-MIDA-PJM", us), "eu-north-1": ("SE-SE3", north), "eu-west-1": ("IE", west)}
    return SignalSnapshot(
        taken_at=NOW,
        provider="mock",
        carbon={
            region: CarbonSignal(
                region=region,
                zone=zone,
                carbon_g_per_kwh=value,
                observed_at=NOW,
                fetched_at=NOW,
                source="mock",
            )
            for region, (zone, value) in values.items()
        },
    )


@dataclass(frozen=True)
class NextBest:
    """One row: the grid, the affinity settings and the room, and where the pod goes (or why not)."""

    west: float = 300.0  # eu-west-1's intensity; eu-north-1 (30) is best, us-east-1 (450) the source
    placement: dict[str, Any] = field(default_factory=dict)
    north_cpu: float = 2.0  # eu-north-1's room: 2 cores cannot hold the 4-core pod
    min_net_benefit_usd: float = 0.001
    target: str | None = None  # expected target region, None when refused
    refusal: tuple[str, str] | None = None  # expected (reason, target_region) when refused


NEXT_BEST = {
    "best has room: best": NextBest(north_cpu=16, target="eu-north-1"),
    "best full: next best": NextBest(target="eu-west-1"),
    "best full, required mode, next best required: next best": NextBest(
        placement=dict(mode=PlacementMode.REQUIRED, required_region_count=2), target="eu-west-1"
    ),
    # 4 vCPU and 8 GiB for 6 h draw 0.079 kWh: at 1000 USD/t, 450 -> 30 g/kWh is worth 0.033 USD,
    # 450 -> 300 is worth 0.012 and 450 -> 440 0.0008, less than the 0.001 migration cost.
    "best full, next best not worth the move": NextBest(west=440, refusal=(BELOW_MIN_BENEFIT, "eu-west-1")),
    "best full, next best worth less than the minimum": NextBest(
        min_net_benefit_usd=0.02, refusal=(BELOW_MIN_BENEFIT, "eu-west-1")
    ),
    "best full, next best dirtier than the source": NextBest(west=500, refusal=(NO_ROOM, "eu-north-1")),
    "best full, next best outside the preferred terms": NextBest(
        placement=dict(max_preferred_regions=1), refusal=(NO_ROOM, "eu-north-1")
    ),
    "best full, next best outside the required set": NextBest(
        placement=dict(mode=PlacementMode.REQUIRED, required_region_count=1), refusal=(NO_ROOM, "eu-north-1")
    ),
    "required mode, no region above the floor: no affinity, no move": NextBest(
        north_cpu=16,
        placement=dict(mode=PlacementMode.REQUIRED, min_net_benefit_usd=100.0),
        refusal=(BELOW_MIN_BENEFIT, "eu-north-1"),
    ),
}


@pytest.mark.parametrize("row", NEXT_BEST.values(), ids=NEXT_BEST)
def test_the_target_is_the_first_landing_region_with_room_that_pays(row: NextBest) -> None:
    nodes = {**FULL_NORTH, "eu-a": node("eu-a", "eu-north-1", cpu=row.north_cpu)}
    cfg = config3(placement=row.placement, min_net_benefit_usd=row.min_net_benefit_usd)
    result = run([pod()], cfg, nodes=nodes, snapshot=signals3(west=row.west))
    if row.target is not None:
        (candidate,) = result.candidates
        assert candidate.target_region == row.target
        assert candidate.benefit.target == row.target  # the benefit is that of the chosen move
        assert candidate.benefit.net_usd > row.min_net_benefit_usd
        assert candidate.target_g_per_kwh == {"eu-north-1": 30, "eu-west-1": row.west}[row.target]
        assert result.refusals == []
    else:
        assert result.candidates == []
        assert [(r.reason, r.target_region) for r in result.refusals] == [row.refusal]


def test_room_reserved_by_earlier_moves_sends_later_ones_to_the_next_best() -> None:
    nodes = {**FULL_NORTH, "eu-a": node("eu-a", "eu-north-1", cpu=6)}  # one 4-core pod fits
    pods = [pod("web-1", owner_name="a"), pod("web-2", owner_name="b")]
    result = run(pods, config3(), nodes=nodes, snapshot=signals3())
    assert [(c.pod.name, c.target_region) for c in result.candidates] == [
        ("web-1", "eu-north-1"),
        ("web-2", "eu-west-1"),
    ]
    first, second = result.candidates
    assert first.benefit.net_usd > second.benefit.net_usd > 0
    assert result.refusals == []


def test_a_pod_in_the_next_best_region_stays_when_the_best_is_full() -> None:
    result = run([pod(node_name="ie-a")], config3(), nodes=FULL_NORTH, snapshot=signals3())
    assert result.candidates == []
    assert [(r.reason, r.target_region) for r in result.refusals] == [(NO_ROOM, "eu-north-1")]


@settings(max_examples=60, deadline=None)
@given(
    north=st.floats(0, 1000),
    west=st.floats(0, 1000),
    us=st.floats(0, 1000),
    room=st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(0, 12)),
    required=st.booleans(),
    count=st.integers(1, 3),
    minimum=st.floats(0, 0.02),
)
def test_moves_land_in_the_affinity_set_pay_and_fit(
    north: float,
    west: float,
    us: float,
    room: tuple[int, int, int],
    required: bool,
    count: int,
    minimum: float,
) -> None:
    placement = (
        dict(mode=PlacementMode.REQUIRED, required_region_count=count)
        if required
        else dict(max_preferred_regions=count)
    )
    cfg = config3(placement=placement, min_net_benefit_usd=minimum)
    snapshot = signals3(us=us, north=north, west=west)
    nodes = {
        "us-a": node("us-a", "us-east-1", cpu=room[0] + 8),
        "eu-a": node("eu-a", "eu-north-1", cpu=room[1]),
        "ie-a": node("ie-a", "eu-west-1", cpu=room[2]),
    }
    pods = [
        pod(f"p{i}", owner_name=f"w{i}", node_name="us-a", demand=PodDemand(cpu_cores=2, memory_gib=1))
        for i in range(4)
    ]
    result = run(pods, cfg, nodes=nodes, snapshot=snapshot)
    choice = choose_regions(
        rank_regions(demand=pods[0].demand, hints=PlacementHints(), signals=snapshot, config=cfg), cfg
    )
    landing = choice.landing_regions if isinstance(choice, PlacementChoice) else ()
    planned = {"eu-north-1": 0.0, "eu-west-1": 0.0}
    for candidate in result.candidates:
        assert candidate.target_region in landing
        assert candidate.benefit.net_usd > max(minimum, 0.0)
        planned[candidate.target_region] += candidate.pod.demand.cpu_cores
    assert planned["eu-north-1"] <= room[1] and planned["eu-west-1"] <= room[2]
    assert len(result.candidates) + len(result.refusals) + result.pods_in_best_region == len(pods)


@settings(max_examples=80, deadline=None)
@given(
    us=st.floats(0, 1000),
    eu=st.floats(0, 1000),
    egress=st.tuples(st.floats(0, 20), st.floats(0, 20)).map(sorted),
    minimum=st.floats(0, 0.05),
)
def test_egress_only_ever_deters_leaving_the_data_region_and_favours_coming_home(
    us: float, eu: float, egress: list[float], minimum: float
) -> None:
    """The step the simulation's monotonicity in egress rests on (see test_simulate)."""

    def moves(gb_per_hour: float, node_name: str) -> bool:
        hints = {
            "ecopulse.io/data-region": "us-east-1",
            "ecopulse.io/egress-gb-per-hour": f"{gb_per_hour:.6f}",
        }
        result = run(
            [pod(node_name=node_name, hint_annotations=hints)],
            config(min_net_benefit_usd=minimum),
            snapshot=signals(us, eu),
        )
        return bool(result.candidates)

    less, more = egress
    assert moves(less, "us-a") or not moves(more, "us-a")  # leaving: more egress, never more moves
    assert moves(more, "eu-a") or not moves(less, "eu-a")  # coming home: more egress, never fewer


def test_leadership_is_checked_before_every_eviction_and_a_loss_ends_the_cycle() -> None:
    # Issue 20, defect 1: the lease can lapse mid-cycle; no eviction may follow the loss.
    api = FakeEvictionApi()
    still_leading = iter([True, True, False])  # the cycle's own check, the first eviction, then lost
    big = {**NODES, "eu-a": node("eu-a", "eu-north-1", cpu=1000, memory=4000)}
    cfg = config(max_evictions_per_cycle=100, max_evictions_per_namespace=100, max_evictions_per_node=100)
    pods = many(5)
    inputs = CycleInputs(
        config=lambda: cfg,
        signals=signals,
        pods=lambda: {p.uid or p.name: p for p in pods},
        nodes=lambda: big,
        namespaces=dict,
        synced=lambda: True,
        is_leader=lambda: next(still_leading, False),
        api=api,
        clock=lambda: NOW,
    )
    report = run_cycle(inputs)
    assert len(api.calls) == 1
    assert report.outcome == "leadership-lost"


# A run-to-completion pod (a Job's, or any pod with restartPolicy Never or OnFailure) loses its
# progress when evicted: it stays unless a policy explicitly allows it, and then its lost hours count.
JOB_POD: dict[str, Any] = dict(
    owner_kind="Job", owner_name="train", owner_api_version="batch/v1", run_to_completion=True
)


@pytest.mark.parametrize(
    "overrides",
    [
        JOB_POD,
        dict(
            owner_kind="Workflow",
            owner_name="etl",
            owner_api_version="argoproj.io/v1alpha1",
            run_to_completion=True,
        ),
    ],
    ids=["job", "restart-never"],
)
def test_a_run_to_completion_pod_is_never_evicted_by_default(overrides: dict[str, Any]) -> None:
    result = run([pod(**overrides)])
    assert result.candidates == []
    assert [r.reason for r in result.refusals] == [str(Protected.RUN_TO_COMPLETION)]


def _allowing_policy() -> PolicySet:
    allowing = parse_policy(
        {
            "kind": "EcoPulsePolicy",
            "metadata": {"name": "batch", "namespace": "shop"},
            "spec": {"evictRunToCompletion": True},
        }
    )
    return build_policy_set([allowing], known_regions=frozenset({"us-east-1", "eu-north-1"}))


def test_a_policy_may_allow_it_and_the_lost_progress_is_priced_into_the_move() -> None:
    policies = _allowing_policy()
    service = plan(
        pods=[pod()],
        nodes=NODES,
        namespaces={},
        signals=signals(),
        config=config(),
        now=NOW,
        policies=policies,
    )
    job = plan(
        pods=[pod(**JOB_POD, started_at=NOW - timedelta(minutes=2))],
        nodes=NODES,
        namespaces={},
        signals=signals(),
        config=config(min_pod_age_seconds=60),
        now=NOW,
        policies=policies,
    )
    assert len(job.candidates) == 1
    lost = job.candidates[0].benefit.migration_cost_usd - service.candidates[0].benefit.migration_cost_usd
    # Two minutes run, at the pod's hourly cost where it runs (compute and carbon value).
    source = service.candidates[0].benefit
    # 4 vCPU x $0.03 + 8 GiB x $0.004 an hour; its carbon value where it runs, over the 6-hour
    # horizon, is 450/(450-30) of the move's.
    hourly_usd = 4 * 0.03 + 8 * 0.004 + source.carbon_value_usd * 450 / 420 / 6
    assert lost == pytest.approx(2 / 60 * hourly_usd)
    assert job.candidates[0].benefit.net_usd == pytest.approx(source.net_usd - lost)


def test_the_lost_progress_can_outweigh_the_move() -> None:
    # Run long enough, the hours thrown away cost more than the greener grid saves over the horizon.
    long_run = pod(**JOB_POD, started_at=NOW - timedelta(days=3))
    result = plan(
        pods=[long_run],
        nodes=NODES,
        namespaces={},
        signals=signals(),
        config=config(),
        now=NOW,
        policies=_allowing_policy(),
    )
    assert result.candidates == []
    assert [r.reason for r in result.refusals] == [BELOW_MIN_BENEFIT]
