"""The replay as a running deployment sees it: a warm-up before the window, the same constraints
for every policy, a steady-state figure, and one sign convention in every table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.config import parse_config_text
from core.trace import parse_trace
from rebalancer.simulate.cli import main as simulate_main
from rebalancer.simulate.cli import split_trace
from rebalancer.simulate.engine import (
    CARBON_BLIND,
    CARBON_ORACLE,
    ECOPULSE,
    HOURLY_ORACLE,
    REPORTED,
    STATIC_BEST,
    SimulationResult,
    Simulator,
)
from rebalancer.simulate.report import DEFINITIONS, HEADER, report_data, text_table
from rebalancer.simulate.workload import WorkloadError, parse_workload
from report.html import percent
from tests.unit.test_simulate import PRICE, START, config, trace_text

ONE_POD: dict[str, Any] = {
    "capacity": {"rza": {"cpu": 4, "memory": "16Gi"}, "rzb": {"cpu": 4, "memory": "16Gi"}},
    "workloads": [
        {"name": "web", "replicas": 2, "cpu": "1", "memory": "1Gi", "startRegion": "rza", "maxUnavailable": 2}
    ],
}


def replay(
    cfg: Any, series: dict[str, list[float]], workload: dict[str, Any], *, warm_up_hours: int = 0
) -> SimulationResult:
    trace = parse_trace(trace_text(series), zones=set(series))
    start = trace.times[warm_up_hours] if warm_up_hours else None
    warm_up, window = split_trace(trace, start)
    parsed = parse_workload(workload, regions=frozenset(cfg.region_names))
    return Simulator(config=cfg, trace=window, workload=parsed, warm_up=warm_up).run()


def test_a_warm_up_fills_the_history_the_robust_rule_needs() -> None:
    # B is cleaner all along. The robust rule needs a day of history: a fresh install waits for it,
    # a deployment that ran through the hours before --start moves before the window begins.
    series = {"ZA": [300.0] * 96, "ZB": [100.0] * 96}
    cfg = config(["ZA", "ZB"], min_age=0, hold_hours=2, gap_error_margin=1.0)
    cold = replay(cfg, series, ONE_POD)
    assert cold.warm_up_hours == 0
    assert min(m.hour for m in cold.policies[ECOPULSE].moves) >= 24  # history-too-short until then
    warm = replay(cfg, series, ONE_POD, warm_up_hours=48)
    assert (warm.warm_up_hours, warm.warm_up_start) == (48, START)
    assert warm.times[0] == START + (warm.times[1] - warm.times[0]) * 48
    assert warm.warm_up_moves == 2  # made before the window: not counted in it
    assert warm.policies[ECOPULSE].migrations == 0
    assert warm.policies[ECOPULSE].pods_per_region[0] == (0, 2)  # the window starts with them moved
    assert warm.reduction_percent(ECOPULSE) == pytest.approx(warm.reduction_percent(HOURLY_ORACLE))
    assert warm.settle_hours == 0  # the warm-up covered the transition


def test_a_fresh_install_reports_its_steady_state_after_the_limits_pace() -> None:
    # 4 pods, 1 a cycle (one cycle an hour): the transition takes 4 hours; the steady state after it.
    series = {"ZA": [300.0] * 12, "ZB": [100.0] * 12}
    workload = {
        "capacity": {"rza": {"cpu": 8, "memory": "16Gi"}, "rzb": {"cpu": 8, "memory": "16Gi"}},
        "workloads": [
            {
                "name": "web",
                "replicas": 4,
                "cpu": "1",
                "memory": "1Gi",
                "startRegion": "rza",
                "maxUnavailable": 1,
            }
        ],
    }
    result = replay(config(["ZA", "ZB"], min_age=0), series, workload)
    assert result.settle_hours == 4
    # carbon-blind: 4 kWh/h at 300; the others all in B after the transition
    blind_steady = 8 * 4 * 300.0
    assert result.steady_emissions_grams(CARBON_BLIND) == pytest.approx(blind_steady)
    assert result.steady_reduction_percent(ECOPULSE) == pytest.approx(100 * (1 - 100 / 300))
    assert result.reduction_percent(ECOPULSE) < result.steady_reduction_percent(ECOPULSE)
    data = report_data(result)
    assert data["meta"]["steadyStateFrom"] == {"hour": 4, "time": "2022-01-01T04:00:00Z"}
    assert data["meta"]["warmUp"] == {"hours": 0, "start": None, "moves": 0}


THREE = {"ZA": [300.0] * 6, "ZB": [200.0] * 6, "ZC": [10.0] * 6}


def test_every_policy_honours_the_allowed_regions() -> None:
    # C is by far the cleanest, but the workload may run in A and B only (ecopulse.io/allowed-regions).
    workload = {
        "capacity": {r: {"cpu": 8, "memory": "32Gi"} for r in ("rza", "rzb", "rzc")},
        "workloads": [
            {
                "name": "web",
                "replicas": 2,
                "cpu": "1",
                "memory": "1Gi",
                "startRegion": "rza",
                "maxUnavailable": 2,
                "allowedRegions": ["rza", "rzb"],
            }
        ],
    }
    result = replay(config(["ZA", "ZB", "ZC"], min_age=0), THREE, workload)
    for name in REPORTED:
        assert all(row[2] == 0 for row in result.policies[name].pods_per_region), name
    for name in (STATIC_BEST, HOURLY_ORACLE, CARBON_ORACLE, ECOPULSE):
        assert result.policies[name].pods_per_region[-1] == (0, 2, 0), name


def test_allowed_regions_must_be_configured_regions() -> None:
    bad = {
        **ONE_POD,
        "workloads": [{**ONE_POD["workloads"][0], "allowedRegions": ["rza", "nowhere", "mars"]}],
    }
    with pytest.raises(WorkloadError) as raised:
        parse_workload(bad, regions=frozenset({"rza", "rzb"}))
    problems = "\n".join(raised.value.problems)
    assert "workloads[0].allowedRegions[1]" in problems and "workloads[0].allowedRegions[2]" in problems


@pytest.mark.parametrize(
    ("value", "shown"),
    [(-0.0, "0.0 %"), (-0.04, "0.0 %"), (0.04, "0.0 %"), (-1.26, "-1.3 %"), (65.94, "65.9 %")],
)
def test_percent_never_shows_minus_zero(value: float, shown: str) -> None:
    assert percent(value) == shown


def test_one_sign_convention_a_saving_is_positive(tmp_path: Path) -> None:
    # B is cleaner AND cheaper: moving there saves both, so both columns are positive.
    cfg_text = """
