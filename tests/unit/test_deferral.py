"""The deferral planner: which region and start hour, and whether waiting is worth it."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import EcoPulseConfiguration, parse_config_text
from core.deferral import (
    MIN_ERROR_SAMPLES,
    DeferralRequest,
    ForecastTable,
    HourlyForecast,
    StartReason,
    deferral_request,
    latest_start,
    plan_start,
    plan_starts,
)
from core.model import PlacementHints, PodDemand, PriceRates

NOW = datetime(2022, 3, 1, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
PRICE = "{vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}"


def config(
    regions: tuple[str, ...] = ("ra", "rb", "rc"), *, dearer: str | None = None
) -> EcoPulseConfiguration:
    listed = "\n".join(f"  - {{name: {r}, zone: Z{r.upper()}}}" for r in regions)
    prices = "\n".join(
        f"  {r}: {{vcpuHour: 0.06, gibHour: 0.004, spotVcpuHour: 0.02, spotGibHour: 0.001}}"
        if r == dearer
        else f"  {r}: {PRICE}"
        for r in regions
    )
    return parse_config_text(
        f"""
regions:
{listed}
baselineRegion: {regions[0]}
economics: {{carbonPriceUsdPerTonne: 1000}}
# 1 kWh per vCPU-hour exactly, nothing for memory
power: {{minWattsPerVcpu: 1000, maxWattsPerVcpu: 1000, wattsPerGib: 0, pue: 1}}
prices:
{prices}
"""
    )


CONFIG = config()


def forecast(
    region: str,
    values: list[float],
    *,
    overstated: float | None = 0.0,
    spread: float = 0.0,
    samples: int = 30,
    start: datetime = NOW,
) -> HourlyForecast:
    """A forecast whose source lately saw hours 3 and later ``overstated`` g/kWh greener than they
    came (None: no record yet), with that ``spread`` over ``samples`` forecasts."""
    leads = range(len(values))
    return HourlyForecast(
        region=region,
        start=start,
        carbon_g_per_kwh=tuple(values),
        bias_g_per_kwh=() if overstated is None else tuple(0.0 if k < 3 else -overstated for k in leads),
        spread_g_per_kwh=() if overstated is None else tuple(0.0 if k < 3 else spread for k in leads),
        error_samples=samples,
        made_at=start,
        source="test",
    )


def request(
    *,
    runtime: float = 2.0,
    deadline_hours: float = 12.0,
    allowed: tuple[str, ...] = ("ra", "rb", "rc"),
    home: str = "ra",
    margin_seconds: float = 0.0,
) -> DeferralRequest:
    return DeferralRequest(
        runtime_hours=runtime,
        not_before=NOW,
        deadline=NOW + timedelta(hours=deadline_hours),
        safety_margin_seconds=margin_seconds,
        demand=PodDemand(cpu_cores=1.0, memory_gib=0.0),
        home_region=home,
        allowed_regions=allowed,
    )


def test_latest_start_is_the_deadline_less_the_runtime_and_the_margin() -> None:
    r = request(runtime=4.0, deadline_hours=24.0, margin_seconds=1800)
    assert latest_start(r) == NOW + timedelta(hours=19, minutes=30)


# -- tables --------------------------------------------------------------------------------------

FLAT = [300.0] * 24


@pytest.mark.parametrize(
    ("values", "runtime", "deadline", "start_hour", "reason"),
    [
        # the green hours are at 5-6: a 2-hour run starts at 5
        ([300] * 5 + [100, 100] + [300] * 17, 2.0, 12.0, 5, StartReason.WAIT),
        # now is the greenest
        ([100, 100] + [300] * 22, 2.0, 12.0, 0, StartReason.GREEN_HOUR),
        # the green hours come after the latest start (12 - 2 = 10): the best before it, or now
        ([300] * 14 + [50] * 10, 2.0, 12.0, 0, StartReason.GREEN_HOUR),
        # the green hour starts exactly at the latest start: taken
        ([300] * 10 + [100, 100] + [300] * 12, 2.0, 12.0, 10, StartReason.WAIT),
        # the deadline leaves no room to wait
        ([300] * 5 + [100, 100] + [300] * 17, 2.0, 1.0, 0, StartReason.RELEASE_BY),
        # the latest start is half an hour away: a later start, no better than now
        ([300] * 5 + [100, 100] + [300] * 17, 2.0, 2.5, 0, StartReason.GREEN_HOUR),
        # ... and better than now: the run from the latest start takes half the green third hour
        ([300, 300, 100] + [300] * 21, 2.0, 2.5, 0.5, StartReason.WAIT),
        # the latest start within an hour beats the whole hour before it (12 - 2 - 0.5 = 9.5)
        ([300] * 10 + [200, 100] + [300] * 12, 2.0, 11.5, 9.5, StartReason.WAIT),
        # ... unless that hour is the better one
        ([300] * 9 + [100, 100] + [300] * 13, 2.0, 11.5, 9, StartReason.WAIT),
        # fractional runtime: 1.5 h, the half hour weighted half
        ([300, 300, 300, 100, 200, 500] + [300] * 18, 1.5, 12.0, 3, StartReason.WAIT),
    ],
)
def test_one_region_in_time(
    values: list[float], runtime: float, deadline: float, start_hour: float, reason: StartReason
) -> None:
    plan = plan_start(
        request(runtime=runtime, deadline_hours=deadline, allowed=("ra",)),
        forecasts=[forecast("ra", [float(v) for v in values])],
        now=NOW,
        config=CONFIG,
    )
    assert (plan.start, plan.reason, plan.region) == (NOW + start_hour * HOUR, reason, "ra")
    assert plan.release_now == (start_hour == 0)
    assert plan.start <= plan.latest_start or plan.release_now


def test_the_expected_benefit_and_avoided_carbon_are_against_now_in_the_best_region_now() -> None:
    plan = plan_start(
        request(runtime=2.0, allowed=("ra", "rb")),
        forecasts=[forecast("ra", [300.0] * 4 + [100.0] * 20), forecast("rb", [200.0] * 24)],
        now=NOW,
        config=CONFIG,
    )
    assert (plan.region, plan.start, plan.now_region) == ("ra", NOW + 4 * HOUR, "rb")
    # 1 kWh an hour, 2 hours: 2 kWh x (200 - 100) g/kWh = 200 g, at 1000 USD/t = 0.2 USD
    assert plan.carbon_avoided_g == pytest.approx(200.0)
    assert plan.expected_net_benefit_usd == pytest.approx(0.2)
    breakdown = plan.breakdown(request(runtime=2.0, allowed=("ra", "rb")), CONFIG)
    assert breakdown is not None
    assert breakdown.net_usd == pytest.approx(0.2)


def test_price_counts_a_dearer_greener_region_can_lose() -> None:
    dear = config(dearer="rb")
    plan = plan_start(
        request(runtime=2.0, allowed=("ra", "rb")),
        forecasts=[forecast("ra", [300.0] * 24), forecast("rb", [0.0] * 24)],
        now=NOW,
        config=dear,
    )
    # rb saves 0.6 USD of carbon over 2 hours but costs 0.06 USD more an hour of compute: it wins
    assert plan.region == "rb"
    cheap_carbon = parse_config_text(
        dear_yaml := (
            "regions: [{name: ra, zone: ZA}, {name: rb, zone: ZB}]\nbaselineRegion: ra\n"
            "economics: {carbonPriceUsdPerTonne: 10}\n"
            "power: {minWattsPerVcpu: 1000, maxWattsPerVcpu: 1000, wattsPerGib: 0, pue: 1}\n"
            f"prices: {{ra: {PRICE}, rb: {{vcpuHour: 0.06, gibHour: 0.004, spotVcpuHour: 0.02, spotGibHour: 0.001}}}}\n"
        )
    )
    assert dear_yaml
    plan = plan_start(
        request(runtime=2.0, allowed=("ra", "rb")),
        forecasts=[forecast("ra", [300.0] * 24), forecast("rb", [0.0] * 24)],
        now=NOW,
        config=cheap_carbon,
    )
    assert plan.region == "ra"


def test_a_wait_below_the_minimum_or_not_surviving_the_error_releases_now() -> None:
    values = [300.0] * 5 + [250.0, 250.0] + [300.0] * 17  # saves 2 kWh x 50 g = 0.1 USD
    r = request(allowed=("ra",))
    held = plan_start(r, forecasts=[forecast("ra", values, overstated=10.0)], now=NOW, config=CONFIG)
    assert held.reason is StartReason.WAIT
    # counted at 50 - 10 g/kWh
    assert held.candidate_robust_net_benefit_usd == pytest.approx(0.08)
    small = plan_start(r, forecasts=[forecast("ra", values)], now=NOW, config=CONFIG, min_benefit_usd=0.2)
    assert (small.reason, small.release_now) == (StartReason.NOT_WORTH_WAITING, True)
    assert small.candidate_start == NOW + 5 * HOUR
    noisy = plan_start(r, forecasts=[forecast("ra", values, overstated=60.0)], now=NOW, config=CONFIG)
    assert (noisy.reason, noisy.release_now) == (StartReason.NOT_ROBUST, True)
    # no record: with a confidence asked for, unknown means do nothing; without (the default, and
    # the webhook, which keeps none), the forecast as given
    unknown = plan_start(
        r, forecasts=[forecast("ra", values, overstated=None)], now=NOW, config=CONFIG, confidence_z=2.0
    )
    assert unknown.reason is StartReason.NOT_ROBUST
    trusting = plan_start(r, forecasts=[forecast("ra", values, overstated=None)], now=NOW, config=CONFIG)
    assert trusting.reason is StartReason.WAIT
    assert trusting.candidate_robust_net_benefit_usd == pytest.approx(trusting.expected_net_benefit_usd)


def test_the_margin_is_the_mean_overstatement_plus_its_standard_errors() -> None:
    values = [300.0] * 5 + [250.0, 250.0] + [300.0] * 17
    r = request(allowed=("ra",))
    # overstated by 20 on average, spread 30 over 36 forecasts: a standard error of at most 30/6
    made = forecast("ra", values, overstated=20.0, spread=30.0, samples=36)
    plan = plan_start(r, forecasts=[made], now=NOW, config=CONFIG, confidence_z=3.0)
    counted = 50.0 - (20.0 + 3.0 * 30.0 / 6.0)
    assert plan.candidate_robust_net_benefit_usd == pytest.approx(2 * counted / 1000.0)
    # an understating forecast takes nothing off
    plan = plan_start(r, forecasts=[forecast("ra", values, overstated=-30.0)], now=NOW, config=CONFIG)
    assert plan.candidate_robust_net_benefit_usd == pytest.approx(plan.expected_net_benefit_usd)
    # too few forecasts: unknown
    few = forecast("ra", values, overstated=0.0, samples=MIN_ERROR_SAMPLES - 1)
    assert (
        plan_start(r, forecasts=[few], now=NOW, config=CONFIG, confidence_z=2.0).reason
        is StartReason.NOT_ROBUST
    )
    # by default (risk-neutral) only the mean is taken off: 50 - 20, whatever the spread
    plan = plan_start(r, forecasts=[made], now=NOW, config=CONFIG)
    assert plan.candidate_robust_net_benefit_usd == pytest.approx(2 * 30.0 / 1000.0)


@pytest.mark.parametrize(
    ("bias", "spread", "effective", "corrected_ahead"),
    [
        # too pessimistic by 40 lately, surely (standard error 40/10): nearly all taken off
        (40.0, 40.0, 100.0, 300.0 - 40.0 * (1 - (4.0 / 40.0) ** 2)),
        # by 40 with a standard error of 40 (consecutive forecasts err alike: one forecast's worth)
        (40.0, 40.0, 1.0, 300.0),
        # by 40, standard error 20: shrunk to three quarters
        (40.0, 40.0, 4.0, 300.0 - 30.0),
        # too optimistic by 40, surely: added back
        (-40.0, 0.0, 100.0, 340.0),
    ],
)
def test_the_forecast_is_corrected_by_what_its_record_is_sure_of(
    bias: float, spread: float, effective: float, corrected_ahead: float
) -> None:
    # a flat 300 as given, the source erring by ``bias`` at leads 1 and later
    values = [300.0] * 24
    leads = range(len(values))
    made = HourlyForecast(
        region="ra",
        start=NOW,
        carbon_g_per_kwh=tuple(values),
        bias_g_per_kwh=tuple(0.0 if k == 0 else bias for k in leads),
        spread_g_per_kwh=tuple(0.0 if k == 0 else spread for k in leads),
        error_samples=100,
        effective_samples=tuple(effective for _ in leads),
        made_at=NOW,
    )
    r = request(runtime=1.0, deadline_hours=12.0, allowed=("ra",))
    plan = plan_start(r, forecasts=[made], now=NOW, config=CONFIG)
    ahead = ForecastTable([made], now=NOW).windows(1.0)["ra"].means
    assert ahead[0] == 300.0  # now is observed
    assert ahead[1] == pytest.approx(corrected_ahead)
    # what is not taken off the forecast stays for a wait to survive: never a wait on a
    # pessimistic source's word, and a held Job only when the corrected forecast gains
    assert plan.release_now == (corrected_ahead >= 300.0)
    if not plan.release_now:
        assert plan.chosen_carbon_g_per_kwh == pytest.approx(corrected_ahead)


def test_no_forecast_runs_now_at_home() -> None:
    plan = plan_start(request(), forecasts=[], now=NOW, config=CONFIG)
    assert (plan.region, plan.release_now, plan.reason) == ("ra", True, StartReason.NO_FORECAST)
    stale = plan_start(
        request(), forecasts=[forecast("rb", FLAT, start=NOW - 30 * HOUR)], now=NOW, config=CONFIG
    )
    assert stale.reason is StartReason.NO_FORECAST


def test_only_what_the_forecast_knows_is_planned() -> None:
    # green at hour 7, but the forecast ends at hour 8: a 2-hour run from 7 is not known
    values = [300.0] * 7 + [50.0]
    r = request(runtime=2.0, deadline_hours=24.0, allowed=("ra",))
    plan = plan_start(r, forecasts=[forecast("ra", values)], now=NOW, config=CONFIG)
    assert plan.start <= NOW + 6 * HOUR
    # a forecast shorter than the run: start now, in the region best over what is known
    short = plan_start(
        request(runtime=6.0, deadline_hours=24.0, allowed=("ra", "rb")),
        forecasts=[forecast("ra", [300.0] * 3), forecast("rb", [100.0] * 3)],
        now=NOW,
        config=CONFIG,
    )
    assert (short.region, short.release_now, short.reason) == ("rb", True, StartReason.NO_FORECAST)


def test_mid_hour_now_plans_from_the_hour_it_falls_in() -> None:
    now = NOW + timedelta(minutes=40)
    plan = plan_start(
        request(allowed=("ra",)),
        forecasts=[forecast("ra", [300.0] * 5 + [100.0, 100.0] + [300.0] * 17)],
        now=now,
        config=CONFIG,
    )
    assert plan.start == NOW + 5 * HOUR
    released = plan_start(
        request(allowed=("ra",)), forecasts=[forecast("ra", [100.0] * 3 + FLAT)], now=now, config=CONFIG
    )
    assert released.start == now


def test_the_request_builder_filters_regions_as_placement_does() -> None:
    built = deferral_request(
        runtime_hours=1.0,
        not_before=NOW,
        deadline=NOW + 5 * HOUR,
        demand=PodDemand(cpu_cores=1.0, memory_gib=1.0),
        hints=PlacementHints(allowed_regions=frozenset({"rb", "rc", "elsewhere"})),
        home_region="ra",
        config=CONFIG,
    )
    assert built.allowed_regions == ("rb", "rc")


# -- properties ----------------------------------------------------------------------------------

intensities = st.lists(st.floats(min_value=0.0, max_value=900.0), min_size=1, max_size=60)


def records(draw: st.DrawFn, length: int) -> dict[str, Any]:
    """A source's record by lead: mean error, spread, and what the mean is worth."""
    return {
        "bias_g_per_kwh": tuple(draw(st.floats(-100.0, 100.0)) for _ in range(length)),
        "spread_g_per_kwh": tuple(draw(st.floats(0.0, 100.0)) for _ in range(length)),
        "error_samples": draw(st.integers(0, 200)),
        "effective_samples": tuple(draw(st.floats(1.0, 200.0)) for _ in range(length))
        if draw(st.booleans())
        else (),
    }


