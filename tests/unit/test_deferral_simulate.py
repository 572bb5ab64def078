"""The deferral replay: Jobs with deadlines under five policies, on hand-computable traces."""

from __future__ import annotations

from typing import Any

import pytest

from core.trace import parse_trace
from rebalancer.simulate.cli import split_trace
from rebalancer.simulate.forecast import Forecaster, ForecastModel
from rebalancer.simulate.jobs import (
    BEST_REGION_NOW,
    CARBON_BLIND,
    ECOPULSE,
    JOB_POLICIES,
    ORACLE,
    THRESHOLD_WAIT,
    JobReplay,
    JobsResult,
)
from rebalancer.simulate.jobs_report import jobs_data
from rebalancer.simulate.workload import WorkloadError, parse_workload
from tests.unit.test_simulate import config, trace_text

# 1 kWh per vCPU-hour (the test config's power model): one CPU for 2 hours is 2 kWh
JOB: dict[str, Any] = {
    "name": "batch",
    "cpu": "1",
    "homeRegion": "rza",
    "allowedRegions": ["rza"],
    "runtimeHours": 2,
    "finishWithinHours": 8,
    "arrivals": {"everyHours": 24, "firstAtHour": 0},
}


def workload(
    *jobs: dict[str, Any], capacity: float = 100.0, zones: tuple[str, ...] = ("ZA",)
) -> dict[str, Any]:
    return {
        "capacity": {f"r{z.lower()}": {"cpu": capacity, "memory": "100Gi"} for z in zones},
        "workloads": [],
        "jobs": list(jobs),
    }


def replay(
    series: dict[str, list[float]],
    document: dict[str, Any],
    *,
    model: ForecastModel = ForecastModel.PERFECT,
    confidence_z: float | None = 0.0,
) -> JobsResult:
    cfg = config(sorted(series))
    trace = parse_trace(trace_text(series), zones=set(series))
    parsed = parse_workload(document, regions=frozenset(cfg.region_names))
    forecaster = Forecaster.build(model, hours=24, seed=0, series=series)
    return JobReplay(
        config=cfg, trace=trace, workload=parsed, forecaster=forecaster, confidence_z=confidence_z
    ).run()


# hour:       0    1    2    3    4    5    6    7    8    9
DAY = [300.0, 250.0, 400.0, 100.0, 120.0, 500.0, 80.0, 500.0, 300.0, 300.0]


def test_each_policy_on_one_run_by_hand() -> None:
    result = replay({"ZA": DAY}, workload(JOB))
    starts = {name: [(o.start, o.region) for o in result.outcomes[name]] for name in JOB_POLICIES}
    # arrives at 0, deadline 8, runs 2 h: it may start at 0..6 (the planner, with its half-hour
    # margin, at 0..5)
    assert starts[CARBON_BLIND] == [(0, "rza")]
    assert starts[BEST_REGION_NOW] == [(0, "rza")]
    # the trace is shorter than a day: nothing trails, it starts at once
    assert starts[THRESHOLD_WAIT] == [(0, "rza")]
    # windows: 0: 275, 1: 325, 2: 250, 3: 110, 4: 310, 5: 290, 6: 290
    assert starts[ORACLE] == [(3, "rza")]
    assert starts[ECOPULSE] == [(3, "rza")]
    blind, oracle = result.totals(CARBON_BLIND), result.totals(ORACLE)
    assert blind.emissions_grams == pytest.approx(2 * 275.0)
    assert oracle.emissions_grams == pytest.approx(2 * 110.0)
    assert oracle.mean_delay_hours == 3.0
    assert all(result.totals(name).deadline_misses == 0 for name in JOB_POLICIES)


def test_time_and_region_together_and_the_oracle_sees_beyond_the_margin() -> None:
    series = {"ZA": DAY, "ZB": [200.0] * 6 + [10.0, 10.0, 900.0, 900.0]}
    job = {**JOB, "allowedRegions": ["rza", "rzb"]}
    result = replay(series, workload(job, zones=("ZA", "ZB")))
    # rzb at 6-7 (10 g/kWh) ends exactly at the deadline: the oracle takes it
    assert [(o.start, o.region) for o in result.outcomes[ORACLE]] == [(6, "rzb")]
    # the planner keeps half an hour in hand: its latest start is 5.5, and rzb from it (half an
    # hour at 200, an hour and a half at 10: 57.5) beats rzb at 5 (105) and rza at 3 (110); the
    # replay releases it at that half hour, as the live loop would, and it ends in time
    assert [(o.start, o.region) for o in result.outcomes[ECOPULSE]] == [(5.5, "rzb")]
    eco, oracle = result.outcomes[ECOPULSE][0], result.outcomes[ORACLE][0]
    assert eco.emissions_grams / oracle.emissions_grams == pytest.approx(57.5 / 10.0)
    assert not eco.missed
    # best region now: rzb (200 over the first two hours) beats rza (275)
    assert [o.region for o in result.outcomes[BEST_REGION_NOW]] == ["rzb"]
    assert result.time_only == frozenset()


def test_threshold_wait_starts_below_the_trailing_day() -> None:
    series = {"ZA": [100.0] * 24 + [150.0, 140.0, 90.0, 50.0] + [200.0] * 8}
    job = {**JOB, "arrivals": {"everyHours": 24, "firstAtHour": 24}}
    result = replay(series, workload(job))
    # trailing mean at 24-26 is 100, 102, 103.3: 90 at hour 26 is the first below it
    assert [o.start for o in result.outcomes[THRESHOLD_WAIT]] == [26]


