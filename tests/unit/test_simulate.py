"""The what-if replay: exact emissions on a hand-computable trace, and its invariants."""

from __future__ import annotations

import itertools
import json
import math
import random
import statistics
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import EcoPulseConfiguration, parse_config_text
from core.trace import Trace, TraceError, parse_time, parse_trace
from rebalancer.simulate.cli import main as simulate_main
from rebalancer.simulate.engine import (
    CARBON_BLIND,
    ECOPULSE,
    HOURLY_ORACLE,
    POLICIES,
    STATIC_BEST,
    SimulationResult,
    Simulator,
)
from rebalancer.simulate.forecast import Forecaster, ForecastModel
from rebalancer.simulate.report import report_data
from rebalancer.simulate.workload import WorkloadError, parse_workload

HEADER = "datetime_utc,zone,carbon_intensity_direct_g_per_kwh,carbon_intensity_lifecycle_g_per_kwh\n"
START = datetime(2022, 1, 1, tzinfo=UTC)
PRICE = "{vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}"


def trace_text(series: dict[str, list[float]]) -> str:
    rows = [
        f"{(START + timedelta(hours=hour)).strftime('%Y-%m-%dT%H:%M:%SZ')},{zone},{value / 2},{value}"
        for zone, values in series.items()
        for hour, value in enumerate(values)
    ]
    return HEADER + "\n".join(rows) + "\n"


def config(
    zones: list[str],
    *,
    min_age: float = 7200,
    interval: float = 3600,
    migration: float = 0.0,
    downtime: float = 0.0,
    horizon: float = 1.0,
    carbon_price: float = 1000.0,
    carbon: str = "{provider: static}",
    hold_hours: int = 0,
    gap_error_margin: float = 0.0,
) -> EcoPulseConfiguration:
    # The plain rule unless asked: these traces are hours long, shorter than any history the robust
    # rule needs, and they pin what the plain rule does.
    regions = "\n".join(f"  - {{name: r{zone.lower()}, zone: {zone}}}" for zone in zones)
    prices = "\n".join(f"  r{zone.lower()}: {PRICE}" for zone in zones)
    return parse_config_text(
        f"""
regions:
{regions}
carbon: {carbon}
economics:
  horizonHours: {horizon}
  carbonPriceUsdPerTonne: {carbon_price}
  migrationCostUsd: {migration}
  restartDowntimeSeconds: {downtime}
# 1 kWh per vCPU-hour exactly, nothing for memory: emissions by hand
power: {{minWattsPerVcpu: 1000, maxWattsPerVcpu: 1000, wattsPerGib: 0, pue: 1}}
prices:
{prices}
rebalancer:
  intervalSeconds: {interval}
  minPodAgeSeconds: {min_age}
  minNetBenefitUsd: 0
  holdHours: {hold_hours}
  gapErrorMargin: {gap_error_margin}
"""
    )


def simulate(
    cfg: EcoPulseConfiguration, series: dict[str, list[float]], workload: dict[str, Any]
) -> SimulationResult:
    trace = parse_trace(trace_text(series), zones=set(series))
    parsed = parse_workload(workload, regions=frozenset(cfg.region_names))
    return Simulator(config=cfg, trace=trace, workload=parsed).run()


HAND_SERIES = {"ZA": [100.0, 100.0, 100.0, 100.0], "ZB": [40.0, 200.0, 40.0, 40.0]}
HAND_WORKLOAD: dict[str, Any] = {
    "capacity": {"rza": {"cpu": 2, "memory": "8Gi"}, "rzb": {"cpu": 1, "memory": "8Gi"}},
    "workloads": [
        {
            "name": "web",
            "namespace": "shop",
            "replicas": 2,
            "cpu": "1",
            "memory": "1Gi",
            "startRegion": "rza",
            "maxUnavailable": 2,
        },
    ],
}