regions: [{name: rza, zone: ZA}, {name: rzb, zone: ZB}]
power: {minWattsPerVcpu: 1000, maxWattsPerVcpu: 1000, wattsPerGib: 0, pue: 1}
economics: {horizonHours: 1, carbonPriceUsdPerTonne: 1000, migrationCostUsd: 0, restartDowntimeSeconds: 0}
prices:
  rza: {vcpuHour: 0.05, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}
  rzb: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}
rebalancer: {intervalSeconds: 3600, minPodAgeSeconds: 0, minNetBenefitUsd: 0, holdHours: 0, gapErrorMargin: 0}
"""
    (tmp_path / "config.yaml").write_text(cfg_text)
    (tmp_path / "trace.csv").write_text(trace_text({"ZA": [300.0] * 6, "ZB": [100.0] * 6}))
    (tmp_path / "workload.yaml").write_text(json.dumps(ONE_POD))
    out = tmp_path / "out"
    arguments = ["--config", "config.yaml", "--trace", "trace.csv", "--workload", "workload.yaml", "--out"]
    code = simulate_main([*(str(tmp_path / a) if "." in a else a for a in arguments), str(out)])
    assert code == 0
    data = json.loads((out / "report.json").read_text())
    eco = data["policies"][ECOPULSE]
    assert eco["reductionVsCarbonBlindPercent"] > 0 and eco["computeCostReductionVsCarbonBlindPercent"] > 0
    table = text_table(data)
    assert "-0.0" not in table and "+" not in table
    eco_row = next(line for line in table.splitlines() if line.startswith(ECOPULSE))
    assert eco_row.split()[2] == percent(eco["reductionVsCarbonBlindPercent"]).split()[0]
    assert "migrations per pod-day" in HEADER and "per pod-day" not in HEADER[:-1]
    assert "a positive number is a saving" in table
    page = (out / "report.html").read_text()
    for name, definition in DEFINITIONS.items():  # the baselines are defined on the page
        assert f"<dt>{name}</dt><dd>{definition}</dd>" in page.replace("&#x27;", "'")
    assert "-0.0 %" not in page and "hours since" not in page
    assert "date (UTC)" in page  # time axes carry dates


def test_every_policy_honours_the_latency_limit() -> None:
    # C is by far the cleanest but 80 ms from the data in A; the workload allows 30 ms.
    cfg = parse_config_text(
        """
regions: [{name: rza, zone: ZA}, {name: rzb, zone: ZB}, {name: rzc, zone: ZC}]
power: {minWattsPerVcpu: 1000, maxWattsPerVcpu: 1000, wattsPerGib: 0, pue: 1}
economics: {horizonHours: 1, carbonPriceUsdPerTonne: 1000, migrationCostUsd: 0, restartDowntimeSeconds: 0}
prices: {rza: PRICE, rzb: PRICE, rzc: PRICE}
latencyMs: {rza: {rzb: 10, rzc: 80}, rzb: {rzc: 80}}
rebalancer: {intervalSeconds: 3600, minPodAgeSeconds: 0, minNetBenefitUsd: 0, holdHours: 0, gapErrorMargin: 0}
""".replace("PRICE", PRICE)
    )
    workload = {
        "capacity": {r: {"cpu": 8, "memory": "32Gi"} for r in ("rza", "rzb", "rzc")},
        "workloads": [
            {
                "name": "api",
                "replicas": 2,
                "cpu": "1",
                "memory": "1Gi",
                "startRegion": "rza",
                "maxUnavailable": 2,
                "maxLatencyMs": 30,
                "dataRegion": "rza",
            }
        ],
    }
    result = replay(cfg, THREE, workload)
    for name in REPORTED:
        assert all(row[2] == 0 for row in result.policies[name].pods_per_region), name
    assert result.policies[HOURLY_ORACLE].pods_per_region[-1] == (0, 2, 0)


def test_a_transition_longer_than_the_window_is_reported_not_a_crash() -> None:
    series = {"ZA": [300.0] * 3, "ZB": [100.0] * 3}
    workload = {
        "capacity": {"rza": {"cpu": 8, "memory": "16Gi"}, "rzb": {"cpu": 8, "memory": "16Gi"}},
        "workloads": [
            {
                "name": "web",
                "replicas": 6,
                "cpu": "1",
                "memory": "1Gi",
                "startRegion": "rza",
                "maxUnavailable": 1,
            }
        ],
    }
    result = replay(config(["ZA", "ZB"], min_age=0), series, workload)
    assert result.settle_hours == 3
    assert result.steady_reduction_percent(ECOPULSE) == pytest.approx(result.reduction_percent(ECOPULSE))
    assert report_data(result)["meta"]["steadyStateFrom"] == {"hour": 3, "time": None}
