"""The robust rule: a move must pay at the gap the grid has lately shown, not only at today's."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import EcoPulseConfiguration, parse_config_text
from core.history import MIN_ERROR_SAMPLES, IntensityHistory
from core.kube.caches import NodeRecord, PodRecord
from core.model import CapacityType, CarbonSignal, PodDemand, SignalSnapshot
from core.trace import parse_trace
from rebalancer.planner import HISTORY_SHORT, NOT_ROBUST, Plan, plan
from rebalancer.simulate.engine import ECOPULSE, Simulator
from rebalancer.simulate.workload import parse_workload
from tests.factories import pod_record
from tests.unit.test_simulate import ONE_POD, config, trace_text

T0 = datetime(2022, 1, 1, tzinfo=UTC)
REGIONS = ("ra", "rb", "rc")


def snapshot(hour: int, values: dict[str, float]) -> SignalSnapshot:
    at = T0 + timedelta(hours=hour)
    return SignalSnapshot(
        taken_at=at,
        provider="test",
        carbon={
            r: CarbonSignal(
                region=r, zone=r.upper(), carbon_g_per_kwh=v, observed_at=at, fetched_at=at, source="t"
            )
            for r, v in values.items()
        },
    )


def history_of(series: dict[str, list[float]], *, window: int = 168) -> IntensityHistory:
    history = IntensityHistory(window_hours=window)
    for hour in range(len(next(iter(series.values())))):
        history.record(snapshot(hour, {r: values[hour] for r, values in series.items()}))
    return history


# -- the history ------------------------------------------------------------------------------------


def test_the_gap_error_is_the_rms_error_of_predicting_the_horizon_mean_by_the_gap_now() -> None:
    hours = MIN_ERROR_SAMPLES + 10
    a = [100.0 + (50.0 if h % 2 else 0.0) for h in range(hours)]  # 100, 150, 100, 150, ...
    history = history_of({"ra": a, "rb": [100.0] * hours})
    now = T0 + timedelta(hours=hours - 1)
    gap = history.gap("ra", "rb", now=now, horizon_hours=2, hold_hours=2)
    assert gap is not None
    # the gap alternates 0, 50; the mean of the next two is always 25: every error is 25
    assert gap.error_g_per_kwh == pytest.approx(25.0)
    assert gap.held_gaps_g_per_kwh == (50.0, 0.0) if (hours - 3) % 2 else (0.0, 50.0)
    assert gap.samples == hours - 2


def test_too_little_history_or_a_missing_hour_says_nothing() -> None:
    short = history_of({"ra": [100.0] * 10, "rb": [50.0] * 10})
    assert short.gap("ra", "rb", now=T0 + timedelta(hours=9), horizon_hours=6, hold_hours=1) is None
    hours = MIN_ERROR_SAMPLES + 10
    history = history_of({"ra": [100.0] * hours, "rb": [50.0] * hours})
    later = T0 + timedelta(hours=hours + 1)  # the hour before is missing: the hold is not shown
    assert history.gap("ra", "rb", now=later, horizon_hours=1, hold_hours=1) is None
    assert history.gap("ra", "rb", now=later, horizon_hours=1, hold_hours=0) is not None


def test_the_window_forgets_old_hours() -> None:
    history = history_of({"ra": [1.0] * 50}, window=24)
    assert history.value("ra", history_hour(25)) is None
    assert history.value("ra", history_hour(49)) == 1.0


def history_hour(hour: int) -> int:
    return int((T0 + timedelta(hours=hour)).timestamp() // 3600)


# -- the rule in the replay -------------------------------------------------------------------------

# rb is dirtier than ra for 30 hours, cleaner for one hour, then dirtier again.
FLIP = {"ZA": [100.0] * 40, "ZB": [200.0] * 30 + [40.0] + [200.0] * 9}


def _replay(**rules: Any) -> Any:
    cfg = config(["ZA", "ZB"], min_age=0, horizon=3, migration=0.001, **rules)
    trace = parse_trace(trace_text(FLIP), zones=set(FLIP))
    return Simulator(config=cfg, trace=trace, workload=parse_workload(ONE_POD)).run().policies[ECOPULSE]


def test_a_greener_region_that_flips_back_after_one_hour_gets_no_move_with_the_robust_rule() -> None:
    plain = _replay()
    # Without the rule the pod goes at hour 30 (60 g/kWh cleaner now) and loses: the next hours
    # are 100 g/kWh dirtier. It comes back when it may.
    assert [(m.hour, m.source, m.target) for m in plain.moves][:1] == [(30, "rza", "rzb")]
    assert plain.moves[0].predicted_net_benefit_usd > 0 > plain.moves[0].realised_net_benefit_usd
    for hold, margin in ((1, 0.0), (2, 1.0), (0, 1.0)):
        robust = _replay(hold_hours=hold, gap_error_margin=margin)
        if hold:
            assert robust.moves == [], (hold, margin)
        else:
            # A margin alone does not see a first dip coming after a calm month: the hold does.
            assert len(robust.moves) <= len(plain.moves)


# -- the rule in the planner ------------------------------------------------------------------------

CONFIG = """\
regions: [{name: ra, zone: RA}, {name: rb, zone: RB}, {name: rc, zone: RC}]
baselineRegion: ra
carbon: {provider: static}
economics: {horizonHours: 3, carbonPriceUsdPerTonne: 1000, migrationCostUsd: 0.001, restartDowntimeSeconds: 0}
power: {minWattsPerVcpu: 1000, maxWattsPerVcpu: 1000, wattsPerGib: 0, pue: 1}
prices:
  ra: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}
  rb: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}
  rc: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}