def test_hand_computed_emissions_for_every_policy() -> None:
    result = simulate(config(["ZA", "ZB"]), HAND_SERIES, HAND_WORKLOAD)
    # 2 pods x 1 vCPU = 2 kWh per hour in all; only where they draw it differs.
    blind = 2 * 100 * 4  # both in A all the time
    static = 1 * 100 * 4 + 1 * (40 + 200 + 40 + 40)  # B's mean (80) beats A's (100); B holds one pod
    oracle = (100 + 40) + (100 + 100) + (100 + 40) + (100 + 40)  # B when B is cleaner, back in hour 1
    # ecopulse: moves one pod to B in hour 0; at hour 1 it is too young (minPodAge 2 h) to come
    # back; after that B is best but full.
    ecopulse = (100 + 40) + (100 + 200) + (100 + 40) + (100 + 40)
    expected = {CARBON_BLIND: blind, STATIC_BEST: static, HOURLY_ORACLE: oracle, ECOPULSE: ecopulse}
    for name, grams in expected.items():
        assert result.policies[name].emissions_grams == pytest.approx(grams), name
        assert result.policies[name].energy_kwh == pytest.approx(8.0)
    assert [result.policies[n].migrations for n in POLICIES] == [0, 1, 3, 1]
    (move,) = result.policies[ECOPULSE].moves
    assert (move.source, move.target, move.hour) == ("rza", "rzb", 0)
    # 1 kWh x 60 g less, at 1000 $/t, over the 1 h horizon; no migration cost
    assert move.predicted_net_benefit_usd == pytest.approx(0.06)
    assert move.realised_net_benefit_usd == pytest.approx(0.06)
    assert result.reduction_percent(HOURLY_ORACLE) == pytest.approx(100 * (1 - 620 / 800))


def test_without_cooldown_ecopulse_matches_the_oracle_here() -> None:
    result = simulate(config(["ZA", "ZB"], min_age=0), HAND_SERIES, HAND_WORKLOAD)
    assert result.policies[ECOPULSE].emissions_grams == pytest.approx(620)
    assert result.policies[ECOPULSE].migrations == 3


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    regions=st.integers(min_value=2, max_value=3),
    hours=st.integers(min_value=1, max_value=6),
    min_age=st.sampled_from([0, 1800, 3600]),
)
def test_oracle_is_never_beaten_and_moves_have_positive_predicted_benefit(
    data: st.DataObject, regions: int, hours: int, min_age: int
) -> None:
    zones = ["ZA", "ZB", "ZC"][:regions]
    series = {
        zone: data.draw(st.lists(st.integers(0, 800).map(float), min_size=hours, max_size=hours), label=zone)
        for zone in zones
    }
    capacity = {
        f"r{zone.lower()}": {
            "cpu": 3 if i == 0 else data.draw(st.integers(1, 3), label=f"cap {zone}"),
            "memory": "64Gi",
        }
        for i, zone in enumerate(zones)
    }
    workload = {
        "capacity": capacity,
        "workloads": [
            {
                "name": "w",
                "namespace": "n",
                "replicas": 3,
                "cpu": "1",
                "memory": "2Gi",
                "startRegion": "rza",
                "maxUnavailable": data.draw(st.integers(0, 3), label="maxUnavailable"),
            },
        ],
    }
    result = simulate(config(zones, min_age=min_age, interval=1800), series, workload)
    best = result.policies[HOURLY_ORACLE].emissions_grams
    for name in POLICIES:
        assert best <= result.policies[name].emissions_grams + 1e-6, name
    for move in result.policies[ECOPULSE].moves:
        assert move.predicted_net_benefit_usd > 0


def _wavy_series(hours: int) -> dict[str, list[float]]:
    rng = random.Random(7)
    return {
        "ZA": [300 + rng.uniform(-150, 150) for _ in range(hours)],
        "ZB": [250 + rng.uniform(-200, 200) for _ in range(hours)],
        "ZC": [200 + rng.uniform(-180, 180) for _ in range(hours)],
    }