@st.composite
def cases(draw: st.DrawFn) -> tuple[DeferralRequest, list[HourlyForecast], datetime, float]:
    regions = ("ra", "rb", "rc")
    forecasts = [
        HourlyForecast(
            region=r,
            start=NOW - draw(st.integers(0, 3)) * HOUR,
            carbon_g_per_kwh=tuple(values := draw(intensities)),
            error_g_per_kwh=tuple(draw(st.floats(0.0, 50.0)) for _ in values) if draw(st.booleans()) else (),
            **(records(draw, len(values)) if draw(st.booleans()) else {}),
            made_at=NOW,
        )
        for r in draw(st.sets(st.sampled_from(regions)))
    ]
    allowed = tuple(draw(st.sets(st.sampled_from(regions), min_size=1)))
    r = DeferralRequest(
        runtime_hours=draw(st.floats(min_value=0.0, max_value=30.0)),
        not_before=NOW,
        deadline=NOW + timedelta(minutes=draw(st.integers(0, 72 * 60))),
        safety_margin_seconds=draw(st.sampled_from([0.0, 900.0, 1800.0])),
        demand=PodDemand(cpu_cores=draw(st.floats(0.1, 64.0)), memory_gib=draw(st.floats(0.0, 256.0))),
        pods=draw(st.integers(1, 4)),
        home_region=draw(st.sampled_from(regions)),
        allowed_regions=allowed,
    )
    now = NOW + timedelta(minutes=draw(st.integers(0, 59)))
    return r, forecasts, now, draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(cases())
