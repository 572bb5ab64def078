"""Price the move the scheduler will make: a pod with no capacity-type constraint lands on whatever
its target region offers, so the target is priced as it will run (issue 27)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from core.accounting import RunningPod, accrue
from core.config import EcoPulseConfiguration, parse_config_text
from core.model import (
    CapacityType,
    CarbonSignal,
    NodeRecord,
    PlacementHints,
    PodDemand,
    PriceQuote,
    SignalSnapshot,
)
from core.placement import PlacementChoice, choose_regions, landing_capacity, rank_regions
from core.podspec import pod_demand
from rebalancer.evictor import explain
from rebalancer.explain import figure_fields
from rebalancer.planner import BELOW_MIN_BENEFIT, plan
from tests.factories import pod_record
from webhook.admission.mutate import describe, log_fields

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SPOT, ON_DEMAND = CapacityType.SPOT, CapacityType.ON_DEMAND

CONFIG = """\
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
rebalancer: {minNetBenefitUsd: 0.001, minPodAgeSeconds: 60, dryRun: false, holdHours: 0, gapErrorMargin: 0}
"""


def config() -> EcoPulseConfiguration:
    return parse_config_text(CONFIG)


def snapshot() -> SignalSnapshot:
    def signal(region: str, zone: str, value: float) -> CarbonSignal:
        return CarbonSignal(
            region=region, zone=zone, carbon_g_per_kwh=value, observed_at=NOW, fetched_at=NOW, source="mock"
        )

    return SignalSnapshot(
        taken_at=NOW,
        provider="mock",
        carbon={
            "us-east-1": signal("us-east-1", "US-MIDA-PJM", 450),
            "eu-north-1": signal("eu-north-1", "SE-SE3", 30),
        },
    )


def node(name: str, region: str, capacity: CapacityType) -> NodeRecord:
    return NodeRecord(
        name=name,
        region=region,
        capacity_type=capacity,
        allocatable_cpu_cores=32,
        allocatable_memory_gib=128,
        schedulable=True,
    )


def run(target_capacities: tuple[CapacityType, ...], demand: PodDemand | None = None):  # type: ignore[no-untyped-def]
    nodes = {"us-spot": node("us-spot", "us-east-1", SPOT)}
    for index, capacity in enumerate(target_capacities):
        nodes[f"eu-{index}"] = node(f"eu-{index}", "eu-north-1", capacity)
    pod = pod_record(
        "web-1",
        started_at=NOW - timedelta(hours=5),
        node_name="us-spot",
        demand=demand or PodDemand(cpu_cores=4, memory_gib=8),
    )
    return plan(pods=[pod], nodes=nodes, namespaces={}, signals=snapshot(), config=config(), now=NOW)


def test_an_unconstrained_spot_pod_moving_to_a_spot_only_region_is_priced_at_spot_there() -> None:
    # The defect: the source was priced at spot and the target at on-demand, so a move that pays
    # (the replacement lands on spot: the region has nothing else) was refused below-min-net-benefit.
    result = run((SPOT,))
    assert [r.reason for r in result.refusals] == []
    (candidate,) = result.candidates
    assert candidate.target_region == "eu-north-1"
    assert candidate.benefit.price_savings_usd == pytest.approx(0.0)  # spot here, spot there
    assert (candidate.source_capacity, candidate.target_capacity, candidate.capacity_assumed) == (
        SPOT,
        SPOT,
        False,
    )


def test_a_region_with_on_demand_only_is_priced_on_demand_and_the_refusal_says_so() -> None:
    result = run((ON_DEMAND,))
    assert result.candidates == []
    (refusal,) = result.refusals
    assert refusal.reason == BELOW_MIN_BENEFIT
    figures = refusal.figures
    assert figures is not None and figures.benefit.price_savings_usd < 0
    assert (figures.source_capacity, figures.target_capacity, figures.capacity_assumed) == (
        SPOT,
        ON_DEMAND,
        False,
    )


def test_when_the_region_offers_both_the_decision_assumes_like_for_like_and_says_so() -> None:
    result = run((ON_DEMAND, SPOT))
    (candidate,) = result.candidates
    assert (candidate.target_capacity, candidate.capacity_assumed) == (SPOT, True)


def test_a_pod_that_asks_for_on_demand_is_priced_on_demand_wherever_it_goes() -> None:
    demand = PodDemand(cpu_cores=4, memory_gib=8, capacity_type=ON_DEMAND, capacity_constrained=True)
    result = run((ON_DEMAND, SPOT), demand=demand)
    (refusal,) = result.refusals
    assert refusal.figures is not None
    assert (refusal.figures.target_capacity, refusal.figures.capacity_assumed) == (ON_DEMAND, False)


@pytest.mark.parametrize(
    ("constrained", "wanted", "offered", "current", "expected"),
    [
        (True, SPOT, {ON_DEMAND}, ON_DEMAND, (SPOT, False)),  # its own constraint, always
        (False, ON_DEMAND, {SPOT}, ON_DEMAND, (SPOT, False)),
        (False, ON_DEMAND, {ON_DEMAND}, SPOT, (ON_DEMAND, False)),
        (False, ON_DEMAND, {ON_DEMAND, SPOT}, SPOT, (SPOT, True)),
        (False, ON_DEMAND, {ON_DEMAND, SPOT}, ON_DEMAND, (ON_DEMAND, True)),
        (False, ON_DEMAND, set(), SPOT, (SPOT, True)),  # no node known there: like for like, assumed
    ],
)
def test_landing_capacity(
    constrained: bool,
    wanted: CapacityType,
    offered: set[CapacityType],
    current: CapacityType,
    expected: tuple[CapacityType, bool],
) -> None:
    demand = PodDemand(cpu_cores=1, memory_gib=1, capacity_type=wanted, capacity_constrained=constrained)
    assert landing_capacity(demand, offered=frozenset(offered), current=current) == expected


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({}, (ON_DEMAND, False)),
        ({"karpenter.sh/capacity-type": "spot"}, (SPOT, True)),
        ({"karpenter.sh/capacity-type": "on-demand"}, (ON_DEMAND, True)),
        ({"cloud.google.com/gke-spot": "true"}, (SPOT, True)),
        ({"kubernetes.azure.com/scalesetpriority": "regular"}, (ON_DEMAND, True)),
        ({"disktype": "ssd"}, (ON_DEMAND, False)),
    ],
)
def test_a_pods_own_capacity_constraint(
    selector: dict[str, str], expected: tuple[CapacityType, bool]
) -> None:
    demand = pod_demand({"spec": {"nodeSelector": selector, "containers": [{"name": "c"}]}})
    assert (demand.capacity_type, demand.capacity_constrained) == expected


# --- every decision names its prices ---------------------------------------------------------------


def quoted(snapshot: SignalSnapshot, *, source: str, age_seconds: float) -> SignalSnapshot:
    cfg = config()
    quotes = {
        region: PriceQuote(
            rates=cfg.prices[region],
            source=source,
            spot_source=source,
            fetched_at=NOW - timedelta(seconds=age_seconds),
        )
        for region in cfg.region_names
    }
    return replace(snapshot, prices=quotes)


def test_the_rebalancers_event_and_refusal_line_name_the_prices_and_capacity() -> None:
    nodes = {"us-spot": node("us-spot", "us-east-1", SPOT), "eu-0": node("eu-0", "eu-north-1", SPOT)}
    pod = pod_record("web-1", started_at=NOW - timedelta(hours=5), node_name="us-spot")
    live = quoted(snapshot(), source="azure", age_seconds=125)
    result = plan(pods=[pod], nodes=nodes, namespaces={}, signals=live, config=config(), now=NOW)
    (candidate,) = result.candidates
    why = explain(candidate)
    assert "priced spot -> spot" in why and why.endswith("prices azure age<=125s")
    refused = figure_fields(run((ON_DEMAND,)).refusals[0].figures)
    assert refused["target_capacity_type"] == "on-demand" and refused["target_capacity_assumed"] is False
    assert float(str(refused["price_savings_usd"])) < 0


def test_the_webhooks_annotation_and_decision_line_name_the_prices() -> None:
    live = quoted(snapshot(), source="static(fallback)", age_seconds=0)
    demand = PodDemand(cpu_cores=4, memory_gib=8)
    cfg = config()
    ranking = rank_regions(demand=demand, hints=PlacementHints(), signals=live, config=cfg)
    choice = choose_regions(ranking, cfg)
    assert isinstance(choice, PlacementChoice)
    annotation = describe(ranking, choice, live)
    assert annotation.endswith("\nsignals: mock, at most 0 s old\nprices: static(fallback), at most 0 s old")
    assert log_fields(ranking, choice, live)["prices"] == {"source": "static(fallback)", "age_seconds": 0.0}


def test_live_prices_change_the_ranking() -> None:
    cfg = config()
    cheap_us = replace(cfg.prices["us-east-1"], vcpu_hour_usd=0.0001, gib_hour_usd=0.00001)
    live = replace(
        snapshot(),
        prices={
            "us-east-1": PriceQuote(rates=cheap_us, source="azure", spot_source="azure", fetched_at=NOW),
            "eu-north-1": PriceQuote(
                rates=cfg.prices["eu-north-1"], source="azure", spot_source="azure", fetched_at=NOW
            ),
        },
    )
    demand = PodDemand(cpu_cores=4, memory_gib=8)
    table_best = rank_regions(demand=demand, hints=PlacementHints(), signals=snapshot(), config=cfg).best
    live_best = rank_regions(demand=demand, hints=PlacementHints(), signals=live, config=cfg).best
    assert table_best is not None and table_best.region == "eu-north-1"
    assert live_best is not None and live_best.region == "us-east-1"


def test_the_accounting_costs_at_the_live_prices() -> None:
    cfg = config()
    live = quoted(snapshot(), source="azure", age_seconds=10)
    cheap = replace(cfg.prices["eu-north-1"], spot_vcpu_hour_usd=0.001, spot_gib_hour_usd=0.0001)
    live = replace(
        live, prices={**live.prices, "eu-north-1": replace(live.prices["eu-north-1"], rates=cheap)}
    )
    pod = RunningPod(
        namespace="shop",
        region="eu-north-1",
        demand=PodDemand(cpu_cores=4, memory_gib=8),
        capacity_type=SPOT,
    )
    table = accrue([pod], signals=snapshot(), config=cfg, elapsed_seconds=3600)
    priced = accrue([pod], signals=live, config=cfg, elapsed_seconds=3600)
    assert table.accruals[("shop", "eu-north-1")].cost_usd == pytest.approx(4 * 0.01 + 8 * 0.001)
    assert priced.accruals[("shop", "eu-north-1")].cost_usd == pytest.approx(4 * 0.001 + 8 * 0.0001)