def _workload(egress: float = 0.0) -> dict[str, Any]:
    return {
        "capacity": {
            "rza": {"cpu": 40, "memory": "160Gi"},
            "rzb": {"cpu": 20, "memory": "80Gi"},
            "rzc": {"cpu": 20, "memory": "80Gi"},
        },
        "workloads": [
            {
                "name": "w",
                "namespace": "n",
                "replicas": 10,
                "cpu": "2",
                "memory": "4Gi",
                "startRegion": "rza",
                "maxUnavailable": 3,
                "dataRegion": "rza",
                "egressGbPerHour": egress,
            },
        ],
    }


def test_raising_migration_cost_never_adds_moves() -> None:
    series = _wavy_series(48)
    moves = [
        simulate(
            config(["ZA", "ZB", "ZC"], min_age=0, migration=cost, horizon=6, carbon_price=200),
            series,
            _workload(),
        )
        .policies[ECOPULSE]
        .migrations
        for cost in (0.0, 0.005, 0.02, 0.05, 0.2, 5.0)
    ]
    assert moves[0] > 0
    assert moves == sorted(moves, reverse=True)
    assert moves[-1] == 0


# -- egress: what is monotone, and what is not ----------------------------------------------------
#
# Each decision is monotone in egress: egress is charged for running away from the data region, so
# raising it lowers the net benefit of every move away from the data region and raises that of every
# move back to it by the same amount (egress GB/h x $/GB x horizon). With two regions this makes the
# planner a relay on the carbon difference d (data region minus the other, in USD over the horizon):
# leave when d > egress + migration + minimum, come home when d < egress - migration - minimum.
# Raising egress raises both thresholds, so at every cycle a cluster with more egress wants "away"
# only if the one with less does, and each cycle's step (up to the eviction limits, the budget
# and the room, toward the wanted side) keeps the two clusters' counts in order. Hence:
#
#   with the data region and one other region and no cooldown, the number of a workload's pods
#   away from its data region is, at every hour, non-increasing in egress (and so is the egress).
#
# The number of MOVES is not: the band between the thresholds moves with egress, and the moves are
# its crossings by d. A d that swings around the egress crosses it more often than one that stays
# above zero: then each return home and each departure pays (no decision is wrong, coming home
# saves the egress). And with a cooldown a pod that left later may be held away while one that left
# earlier is already allowed home; with a cooldown longer than the trace nobody comes home, and
# then moves are departures, non-increasing in egress.


def _two_region_workload(
    egress: float, *, replicas: int, room: int, budget: int, start: str
) -> dict[str, Any]:
    return {
        "capacity": {"rza": {"cpu": replicas, "memory": "64Gi"}, "rzb": {"cpu": room, "memory": "64Gi"}},
        "workloads": [
            {
                "name": "w",
                "namespace": "n",
                "replicas": replicas,
                "cpu": "1",
                "memory": "1Gi",
                "startRegion": start,
                "maxUnavailable": budget,
                "dataRegion": "rza",
                "egressGbPerHour": egress,
            }
        ],
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    hours=st.integers(min_value=2, max_value=10),
    egress=st.lists(st.floats(0, 8), min_size=2, max_size=3).map(sorted),
    replicas=st.integers(1, 4),
    budget=st.integers(0, 4),
    interval=st.sampled_from([900, 1800, 3600]),
    migration=st.sampled_from([0.0, 0.001, 0.01]),
    horizon=st.sampled_from([1.0, 3.0, 6.0]),
)
def test_pods_away_from_the_data_region_never_increase_with_egress(
    data: st.DataObject,
    hours: int,
    egress: list[float],
    replicas: int,
    budget: int,
    interval: int,
    migration: float,
    horizon: float,
) -> None:
    series = {
        zone: data.draw(st.lists(st.integers(0, 800).map(float), min_size=hours, max_size=hours), label=zone)
        for zone in ("ZA", "ZB")
    }
    room = data.draw(st.integers(replicas, 4), label="room in rzb")
    start = data.draw(st.sampled_from(["rza", "rzb"]), label="start")
    cfg = config(
        ["ZA", "ZB"], min_age=0, interval=interval, migration=migration, horizon=horizon, carbon_price=200
    )
    away = [
        [
            row[1]
            for row in simulate(
                cfg, series, _two_region_workload(e, replicas=replicas, room=room, budget=budget, start=start)
            )
            .policies[ECOPULSE]
            .pods_per_region
        ]
        for e in egress
    ]
    for less, more in itertools.pairwise(away):
        assert all(m <= n for n, m in zip(less, more, strict=True)), (less, more)