def test_runs_whose_deadline_is_after_the_end_are_not_generated() -> None:
    series = {"ZA": [100.0] * 30}
    job = {**JOB, "arrivals": {"everyHours": 6, "firstAtHour": 2}}
    result = replay(series, workload(job))
    # arrivals 2, 8, 14, 20 (deadline 28 <= 30); 26 would end at 34
    assert [o.arrival for o in result.outcomes[CARBON_BLIND]] == [2, 8, 14, 20]
    assert all(len(result.outcomes[name]) == 4 for name in JOB_POLICIES)


def test_a_full_region_makes_runs_wait_their_turn() -> None:
    series = {"ZA": [100.0] * 12}
    two = {**JOB, "name": "first", "cpu": "1"}
    other = {**JOB, "name": "second", "cpu": "1"}
    result = replay(series, workload(two, other, capacity=1.0))
    starts = sorted(o.start for o in result.outcomes[CARBON_BLIND])
    assert starts == [0, 2]  # the second waits for the first to finish


def test_without_a_record_of_its_errors_ecopulse_does_not_wait() -> None:
    # perfect forecasts, but the robust check asks for 24 past forecasts per lead: none yet
    result = replay({"ZA": DAY}, workload(JOB), confidence_z=2.0)
    assert [o.start for o in result.outcomes[ECOPULSE]] == [0]
    assert result.reasons == {"not-robust-to-forecast-error": 1}


def test_report_json_has_every_policy_and_job() -> None:
    result = replay({"ZA": DAY}, workload(JOB))
    data = jobs_data(result)
    assert set(data["policies"]) == set(JOB_POLICIES)
    for entry in data["policies"].values():
        assert set(entry) == {
            "emissionsGrams",
            "costUsd",
            "runs",
            "deadlineMisses",
            "meanDelayHours",
            "byJob",
        }
        assert set(entry["byJob"]) == {"batch"}
    assert data["timeOnlyJobs"] == ["batch"]
    assert data["all"]["ecopulseShareOfOracleCutPercent"] == pytest.approx(100.0)
    assert data["timeOnly"]["cutVsCarbonBlindPercent"][ORACLE] == pytest.approx(100 * (1 - 110 / 275))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"runtimeHours": 10}, "jobs[0].finishWithinHours: 8 is shorter than runtimeHours 10"),
        ({"allowedRegions": ["rzb"]}, "jobs[0].allowedRegions: must include homeRegion rza"),
        ({"homeRegion": "nowhere"}, "jobs[0].homeRegion: 'nowhere' is not one of the configured regions"),
        ({"arrivals": {"everyHours": 1.5}}, "jobs[0].arrivals.everyHours: must be a whole number of hours"),
        ({"cpu": "lots"}, "jobs[0].cpu: must be a quantity"),
        ({"colour": "red"}, "jobs[0].colour: unknown key"),
    ],
)
def test_a_bad_job_is_named_by_its_key(change: dict[str, Any], problem: str) -> None:
    cfg = config(["ZA", "ZB"])
    with pytest.raises(WorkloadError) as raised:
        parse_workload(workload({**JOB, **change}, zones=("ZA", "ZB")), regions=frozenset(cfg.region_names))
    assert any(line.startswith(problem) for line in raised.value.problems), raised.value.problems


def test_a_file_without_jobs_still_needs_workloads() -> None:
    cfg = config(["ZA"])
    with pytest.raises(WorkloadError):
        parse_workload(
            {"capacity": {"rza": {"cpu": 1, "memory": "1Gi"}}, "workloads": []},
            regions=frozenset(cfg.region_names),
        )
    parsed = parse_workload(workload(JOB), regions=frozenset(cfg.region_names))
    assert parsed.workloads == ()
    assert [job.name for job in parsed.jobs] == ["batch"]


def test_after_a_warm_up_the_error_record_is_known_from_the_first_run() -> None:
    # three days before the window: the perfect forecast's record (no error) is known
    warm = {"ZA": [300.0] * 72}
    window = {"ZA": DAY}
    cfg = config(["ZA"])
    whole = parse_trace(trace_text({"ZA": warm["ZA"] + window["ZA"]}), zones={"ZA"})
    warm_up, trace = split_trace(whole, whole.times[72])
    parsed = parse_workload(workload(JOB), regions=frozenset(cfg.region_names))
    forecaster = Forecaster.build(ForecastModel.PERFECT, hours=24, seed=0, series=trace.zones)
    result = JobReplay(
        config=cfg, trace=trace, workload=parsed, forecaster=forecaster, confidence_z=2.0, warm_up=warm_up
    ).run()
    assert [o.start for o in result.outcomes[ECOPULSE]] == [3]
    assert result.reasons == {"green-hour": 1}


@pytest.mark.parametrize(
    ("start", "hours", "mean"),
    [
        (3, 2.0, (100.0 + 120.0) / 2),  # a whole hour
        (2.5, 2.0, (0.5 * 400.0 + 100.0 + 0.5 * 120.0) / 2),  # from the half hour: half of each end
        (2.5, 0.5, 400.0),  # within the hour it starts in
        (5.5, 1.5, (0.5 * 500.0 + 80.0) / 1.5),
        (9.5, 2.0, 300.0),  # past the trace's end: its last value held
    ],
)
def test_a_run_starting_within_an_hour_is_accounted_pro_rata(start: float, hours: float, mean: float) -> None:
    cfg = config(["ZA"])
    parsed = parse_workload(workload(JOB), regions=frozenset(cfg.region_names))
    forecaster = Forecaster.build(ForecastModel.PERFECT, hours=24, seed=0, series={"ZA": DAY})
    jobs = JobReplay(
        config=cfg,
        trace=parse_trace(trace_text({"ZA": DAY}), zones={"ZA"}),
        workload=parsed,
        forecaster=forecaster,
    )
    assert jobs.mean_intensity(0, start, hours) == pytest.approx(mean)