def test_never_past_the_latest_start_never_worse_than_now_and_order_free(
    case: tuple[DeferralRequest, list[HourlyForecast], datetime, float],
) -> None:
    r, forecasts, now, z = case
    plan = plan_start(r, forecasts=forecasts, now=now, config=CONFIG, confidence_z=z)
    # never past the latest start: a wait is before it, a release is now
    if plan.release_now:
        assert plan.start == now
    else:
        assert now < plan.start <= latest_start(r)
        assert plan.region in r.allowed_regions
    # never worse than now by its own forecast
    assert plan.expected_net_benefit_usd >= 0.0
    breakdown = plan.breakdown(r, CONFIG)
    if breakdown is not None:
        assert breakdown.net_usd >= -1e-9
        # per pod
        assert breakdown.net_usd * r.pods == pytest.approx(plan.expected_net_benefit_usd, abs=1e-9)
    # the same answer whatever the order of the inputs
    shuffled = list(forecasts)
    random.Random(len(forecasts)).shuffle(shuffled)
    reordered = replace(r, allowed_regions=tuple(reversed(r.allowed_regions)))
    assert plan_start(reordered, forecasts=shuffled[::-1], now=now, config=CONFIG, confidence_z=z) == plan
    # one pass over many answers each as alone
    (batched,) = plan_starts([r], forecasts=forecasts, now=now, config=CONFIG, confidence_z=z)
    assert batched == plan


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 900.0), min_size=30, max_size=30), st.integers(1, 6), st.integers(2, 28))
def test_the_plan_is_the_best_start_by_its_own_forecast(
    values: list[float], runtime: int, deadline: int
) -> None:
    r = request(runtime=float(runtime), deadline_hours=float(deadline), allowed=("ra",))
    plan = plan_start(r, forecasts=[forecast("ra", values)], now=NOW, config=CONFIG, confidence_z=0.0)
    starts = range(max(0, min(deadline - runtime, 30 - runtime)) + 1)
    means = {k: sum(values[k : k + runtime]) / runtime for k in starts}
    if not means:
        assert plan.release_now
        return
    best = min(means.values())
    chosen = (plan.start - NOW) // HOUR
    assert means[chosen] == pytest.approx(best, abs=1e-6)


def test_live_prices_decide_where_the_table_would_not() -> None:
    # Same grid everywhere: only price separates the regions. By the configuration's table they
    # tie (ra first by name); the price signal's live rates make rb cheaper, and the plan follows.
    flat = [forecast(region, [200.0] * 24) for region in ("ra", "rb")]
    ask = request(runtime=2.0, allowed=("ra", "rb"))
    assert plan_start(ask, forecasts=flat, now=NOW, config=CONFIG).region == "ra"
    live = {
        "rb": PriceRates(
            vcpu_hour_usd=0.01, gib_hour_usd=0.001, spot_vcpu_hour_usd=0.005, spot_gib_hour_usd=0.0005
        )
    }
    assert plan_start(ask, forecasts=flat, now=NOW, config=CONFIG, prices=live).region == "rb"
    assert plan_starts([ask], forecasts=flat, now=NOW, config=CONFIG, prices=live)[0].region == "rb"