def _one_pod(egress: float) -> dict[str, Any]:
    return _two_region_workload(egress, replicas=1, room=1, budget=1, start="rza")


def test_more_egress_can_rightly_add_moves() -> None:
    # At 1000 $/t and 1 kWh per hour, 1 g/kWh is 0.001 $/h; 5 GB/h at 0.02 $/GB is 0.1 $/h, worth
    # 100 g/kWh. The data region rza is dirtier by 10 or 200 g/kWh, hour by hour.
    series = {"ZA": [210.0, 400.0, 210.0, 400.0], "ZB": [200.0, 200.0, 200.0, 200.0]}
    without = simulate(config(["ZA", "ZB"], min_age=0), series, _one_pod(0.0)).policies[ECOPULSE]
    assert [row[1] for row in without.pods_per_region] == [1, 1, 1, 1]  # leaves once, stays
    costly = simulate(config(["ZA", "ZB"], min_age=0), series, _one_pod(5.0)).policies[ECOPULSE]
    # away only when rzb is 200 g/kWh cleaner: 0.2 $/h of carbon against 0.1 $/h of egress; home
    # when it is 10 g/kWh cleaner, saving 0.1 - 0.01 $/h. Every move pays, as predicted and realised.
    assert [row[1] for row in costly.pods_per_region] == [0, 1, 0, 1]
    assert (without.migrations, costly.migrations) == (1, 3)
    assert all(m.predicted_net_benefit_usd > 0 and m.realised_net_benefit_usd > 0 for m in costly.moves)


def test_with_a_cooldown_pods_away_need_not_be_monotone_in_egress() -> None:
    # Without egress the pod leaves at hour 0 (rzb 50 g/kWh cleaner); with 5 GB/h only at hour 1
    # (200 cleaner). At hour 2 rza is the cleaner: the first is 2 h old and comes home, the second
    # is 1 h old and must stay (minPodAge 2 h).
    series = {"ZA": [150.0, 300.0, 100.0, 100.0], "ZB": [100.0, 100.0, 150.0, 150.0]}
    away = {
        egress: [
            row[1]
            for row in simulate(config(["ZA", "ZB"], min_age=7200), series, _one_pod(egress))
            .policies[ECOPULSE]
            .pods_per_region
        ]
        for egress in (0.0, 5.0)
    }
    assert away == {0.0: [1, 1, 0, 0], 5.0: [0, 1, 1, 0]}
    without_cooldown = simulate(config(["ZA", "ZB"], min_age=0), series, _one_pod(5.0)).policies[ECOPULSE]
    assert [row[1] for row in without_cooldown.pods_per_region] == [0, 1, 0, 0]


def test_with_a_cooldown_longer_than_the_trace_raising_egress_never_adds_moves() -> None:
    """Nobody comes home: every move is a departure, and departures fall with egress."""
    series = _wavy_series(48)
    cfg = config(["ZA", "ZB", "ZC"], min_age=48 * 3600, horizon=6, carbon_price=200)
    moves = [
        simulate(cfg, series, _workload(egress)).policies[ECOPULSE].migrations
        for egress in (0.0, 1.0, 3.0, 5.0, 10.0)
    ]
    assert moves[0] > 0
    assert moves == sorted(moves, reverse=True)
    assert moves[-1] == 0