rebalancer: {dryRun: false, minNetBenefitUsd: 0.001, minPodAgeSeconds: 0, maxEvictionsPerWorkload: 1}
"""
BIG = {
    f"n-{r}": NodeRecord(
        name=f"n-{r}",
        region=r,
        capacity_type=CapacityType.ON_DEMAND,
        allocatable_cpu_cores=1e6,
        allocatable_memory_gib=1e6,
        schedulable=True,
    )
    for r in REGIONS
}


def _plan(
    cfg: EcoPulseConfiguration, signals: SignalSnapshot, now: datetime, history: IntensityHistory | None
) -> Plan:
    return plan(pods=_pods(), nodes=BIG, namespaces={}, signals=signals, config=cfg, now=now, history=history)


def _pods() -> list[PodRecord]:
    return [
        pod_record(
            f"p-{r}-{i}",
            started_at=T0 - timedelta(days=1),
            node_name=f"n-{r}",
            owner_name=f"w-{r}-{i}",
            demand=PodDemand(cpu_cores=1.0 + i, memory_gib=1.0),
        )
        for r in REGIONS
        for i in range(2)
    ]


series_strategy = st.lists(st.floats(5, 900), min_size=MIN_ERROR_SAMPLES + 6, max_size=MIN_ERROR_SAMPLES + 12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    hold=st.integers(0, 3),
    margin=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    minimum=st.sampled_from([0.0, 0.001, 0.05]),
)
def test_the_robust_rule_never_moves_more_than_the_plain_rule(
    data: st.DataObject, hold: int, margin: float, minimum: float
) -> None:
    length = data.draw(st.integers(MIN_ERROR_SAMPLES + 6, MIN_ERROR_SAMPLES + 12), label="hours")
    series = {
        r: data.draw(st.lists(st.floats(5, 900), min_size=length, max_size=length), label=r) for r in REGIONS
    }
    history = history_of(series)
    now_hour = length - 1
    signals = snapshot(now_hour, {r: values[-1] for r, values in series.items()})
    base = parse_config_text(CONFIG)
    plain_cfg = replace(
        base,
        rebalancer=replace(base.rebalancer, min_net_benefit_usd=minimum, hold_hours=0, gap_error_margin=0.0),
    )
    robust_cfg = replace(
        plain_cfg, rebalancer=replace(plain_cfg.rebalancer, hold_hours=hold, gap_error_margin=margin)
    )
    now = T0 + timedelta(hours=now_hour, minutes=5)
    plain = _plan(plain_cfg, signals, now, history)
    robust = _plan(robust_cfg, signals, now, history)
    plain_moves = {(c.pod.name, c.target_region) for c in plain.candidates}
    robust_moves = {(c.pod.name, c.target_region) for c in robust.candidates}
    assert robust_moves <= plain_moves
    refused = {r.reason for r in robust.refusals} - {r.reason for r in plain.refusals}
    assert refused <= {NOT_ROBUST, HISTORY_SHORT}
    for candidate in robust.candidates:
        assert candidate.benefit.net_usd > minimum


def test_without_enough_history_nothing_moves_and_the_refusal_says_why() -> None:
    cfg = replace(
        parse_config_text(CONFIG),
        rebalancer=replace(parse_config_text(CONFIG).rebalancer, hold_hours=1, gap_error_margin=1.0),
    )
    history = history_of({"ra": [500.0] * 5, "rb": [50.0] * 5, "rc": [500.0] * 5})
    signals = snapshot(4, {"ra": 500.0, "rb": 50.0, "rc": 500.0})
    now = T0 + timedelta(hours=4)
    assert _plan(cfg, signals, now, None).candidates  # no history given: the plain rule
    result = _plan(cfg, signals, now, history)
    assert result.candidates == []
    assert {r.reason for r in result.refusals} == {HISTORY_SHORT}


def test_a_steady_gap_moves_as_the_plain_rule_does() -> None:
    hours = MIN_ERROR_SAMPLES + 10
    cfg = parse_config_text(CONFIG)  # the shipped robust defaults
    assert cfg.rebalancer.hold_hours > 0 and cfg.rebalancer.gap_error_margin > 0
    history = history_of({"ra": [500.0] * hours, "rb": [50.0] * hours, "rc": [500.0] * hours})
    signals = snapshot(hours - 1, {"ra": 500.0, "rb": 50.0, "rc": 500.0})
    result = _plan(cfg, signals, T0 + timedelta(hours=hours - 1), history)
    assert {c.pod.name for c in result.candidates} == {p.name for p in _pods() if "-rb-" not in p.name}
    assert all(c.target_region == "rb" for c in result.candidates)
    assert not math.isnan(result.candidates[0].benefit.net_usd)


def test_every_replica_keeps_the_history_so_a_new_leader_starts_warm() -> None:
    from rebalancer.cycle import CycleInputs, run_cycle  # noqa: PLC0415
    from tests.factories import FakeEvictionApi  # noqa: PLC0415

    history = IntensityHistory(window_hours=24)
    cfg = parse_config_text(CONFIG)
    for hour in range(3):
        values = {"ra": 100.0 + hour, "rb": 50.0}
        report = run_cycle(
            CycleInputs(
                config=lambda: cfg,
                signals=lambda values=values, hour=hour: snapshot(hour, values),  # type: ignore[misc]
                pods=dict,
                nodes=dict,
                namespaces=dict,
                synced=lambda: True,
                is_leader=lambda: False,
                clock=lambda: T0,
                api=FakeEvictionApi(),
                history=history,
            )
        )
        assert report.outcome == "not-leader"
    assert [history.value("ra", history_hour(h)) for h in range(3)] == [100.0, 101.0, 102.0]
