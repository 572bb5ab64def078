"""core.power and core.economics: the power model, the horizon mean, and the net benefit of a move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from core.config import EcoPulseConfiguration, PowerSettings, parse_config_text
from core.economics import (
    GRAMS_PER_TONNE,
    RegionCost,
    horizon_hours,
    mean_intensity_g_per_kwh,
    migration_cost_usd,
    net_benefit,
    reference_region,
    region_cost,
)
from core.model import CapacityType, CarbonSignal, ForecastPoint, PlacementHints, PodDemand
from core.power import emissions_grams, pod_energy_kwh, pod_watts

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SAME_PRICE = {"vcpuHour": 0.04, "gibHour": 0.005, "spotVcpuHour": 0.015, "spotGibHour": 0.002}


def config(**sections: Any) -> EcoPulseConfiguration:
    doc: dict[str, Any] = {
        "apiVersion": "ecopulse.io/v1alpha1",
        "kind": "EcoPulseConfiguration",
        "regions": [
            {"name": "us-east-1", "zone": "US-MIDA-PJM"},
            {"name": "eu-west-1", "zone": "IE"},
            {"name": "eu-north-1", "zone": "SE-SE3"},
        ],
        "baselineRegion": "us-east-1",
    }
    doc.update(sections)
    return parse_config_text(yaml.safe_dump(doc))


def equal_prices(**sections: Any) -> EcoPulseConfiguration:
    prices = dict.fromkeys(("us-east-1", "eu-west-1", "eu-north-1"), SAME_PRICE)
    return config(prices=prices, **sections)


def signal(value: float, *forecast: tuple[float, float]) -> CarbonSignal:
    """A signal observed at T0; ``forecast`` is (hours after T0, g/kWh) pairs."""
    return CarbonSignal(
        region="us-east-1",
        zone="US-MIDA-PJM",
        carbon_g_per_kwh=value,
        observed_at=T0,
        fetched_at=T0,
        source="test",
        forecast=tuple(
            ForecastPoint(at=T0 + timedelta(hours=hours), carbon_g_per_kwh=g) for hours, g in forecast
        ),
    )


def cost(
    cfg: EcoPulseConfiguration,
    region: str,
    intensity: float,
    *,
    demand: PodDemand | None = None,
    hints: PlacementHints | None = None,
    hours: float = 6.0,
) -> RegionCost:
    return region_cost(
        region=region,
        demand=demand or PodDemand(cpu_cores=2.0, memory_gib=4.0),
        hints=hints or PlacementHints(),
        carbon_g_per_kwh=intensity,
        hours=hours,
        config=cfg,
    )


EQUAL = equal_prices(economics={"latencyPenaltyUsdPerMsHour": 0})
DEFAULT = config()
CAPPED = equal_prices(economics={"carbonPriceUsdPerTonne": 5000, "maxCarbonPriceUsdPerTonne": 300})
AT_CAP = equal_prices(economics={"carbonPriceUsdPerTonne": 300, "maxCarbonPriceUsdPerTonne": 1000})

# --- the power model ----------------------------------------------------------------------------


def test_power_model_by_hand_for_2_vcpu_4_gib_with_ccf_defaults() -> None:
    demand = PodDemand(cpu_cores=2.0, memory_gib=4.0)
    power = PowerSettings()
    watts = 2 * (0.74 + 0.5 * (3.5 - 0.74)) + 4 * 0.392
    assert watts == pytest.approx(5.808)
    assert pod_watts(demand, power) == pytest.approx(watts)
    assert pod_energy_kwh(demand, power, hours=6.0) == pytest.approx(watts * 1.135 * 6.0 / 1000)
    assert pod_energy_kwh(demand, power, hours=0.0) == 0.0
    assert emissions_grams(2.0, 300.0) == 600.0


@pytest.mark.parametrize(
    ("cpu", "memory", "watts"),
    [(0.0, 0.0, 0.0), (1.0, 0.0, 2.12), (0.0, 1.0, 0.392), (4.0, 16.0, 4 * 2.12 + 16 * 0.392)],
)
def test_power_is_linear_in_cpu_and_memory(cpu: float, memory: float, watts: float) -> None:
    assert pod_watts(PodDemand(cpu_cores=cpu, memory_gib=memory), PowerSettings()) == pytest.approx(watts)


def test_power_follows_its_settings() -> None:
    power = PowerSettings(
        min_watts_per_vcpu=1.0, max_watts_per_vcpu=5.0, cpu_utilisation=0.25, watts_per_gib=1.0
    )
    assert pod_watts(PodDemand(cpu_cores=2.0, memory_gib=3.0), power) == pytest.approx(2 * 2.0 + 3.0)
    assert pod_energy_kwh(PodDemand(cpu_cores=1.0, memory_gib=0.0), PowerSettings(pue=2.0), hours=1000.0) == (
        pytest.approx(2.12 * 2.0)
    )


# --- the mean intensity over the horizon -----------------------------------------------------------


def test_without_a_forecast_the_mean_is_the_current_value() -> None:
    assert mean_intensity_g_per_kwh(signal(123.0), start=T0, hours=6.0) == 123.0


def test_forecast_is_a_step_function_by_hand() -> None:
    # 100 for the first hour, then 200 for the remaining two: (100 + 2 x 200) / 3
    mean = mean_intensity_g_per_kwh(signal(100.0, (1.0, 200.0)), start=T0, hours=3.0)
    assert mean == pytest.approx(500 / 3)
    assert round(mean, 2) == 166.67


def test_forecast_points_in_any_order_each_hold_until_the_next() -> None:
    # 100 for 1 h, 400 for 1 h, 10 for 2 h: (100 + 400 + 20) / 4
    s = signal(100.0, (2.0, 10.0), (1.0, 400.0))
    assert mean_intensity_g_per_kwh(s, start=T0, hours=4.0) == pytest.approx(130.0)


def test_forecast_points_outside_the_window_are_ignored() -> None:
    s = signal(100.0, (-1.0, 999.0), (1.0, 200.0), (3.0, 999.0), (10.0, 999.0))
    assert mean_intensity_g_per_kwh(s, start=T0, hours=3.0) == pytest.approx(500 / 3)
    only_outside = signal(100.0, (-2.0, 999.0), (5.0, 999.0))
    assert mean_intensity_g_per_kwh(only_outside, start=T0, hours=3.0) == 100.0


def test_zero_hours_is_the_current_value() -> None:
    assert mean_intensity_g_per_kwh(signal(100.0, (1.0, 200.0)), start=T0, hours=0.0) == 100.0


@given(
    st.floats(0, 2000),
    st.lists(st.tuples(st.floats(-5, 20), st.floats(0, 2000)), max_size=6),
    st.floats(0.1, 12),
)
def test_the_mean_lies_between_the_lowest_and_highest_value_in_the_window(
    current: float, forecast: list[tuple[float, float]], hours: float
) -> None:
    s = signal(current, *forecast)
    in_window = [g for at, g in forecast if 0 < at < hours]
    mean = mean_intensity_g_per_kwh(s, start=T0, hours=hours)
    values = [current, *in_window]
    assert min(values) - 1e-6 <= mean <= max(values) + 1e-6


# --- horizon and reference ----------------------------------------------------------------------


def test_horizon_is_the_pods_expected_runtime_else_the_configured_one() -> None:
    cfg = config(economics={"horizonHours": 6})
    assert horizon_hours(PlacementHints(), cfg) == 6.0
    assert horizon_hours(PlacementHints(expected_runtime_hours=0.5), cfg) == 0.5
    assert horizon_hours(PlacementHints(expected_runtime_hours=0.0), cfg) == 6.0


def test_reference_region_is_the_data_region_else_the_baseline() -> None:
    assert reference_region(PlacementHints(), DEFAULT) == "us-east-1"
    assert reference_region(PlacementHints(data_region="eu-west-1"), DEFAULT) == "eu-west-1"


# --- net benefit by hand ------------------------------------------------------------------------


def test_net_benefit_parts_by_hand() -> None:
    cfg = config(
        prices={
            "us-east-1": {"vcpuHour": 0.04, "gibHour": 0.005, "spotVcpuHour": 0.01, "spotGibHour": 0.001},
            "eu-north-1": {"vcpuHour": 0.03, "gibHour": 0.004, "spotVcpuHour": 0.01, "spotGibHour": 0.001},
        },
        economics={
            "horizonHours": 10,
            "carbonPriceUsdPerTonne": 100,
            "migrationCostUsd": 0.01,
            "restartDowntimeSeconds": 360,
            "egressUsdPerGb": 0.05,
            "latencyPenaltyUsdPerMsHour": 0.0001,
        },
        latencyMs={"us-east-1": {"eu-north-1": 100}},
    )
    hints = PlacementHints(egress_gb_per_hour=1.0, data_region="us-east-1")
    source = cost(cfg, "us-east-1", 400.0, hints=hints, hours=10.0)
    target = cost(cfg, "eu-north-1", 50.0, hints=hints, hours=10.0)

    energy = 5.808 * 1.135 * 10 / 1000
    assert source.energy_kwh == pytest.approx(energy)
    assert source.compute_usd == pytest.approx((2 * 0.04 + 4 * 0.005) * 10)  # 1.00
    assert target.compute_usd == pytest.approx((2 * 0.03 + 4 * 0.004) * 10)  # 0.76
    assert source.egress_usd == 0.0  # the data is here
    assert target.egress_usd == pytest.approx(1.0 * 10 * 0.05)
    assert source.latency_penalty_usd == 0.0
    assert target.latency_penalty_usd == pytest.approx(0.0001 * 100 * 10)

    migration = migration_cost_usd(source, cfg)
    assert migration == pytest.approx(0.01 + (1.0 / 10) * 0.1)  # per move + 6 min of compute

    benefit = net_benefit(source, target, migration_usd=migration)
    assert (benefit.source, benefit.target) == ("us-east-1", "eu-north-1")
    assert benefit.price_savings_usd == pytest.approx(0.24)
    assert benefit.avoided_grams == pytest.approx(energy * 350)
    assert benefit.carbon_value_usd == pytest.approx(energy * 350 / 1e6 * 100)
    assert benefit.migration_cost_usd == pytest.approx(0.02)
    assert benefit.egress_cost_usd == pytest.approx(0.5)
    assert benefit.latency_penalty_usd == pytest.approx(0.1)
    assert benefit.net_usd == pytest.approx(0.24 + energy * 350 / 1e4 - 0.02 - 0.5 - 0.1)


def test_spot_pods_are_priced_at_spot_rates() -> None:
    demand = PodDemand(cpu_cores=2.0, memory_gib=4.0, capacity_type=CapacityType.SPOT)
    assert cost(EQUAL, "us-east-1", 100.0, demand=demand, hours=1.0).compute_usd == pytest.approx(
        2 * 0.015 + 4 * 0.002
    )


def test_a_new_pod_with_no_hours_has_only_the_per_move_migration_cost() -> None:
    cfg = config(economics={"migrationCostUsd": 0.07})
    assert migration_cost_usd(cost(cfg, "us-east-1", 100.0, hours=0.0), cfg) == pytest.approx(0.07)


# --- properties ----------------------------------------------------------------------------------

regions = st.sampled_from(["us-east-1", "eu-west-1", "eu-north-1"])
intensities = st.floats(0, 2000)
demands = st.builds(
    PodDemand,
    cpu_cores=st.floats(0.01, 64),
    memory_gib=st.floats(0.01, 256),
    capacity_type=st.sampled_from(CapacityType),
)
hint_values = st.builds(
    PlacementHints,
    egress_gb_per_hour=st.floats(0, 100),
    data_region=st.none() | regions,
)
hours_values = st.floats(0.1, 1000)
migrations = st.floats(0, 10)


@given(regions, intensities, demands, hint_values, hours_values, migrations)
def test_staying_put_is_worth_exactly_zero(
    region: str, intensity: float, demand: PodDemand, hints: PlacementHints, hours: float, migration: float
) -> None:
    here = cost(DEFAULT, region, intensity, demand=demand, hints=hints, hours=hours)
    benefit = net_benefit(here, here, migration_usd=migration)
    assert benefit.migration_cost_usd == 0.0
    assert benefit.net_usd == 0.0
    assert benefit.avoided_grams == 0.0


@given(regions, regions, intensities, intensities, demands, hint_values, hours_values, migrations)
def test_net_benefit_is_antisymmetric_apart_from_the_migration_cost(
    a: str,
    b: str,
    ga: float,
    gb: float,
    demand: PodDemand,
    hints: PlacementHints,
    hours: float,
    migration: float,
) -> None:
    cost_a = cost(DEFAULT, a, ga, demand=demand, hints=hints, hours=hours)
    cost_b = cost(DEFAULT, b, gb, demand=demand, hints=hints, hours=hours)
    forward = net_benefit(cost_a, cost_b, migration_usd=migration)
    backward = net_benefit(cost_b, cost_a, migration_usd=migration)
    moved = 0.0 if a == b else migration
    assert forward.migration_cost_usd == backward.migration_cost_usd == moved
    assert forward.price_savings_usd == -backward.price_savings_usd
    assert forward.carbon_value_usd == -backward.carbon_value_usd
    assert forward.egress_cost_usd == -backward.egress_cost_usd
    assert forward.latency_penalty_usd == -backward.latency_penalty_usd
    assert forward.net_usd + backward.net_usd == pytest.approx(-2 * moved, abs=1e-9)


@given(intensities, intensities, intensities, demands, hours_values)
def test_carbon_value_is_monotone_in_the_intensity_gap(
    target: float, s1: float, s2: float, demand: PodDemand, hours: float
) -> None:
    low, high = sorted((s1, s2))
    there = cost(DEFAULT, "eu-north-1", target, demand=demand, hours=hours)
    small_gap = net_benefit(
        cost(DEFAULT, "us-east-1", low, demand=demand, hours=hours), there, migration_usd=0
    )
    big_gap = net_benefit(
        cost(DEFAULT, "us-east-1", high, demand=demand, hours=hours), there, migration_usd=0
    )
    assert small_gap.carbon_value_usd <= big_gap.carbon_value_usd
    assert small_gap.avoided_grams <= big_gap.avoided_grams
    if high > target:
        assert big_gap.carbon_value_usd >= 0


@given(regions, regions, intensities, intensities, demands, hours_values)
def test_with_equal_prices_and_no_egress_the_move_pays_iff_carbon_beats_migration(
    a: str, b: str, ga: float, gb: float, demand: PodDemand, hours: float
) -> None:
    source = cost(EQUAL, a, ga, demand=demand, hours=hours)
    target = cost(EQUAL, b, gb, demand=demand, hours=hours)
    benefit = net_benefit(source, target, migration_usd=migration_cost_usd(source, EQUAL))
    assert benefit.price_savings_usd == 0.0
    assert benefit.egress_cost_usd == 0.0
    assert benefit.latency_penalty_usd == 0.0
    assert (benefit.net_usd > 0) == (benefit.carbon_value_usd > benefit.migration_cost_usd)


@given(
    st.floats(500, 1000),
    st.floats(0, 50),
    st.floats(10, 1000),
    st.builds(PodDemand, cpu_cores=st.floats(0.1, 8), memory_gib=st.floats(0.1, 32)),
    hours_values,
)
def test_the_equation_a_much_greener_region_does_not_pay_for_heavy_egress(
    dirty: float, green: float, egress: float, demand: PodDemand, hours: float
) -> None:
    hints = PlacementHints(egress_gb_per_hour=egress, data_region="us-east-1")
    source = cost(EQUAL, "us-east-1", dirty, demand=demand, hints=hints, hours=hours)
    target = cost(EQUAL, "eu-north-1", green, demand=demand, hints=hints, hours=hours)
    benefit = net_benefit(source, target, migration_usd=migration_cost_usd(source, EQUAL))
    assert benefit.carbon_value_usd > 0  # greener indeed ...
    assert benefit.egress_cost_usd > benefit.carbon_value_usd  # ... but the data is far away
    assert benefit.net_usd < 0


def test_the_same_move_without_egress_pays() -> None:
    source = cost(EQUAL, "us-east-1", 800.0, demand=PodDemand(cpu_cores=8, memory_gib=32), hours=1000.0)
    target = cost(EQUAL, "eu-north-1", 20.0, demand=PodDemand(cpu_cores=8, memory_gib=32), hours=1000.0)
    assert net_benefit(source, target, migration_usd=migration_cost_usd(source, EQUAL)).net_usd > 0


@given(regions, intensities, demands, hours_values)
def test_the_carbon_price_cap_is_honoured(
    region: str, intensity: float, demand: PodDemand, hours: float
) -> None:
    capped = cost(CAPPED, region, intensity, demand=demand, hours=hours)
    assert CAPPED.economics.effective_carbon_price_usd_per_tonne == 300.0
    assert capped.carbon_usd == pytest.approx(capped.emissions_grams / GRAMS_PER_TONNE * 300.0)
    assert capped.carbon_usd == cost(AT_CAP, region, intensity, demand=demand, hours=hours).carbon_usd
    assert capped.emissions_grams == pytest.approx(capped.energy_kwh * intensity)