def test_egress_is_charged_away_from_the_data_region() -> None:
    workload = _workload(egress=1.0)
    result = simulate(config(["ZA", "ZB", "ZC"], min_age=0), _wavy_series(4), workload)
    assert result.policies[CARBON_BLIND].egress_usd == 0.0
    # the oracle moves pods out of rza somewhere: 1 GB/h each at the default 0.02 $/GB
    away = sum(row[1] + row[2] for row in result.policies[HOURLY_ORACLE].pods_per_region)
    assert result.policies[HOURLY_ORACLE].egress_usd == pytest.approx(away * 0.02)


# Clean now, dirty for the next five hours, clean again: only a forecast sees it coming.
SPIKE = {"ZA": [100.0] * 8, "ZB": [10.0, 900.0, 900.0, 900.0, 900.0, 900.0, 10.0, 10.0]}
ONE_POD: dict[str, Any] = {
    "capacity": {"rza": {"cpu": 1, "memory": "8Gi"}, "rzb": {"cpu": 1, "memory": "8Gi"}},
    "workloads": [
        {"name": "w", "namespace": "n", "replicas": 1, "cpu": "1", "startRegion": "rza", "maxUnavailable": 1}
    ],
}
FORECASTS = {
    "no forecast": ("{provider: static}", 0),
    "electricitymaps forecast": ("{provider: electricitymaps, electricitymaps: {forecast: true}}", 24),
    "trace forecast": ("{provider: trace, trace: {path: unused.csv, forecastHours: 6}}", 6),
}


@pytest.mark.parametrize(("carbon", "hours"), FORECASTS.values(), ids=FORECASTS)
def test_a_forecast_keeps_a_pod_from_a_region_about_to_turn_dirty(carbon: str, hours: int) -> None:
    cfg = config(["ZA", "ZB"], min_age=7200, horizon=6, carbon=carbon)
    result = simulate(cfg, SPIKE, ONE_POD)
    eco = result.policies[ECOPULSE]
    assert result.forecast_hours == hours
    assert report_data(result)["meta"]["forecast"] == (f"perfect, {hours} hours" if hours else "none")
    if not hours:
        # rzb at 10 against 100 for all 6 hours, as far as it knows: it goes, is held 2 h, comes back.
        assert [row[1] for row in eco.pods_per_region] == [1, 1, 0, 0, 0, 0, 1, 1]
        assert eco.moves[0].hour == 0 and eco.moves[0].realised_net_benefit_usd < 0
    else:
        # The mean over the next 6 h is (10 + 5 x 900) / 6 = 752: it waits for the spike to pass.
        assert [row[1] for row in eco.pods_per_region] == [0, 0, 0, 0, 0, 0, 1, 1]
        assert [(m.hour, m.source, m.target) for m in eco.moves] == [(6, "rza", "rzb")]
    assert eco.emissions_grams == pytest.approx(
        sum(SPIKE["ZB" if away else "ZA"][h] for h, (_, away) in enumerate(eco.pods_per_region))
    )


def test_a_forecast_stops_at_the_end_of_the_trace() -> None:
    cfg = config(["ZA", "ZB"], horizon=6, carbon=FORECASTS["trace forecast"][0])
    trace = parse_trace(trace_text(SPIKE), zones=set(SPIKE))
    simulator = Simulator(config=cfg, trace=trace, workload=parse_workload(ONE_POD))
    assert [len(simulator.signals_at(h).carbon["rzb"].forecast) for h in range(8)] == [6, 6, 5, 4, 3, 2, 1, 0]
    points = simulator.signals_at(1).carbon["rzb"].forecast
    assert [(p.at, p.carbon_g_per_kwh) for p in points[:2]] == [
        (START + timedelta(hours=2), 900.0),
        (START + timedelta(hours=3), 900.0),
    ]


