"""Accounting: core.accounting.accrue (pure) and the leader's Accountant turning ledgers into counters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from core.accounting import Interval, Ledger, RunningPod, Skipped, accrue, by_namespace
from core.config import EcoPulseConfiguration, parse_config_text
from core.model import (
    CapacityType,
    CarbonSignal,
    NamespaceInfo,
    NodeRecord,
    PodDemand,
    PodRecord,
    SignalSnapshot,
)
from rebalancer.accounting import Accountant, accountable
from tests.factories import pod_record

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ZONES = {"us-east-1": "US-MIDA-PJM", "eu-west-1": "IE", "eu-north-1": "SE-SE3"}


def config() -> EcoPulseConfiguration:
    """10 W per vCPU at the wall, memory free: hand-computable energy."""
    price = {"gibHour": 0.0, "spotGibHour": 0.0}
    doc: dict[str, Any] = {
        "apiVersion": "ecopulse.io/v1alpha1",
        "kind": "EcoPulseConfiguration",
        "regions": [{"name": name, "zone": zone} for name, zone in ZONES.items()],
        "baselineRegion": "us-east-1",
        "power": {"minWattsPerVcpu": 10, "maxWattsPerVcpu": 10, "wattsPerGib": 0, "pue": 1},
        "prices": {
            "us-east-1": {"vcpuHour": 0.04, "spotVcpuHour": 0.02, **price},
            "eu-west-1": {"vcpuHour": 0.05, "spotVcpuHour": 0.01, **price},
            "eu-north-1": {"vcpuHour": 0.03, "spotVcpuHour": 0.01, **price},
        },
    }
    return parse_config_text(yaml.safe_dump(doc))


CONFIG = config()


DEFAULT_CARBON = {"us-east-1": 500.0, "eu-west-1": 600.0, "eu-north-1": 100.0}


def snapshot(carbon: dict[str, float] | None = None) -> SignalSnapshot:
    values = DEFAULT_CARBON if carbon is None else carbon
    return SignalSnapshot(
        taken_at=T0,
        provider="mock",
        carbon={
            region: CarbonSignal(
                region=region,
                zone=ZONES[region],
                carbon_g_per_kwh=value,
                observed_at=T0,
                fetched_at=T0,
                source="mock",
            )
            for region, value in values.items()
        },
    )


def running(
    region: str | None,
    cpu: float = 1.0,
    namespace: str = "shop",
    capacity: CapacityType = CapacityType.ON_DEMAND,
) -> RunningPod:
    return RunningPod(
        namespace=namespace,
        region=region,
        capacity_type=capacity,
        demand=PodDemand(cpu_cores=cpu, memory_gib=4.0),
    )


def test_a_hand_computed_interval() -> None:
    # eu-north-1: 2 vCPU x 10 W x 0.5 h = 0.01 kWh; 100 g/kWh -> 1 g; baseline 500 g/kWh -> 5 g.
    # eu-west-1: 1 vCPU x 10 W x 0.5 h = 0.005 kWh; 600 -> 3 g; baseline 2.5 g: 0.5 g added.
    ledger = accrue(
        [running("eu-north-1", cpu=2), running("eu-west-1", cpu=1)],
        signals=snapshot(),
        config=CONFIG,
        elapsed_seconds=1800,
    )
    north = ledger.accruals[("shop", "eu-north-1")]
    assert north.pods == 1
    assert north.pod_seconds == 1800
    assert north.energy_kwh == pytest.approx(0.01)
    assert north.emissions_grams == pytest.approx(1.0)
    assert north.baseline_emissions_grams == pytest.approx(5.0)
    assert north.avoided_grams == pytest.approx(4.0)
    assert north.cost_usd == pytest.approx(2 * 0.03 * 0.5)
    assert north.saved_usd == pytest.approx(2 * (0.04 - 0.03) * 0.5)
    west = ledger.accruals[("shop", "eu-west-1")]
    assert west.avoided_grams == pytest.approx(-0.5)  # dirtier than the baseline: negative, kept
    assert west.saved_usd == pytest.approx((0.04 - 0.05) * 0.5)
    assert ledger.cleaner_than_baseline == {"eu-north-1"}
    assert ledger.intensities["us-east-1"].carbon_g_per_kwh == 500
    assert ledger.intensities["eu-north-1"].observed_at == T0
    assert ledger.total().avoided_grams == pytest.approx(3.5)
    assert not ledger.skipped_pod_seconds


def test_spot_pods_are_compared_with_spot_in_the_baseline() -> None:
    ledger = accrue(
        [running("eu-west-1", cpu=1, capacity=CapacityType.SPOT)],
        signals=snapshot(),
        config=CONFIG,
        elapsed_seconds=3600,
    )
    west = ledger.accruals[("shop", "eu-west-1")]
    assert west.cost_usd == pytest.approx(0.01)
    assert west.baseline_cost_usd == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("pod", "carbon", "reason"),
    [
        (running(None), {}, Skipped.UNKNOWN_REGION),
        (running("ap-south-1"), {}, Skipped.UNKNOWN_REGION),
        (running("eu-north-1"), {"us-east-1": 500.0}, Skipped.REGION_SIGNAL_UNKNOWN),
        (running("eu-north-1"), {"eu-north-1": 100.0}, Skipped.BASELINE_SIGNAL_UNKNOWN),
    ],
)
def test_what_cannot_be_known_is_skipped_with_its_reason(
    pod: RunningPod, carbon: dict[str, float], reason: Skipped
) -> None:
    ledger = accrue([pod], signals=snapshot(carbon or None), config=CONFIG, elapsed_seconds=60)
    assert ledger.accruals == {}
    assert ledger.skipped_pod_seconds == {reason: 60}


def test_a_pod_in_the_baseline_region_avoids_nothing() -> None:
    ledger = accrue([running("us-east-1", cpu=3)], signals=snapshot(), config=CONFIG, elapsed_seconds=3600)
    accrual = ledger.accruals[("shop", "us-east-1")]
    assert accrual.avoided_grams == 0
    assert accrual.saved_usd == 0
    assert ledger.cleaner_than_baseline == frozenset()


REGIONS = st.sampled_from([None, "us-east-1", "eu-west-1", "eu-north-1", "xx-nowhere-1"])
PODS = st.lists(
    st.builds(
        running,
        region=REGIONS,
        cpu=st.floats(min_value=0.001, max_value=64),
        namespace=st.sampled_from(["a", "b", "c"]),
        capacity=st.sampled_from(list(CapacityType)),
    ),
    max_size=30,
)
INTENSITY = st.floats(min_value=0, max_value=1500)


@given(PODS, st.floats(min_value=0, max_value=86_400), INTENSITY, INTENSITY, INTENSITY)
def test_every_pod_second_is_accounted_or_skipped_and_avoided_is_baseline_minus_actual(
    pods: list[RunningPod], seconds: float, us: float, west: float, north: float
) -> None:
    ledger = accrue(
        pods,
        signals=snapshot({"us-east-1": us, "eu-west-1": west, "eu-north-1": north}),
        config=CONFIG,
        elapsed_seconds=seconds,
    )
    accounted = sum(a.pod_seconds for a in ledger.accruals.values())
    skipped = sum(ledger.skipped_pod_seconds.values())
    assert accounted + skipped == pytest.approx(len(pods) * seconds)
    total = ledger.total()
    assert total.avoided_grams == pytest.approx(total.baseline_emissions_grams - total.emissions_grams)
    namespaces = by_namespace(ledger)
    assert sum(a.avoided_grams for a in namespaces.values()) == pytest.approx(total.avoided_grams, abs=1e-9)
    for (_, region), accrual in ledger.accruals.items():
        sign = (us - {"us-east-1": us, "eu-west-1": west, "eu-north-1": north}[region]) * accrual.energy_kwh
        assert accrual.avoided_grams * sign >= 0  # avoided has the sign of the intensity gap


@given(PODS, st.floats(min_value=1, max_value=3600))
def test_accounting_is_linear_in_time(pods: list[RunningPod], seconds: float) -> None:
    once = accrue(pods, signals=snapshot(), config=CONFIG, elapsed_seconds=seconds).total()
    twice = accrue(pods, signals=snapshot(), config=CONFIG, elapsed_seconds=2 * seconds).total()
    assert twice.emissions_grams == pytest.approx(2 * once.emissions_grams)
    assert twice.saved_usd == pytest.approx(2 * once.saved_usd, abs=1e-12)


# --- the leader's side: which pods, and the counters ---------------------------------------------


def node(name: str, region: str | None, capacity: CapacityType = CapacityType.ON_DEMAND) -> NodeRecord:
    return NodeRecord(
        name=name,
        region=region,
        capacity_type=capacity,
        allocatable_cpu_cores=8,
        allocatable_memory_gib=32,
        schedulable=True,
    )


NODES = {"north-a": node("north-a", "eu-north-1"), "west-a": node("west-a", "eu-west-1", CapacityType.SPOT)}


def pod(name: str, **overrides: Any) -> PodRecord:
    defaults: dict[str, Any] = {
        "started_at": T0,
        "node_name": "north-a",
        "demand": PodDemand(cpu_cores=1, memory_gib=1),
    }
    return pod_record(name, **(defaults | overrides))


@pytest.mark.parametrize(
    ("record", "counted"),
    [
        (pod("web"), True),
        (pod("bare", owner_kind=None), True),  # a bare pod was placed by the webhook all the same
        (pod("terminating", deleting=True), True),  # still running, still drawing power
        (pod("pending", phase="Pending", node_name=""), False),
        (pod("done", phase="Succeeded"), False),
        (pod("ds", owner_kind="DaemonSet"), False),
        (pod("mirror", mirror=True), False),
        (pod("static", static=True), False),
        (pod("system", namespace="kube-system"), False),
        (pod("ours", namespace="eco-pulse"), False),
        (pod("out", hint_annotations={"ecopulse.io/opt-out": "true"}), False),
        (pod("ns-out", namespace="legacy"), False),
        (pod("unknown-node", node_name="gone-a"), False),
    ],
)
def test_which_pods_are_accounted(record: PodRecord, counted: bool) -> None:
    selected = accountable(
        [record],
        nodes=NODES,
        namespaces={"legacy": NamespaceInfo(opted_out=True)},
        own_namespace="eco-pulse",
    )
    assert bool(selected) is counted


def test_the_node_says_the_region_and_the_capacity_type() -> None:
    [selected] = accountable([pod("web", node_name="west-a")], nodes=NODES, namespaces={})
    assert selected.region == "eu-west-1"
    assert selected.capacity_type is CapacityType.SPOT


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_accountant_integrates_between_ticks_and_forgets_across_leadership() -> None:
    clock = Clock()
    accountant = Accountant(monotonic=clock)
    pods = [running("eu-north-1", cpu=2, namespace="acct-test"), running("eu-west-1", namespace="acct-test")]
    place = {"namespace": "acct-test", "region": "eu-north-1"}
    west = {"namespace": "acct-test", "region": "eu-west-1"}
    before = sample("ecopulse_carbon_avoided_grams_total", **place)

    first = accountant.tick(pods, signals=snapshot(), config=CONFIG)
    assert first.elapsed_seconds == 0  # opens the interval, counts nothing
    assert sample("ecopulse_managed_pods", **place) == 1
    # Both sides of each signed pair exist at once, so "avoided - added" never loses a namespace.
    assert REGISTRY.get_sample_value("ecopulse_carbon_added_grams_total", place) == 0
    assert (
        REGISTRY.get_sample_value("ecopulse_pod_seconds_total", {**place, "cleaner_than_baseline": "false"})
        == 0
    )

    clock.now += 1800
    second: Ledger = accountant.tick(pods, signals=snapshot(), config=CONFIG)
    assert second.elapsed_seconds == 1800
    assert sample("ecopulse_carbon_avoided_grams_total", **place) - before == pytest.approx(4.0)
    assert sample("ecopulse_carbon_added_grams_total", **west) == pytest.approx(0.5)
    assert sample("ecopulse_emissions_grams_total", **place) == pytest.approx(1.0)
    assert sample("ecopulse_energy_kwh_total", **place) == pytest.approx(0.01)
    assert sample("ecopulse_pod_seconds_total", **place, cleaner_than_baseline="true") == 1800
    assert sample("ecopulse_pod_seconds_total", **west, cleaner_than_baseline="false") == 1800

    accountant.reset()  # lost the Lease: the other replica counts from here
    assert REGISTRY.get_sample_value("ecopulse_managed_pods", place) is None
    clock.now += 3600
    third = accountant.tick(pods, signals=snapshot(), config=CONFIG)
    assert third.elapsed_seconds == 0
    assert sample("ecopulse_carbon_avoided_grams_total", **place) - before == pytest.approx(4.0)


def test_the_interval_opens_at_the_first_tick_and_after_a_reset() -> None:
    now = [100.0]
    interval = Interval(lambda: now[0])
    config, signals = CONFIG, snapshot()
    assert interval.accrue([], signals=signals, config=config).elapsed_seconds == 0.0
    now[0] = 160.0
    assert interval.accrue([], signals=signals, config=config).elapsed_seconds == 60.0
    interval.reset()
    now[0] = 400.0
    assert interval.accrue([], signals=signals, config=config).elapsed_seconds == 0.0
    now[0] = 430.0
    assert interval.accrue([], signals=signals, config=config).elapsed_seconds == 30.0