def test_trace_errors_name_the_line() -> None:
    with pytest.raises(TraceError, match=r":3: carbon_intensity_lifecycle_g_per_kwh"):
        parse_trace(HEADER + "2022-01-01T00:00:00Z,ZA,1,2\n2022-01-01T01:00:00Z,ZA,1,oops\n", zones={"ZA"})
    with pytest.raises(TraceError, match=r":2: datetime_utc"):
        parse_trace(HEADER + "yesterday,ZA,1,2\n", zones={"ZA"})
    with pytest.raises(TraceError, match=r"no value for 1 hour"):
        parse_trace(HEADER + "2022-01-01T00:00:00Z,ZA,1,2\n2022-01-01T02:00:00Z,ZA,1,2\n", zones={"ZA"})
    with pytest.raises(TraceError, match=r"no rows for zone 'ZB'"):
        parse_trace(HEADER + "2022-01-01T00:00:00Z,ZA,1,2\n", zones={"ZA", "ZB"})


def test_trace_keeps_the_period_and_the_column() -> None:
    text = trace_text({"ZA": [10.0, 20.0, 30.0]})
    trace: Trace = parse_trace(
        text,
        zones={"ZA"},
        intensity="direct",
        start=parse_time("2022-01-01T01:00:00Z"),
        end=parse_time("2022-01-01T02:00Z"),
    )
    assert trace.zones == {"ZA": (10.0,)}


def test_workload_errors_name_the_key() -> None:
    with pytest.raises(WorkloadError) as caught:
        parse_workload(
            {
                "capacity": {"ra": {"cpu": "x", "memory": "1Gi"}},
                "workloads": [
                    {"name": "w", "replicas": 0, "cpu": "1", "startRegion": "nowhere", "colour": 1}
                ],
            },
            regions=frozenset({"ra"}),
        )
    text = str(caught.value)
    for key in (
        "capacity.ra.cpu",
        "workloads[0].replicas",
        "workloads[0].startRegion",
        "workloads[0].colour",
    ):
        assert key in text
    with pytest.raises(WorkloadError, match=r"capacity.ra: the workloads starting there need 4"):
        parse_workload(
            {
                "capacity": {"ra": {"cpu": 2, "memory": "8Gi"}},
                "workloads": [{"name": "w", "replicas": 4, "cpu": "1", "startRegion": "ra"}],
            }
        )


def test_cli_writes_json_and_html(tmp_path: Path) -> None:
    cfg_text = """
regions: [{name: rza, zone: ZA}, {name: rzb, zone: ZB}]
power: {minWattsPerVcpu: 1000, maxWattsPerVcpu: 1000, wattsPerGib: 0, pue: 1}
economics: {horizonHours: 1, carbonPriceUsdPerTonne: 1000, migrationCostUsd: 0, restartDowntimeSeconds: 0}
prices: {rza: PRICE, rzb: PRICE}
rebalancer: {intervalSeconds: 3600, minPodAgeSeconds: 7200, minNetBenefitUsd: 0, holdHours: 0, gapErrorMargin: 0}
""".replace("PRICE", PRICE)
    (tmp_path / "config.yaml").write_text(cfg_text)
    (tmp_path / "trace.csv").write_text(trace_text(HAND_SERIES))
    (tmp_path / "workload.yaml").write_text(json.dumps(HAND_WORKLOAD))
    out = tmp_path / "out"
    code = simulate_main(
        [
            "--config", str(tmp_path / "config.yaml"),
            "--trace", str(tmp_path / "trace.csv"),
            "--workload", str(tmp_path / "workload.yaml"),
            "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["policies"]["hourly-oracle"]["emissionsGrams"] == pytest.approx(620)
    assert report["policies"]["ecopulse"]["reductionVsCarbonBlindPercent"] == pytest.approx(10.0)
    assert report["policies"]["ecopulse"]["moves"][0]["predictedNetBenefitUsd"] == pytest.approx(0.06)
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 4  # three plots and the predicted-vs-realised scatter
    bad = simulate_main(["--config", str(tmp_path / "config.yaml"), "--trace", str(tmp_path / "nope.csv"),
                         "--workload", str(tmp_path / "workload.yaml"), "--out", str(out)])  # fmt: skip
    assert bad == 2


def test_module_dispatches_simulate() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "rebalancer", "simulate", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0
    assert "--trace" in run.stdout


def test_with_a_perfect_forecast_over_the_horizon_realised_is_what_the_planner_predicted() -> None:
    """One ruler: the realised net benefit is core.economics' over the hours that followed, so a
    planner that saw exactly those hours (a perfect forecast as long as the horizon) predicted it."""
    cfg = config(
        ["ZA", "ZB", "ZC"],
        min_age=0,
        migration=0.01,
        downtime=60,
        horizon=6,
        carbon_price=200,
        carbon="{provider: trace, trace: {path: unused.csv, forecastHours: 6}}",
    )
    hours = 48
    result = simulate(cfg, _wavy_series(hours), _workload(egress=0.5))
    moves = [m for m in result.policies[ECOPULSE].moves if m.hour + 6 <= hours]
    assert moves
    for move in moves:
        assert move.realised_net_benefit_usd == pytest.approx(move.predicted_net_benefit_usd, abs=1e-9)


# -- forecast models ------------------------------------------------------------------------------

WAVY = _wavy_series(72)


def _forecaster(model: ForecastModel, seed: int = 0, hours: int = 6) -> Forecaster:
    return Forecaster.build(model, hours=hours, seed=seed, series=WAVY)


def test_noisy_forecasts_are_reproducible_from_their_seed() -> None:
    first = [_forecaster(ForecastModel.NOISY, seed=3).ahead("ZB", h) for h in range(0, 72, 5)]
    # asked in another order, by another instance: the same values
    again = _forecaster(ForecastModel.NOISY, seed=3)
    assert [again.ahead("ZB", h) for h in reversed(range(0, 72, 5))][::-1] == first
    other = [_forecaster(ForecastModel.NOISY, seed=4).ahead("ZB", h) for h in range(0, 72, 5)]
    assert other != first


def test_noisy_error_grows_with_lead_time_and_is_estimated_from_the_trace() -> None:
    noisy = _forecaster(ForecastModel.NOISY, hours=12)
    spread = noisy.spread["ZA"]
    assert list(spread) == sorted(spread) and spread[0] > 0
    logs = [math.log(x) for x in WAVY["ZA"]]
    one = [b - a for a, b in itertools.pairwise(logs)]
    assert spread[0] == pytest.approx(statistics.stdev(one))
    errors: dict[int, list[float]] = {1: [], 12: []}
    for seed in range(40):
        f = _forecaster(ForecastModel.NOISY, seed=seed, hours=12)
        for hour in range(0, 50, 7):
            ahead = f.ahead("ZA", hour)
            for lead, found in errors.items():
                found.append(math.log(ahead[lead - 1] / WAVY["ZA"][hour + lead]))
    assert statistics.stdev(errors[12]) > statistics.stdev(errors[1])
    assert statistics.stdev(errors[1]) == pytest.approx(spread[0], rel=0.25)
    assert noisy.describe()["seed"] == 0 and "spreadByLeadHours" in noisy.describe()


def test_persistence_holds_the_current_value_and_perfect_is_the_trace() -> None:
    assert _forecaster(ForecastModel.PERSISTENCE).ahead("ZC", 10) == [WAVY["ZC"][10]] * 6
    assert _forecaster(ForecastModel.PERFECT).ahead("ZC", 10) == WAVY["ZC"][11:17]
    assert _forecaster(ForecastModel.NONE).ahead("ZC", 10) == []
    assert _forecaster(ForecastModel.PERFECT).ahead("ZC", 70) == WAVY["ZC"][71:]


def test_the_report_says_which_forecast_and_which_moves_paid() -> None:
    cfg = config(["ZA", "ZB"], min_age=7200, horizon=6)
    trace = parse_trace(trace_text(SPIKE), zones=set(SPIKE))
    result = Simulator(
        config=cfg, trace=trace, workload=parse_workload(ONE_POD), forecast=ForecastModel.NOISY, seed=1
    ).run()
    data = report_data(result)
    assert data["meta"]["forecast"] == "noisy, 24 hours"
    assert data["meta"]["forecastModel"]["model"] == "noisy"
    assert data["meta"]["forecastModel"]["seed"] == 1
    eco = data["policies"][ECOPULSE]
    assert eco["movesThatPaid"] == sum(m["realisedNetBenefitUsd"] > 0 for m in eco["moves"])


def test_a_spot_workload_pays_spot_prices_and_moves_where_spot_is_cheaper() -> None:
    cfg = parse_config_text(
        """
regions: [{name: rza, zone: ZA}, {name: rzb, zone: ZB}]
economics: {horizonHours: 6, carbonPriceUsdPerTonne: 0, migrationCostUsd: 0, restartDowntimeSeconds: 0}
prices:
  rza: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.02, spotGibHour: 0.002}
  rzb: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}
rebalancer: {intervalSeconds: 3600, minPodAgeSeconds: 0, minNetBenefitUsd: 0, maxEvictionsPerWorkload: 2,
             holdHours: 0, gapErrorMargin: 0}
"""
    )
    batch: dict[str, Any] = {"name": "batch", "replicas": 2, "cpu": "1", "memory": "2Gi", "startRegion": "rza",
             "maxUnavailable": 2, "capacityType": "spot"}  # fmt: skip
    workload = {
        "capacity": {"rza": {"cpu": 2, "memory": "8Gi"}, "rzb": {"cpu": 2, "memory": "8Gi"}},
        "workloads": [batch],
    }
    result = simulate(cfg, {"ZA": [100.0] * 3, "ZB": [100.0] * 3}, workload)
    blind, eco = result.policies[CARBON_BLIND], result.policies[ECOPULSE]
    assert blind.compute_usd == pytest.approx(3 * 2 * (0.02 + 2 * 0.002))  # spot rates in rza
    assert [row[1] for row in eco.pods_per_region] == [2, 2, 2]  # same grid: only the price moves it
    assert eco.compute_usd == pytest.approx(3 * 2 * (0.01 + 2 * 0.001))
    assert result.cost_reduction_percent(ECOPULSE) == pytest.approx(50.0)
    with pytest.raises(WorkloadError, match=r"workloads\[0\].capacityType: must be one of"):
        parse_workload({**workload, "workloads": [{**batch, "capacityType": "cheap"}]})


def test_cli_names_the_forecast_model_and_the_rule(tmp_path: Path) -> None:
    cfg_text = """
regions: [{name: rza, zone: ZA}, {name: rzb, zone: ZB}]
prices: {rza: PRICE, rzb: PRICE}
rebalancer: {holdHours: 3}
""".replace("PRICE", PRICE)
    (tmp_path / "config.yaml").write_text(cfg_text)
    (tmp_path / "trace.csv").write_text(trace_text(HAND_SERIES))
    (tmp_path / "workload.yaml").write_text(json.dumps(HAND_WORKLOAD))
    common = ["--config", str(tmp_path / "config.yaml"), "--trace", str(tmp_path / "trace.csv"),
              "--workload", str(tmp_path / "workload.yaml")]  # fmt: skip
    assert simulate_main([*common, "--out", str(tmp_path / "a"), "--forecast", "noisy", "--seed", "7"]) == 0
    meta = json.loads((tmp_path / "a" / "report.json").read_text())["meta"]
    assert meta["forecastModel"]["model"] == "noisy" and meta["forecastModel"]["seed"] == 7
    assert meta["rule"]["holdHours"] == 3 and meta["rule"]["gapErrorMargin"] == 2.0
    with pytest.raises(SystemExit) as usage:
        simulate_main([*common, "--out", str(tmp_path / "b"), "--forecast", "psychic"])
    assert usage.value.code == 2
    assert simulate_main([*common, "--out", str(tmp_path / "c"), "--forecast-hours", "0"]) == 2
