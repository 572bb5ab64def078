"""The embedded forecast (from observed hours only) and the measured error of any forecast."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.deferral import HourlyForecast
from core.forecast import (
    MIN_ERROR_SAMPLES,
    MIN_HISTORY_HOURS,
    ForecastErrors,
    embedded_forecasts,
    history_forecast,
    hour_start,
    provider_forecast,
    warm_errors,
)
from core.history import IntensityHistory
from core.model import CarbonSignal, ForecastPoint, SignalSnapshot

BASE = 460_000  # an hour index (a multiple of 24: midnight UTC)


def daily(hours: int, *, level: float = 0.0) -> dict[int, float]:
    """A grid that repeats each day: 100 at night, 40 around noon."""
    return {BASE + h: level + (40.0 if 9 <= h % 24 <= 15 else 100.0) for h in range(hours)}


def test_a_grid_that_repeats_each_day_is_forecast_exactly() -> None:
    values = daily(72)
    made = history_forecast("ra", values, hour=BASE + 71, horizon_hours=30)
    assert made is not None
    assert made.start == hour_start(BASE + 71)
    expected = [values[BASE + 71 + k - 24 * math.ceil(k / 24)] if k else values[BASE + 71] for k in range(31)]
    assert list(made.carbon_g_per_kwh) == pytest.approx(expected)


def test_a_departure_from_the_profile_fades_at_the_measured_persistence() -> None:
    values = daily(72)
    for h in range(60, 72):  # the last twelve hours 50 above the profile: a persistent departure
        values[BASE + h] += 50.0
    made = history_forecast("ra", values, hour=BASE + 71, horizon_hours=48)
    assert made is not None
    ahead = made.carbon_g_per_kwh
    assert ahead[0] == values[BASE + 71]
    excess = [ahead[k] - daily(200)[BASE + 71 + k] for k in range(1, 49)]
    # above the usual day, less so two days on (the profile itself took a third of the departure in)
    assert all(e > 0 for e in excess[:12])
    assert excess[0] > 50.0 / 3 + 10
    assert excess[47] < excess[0]


def test_less_than_a_day_or_a_stale_window_forecasts_nothing() -> None:
    assert history_forecast("ra", daily(MIN_HISTORY_HOURS - 1), hour=BASE + 30) is None
    assert history_forecast("ra", daily(48), hour=BASE + 47 + 5) is None
    # future samples are not seen
    assert history_forecast("ra", daily(200), hour=BASE + 10) is None


def test_errors_are_the_rms_by_lead_and_unknown_until_enough() -> None:
    errors = ForecastErrors(window_hours=1000)
    for origin in range(MIN_ERROR_SAMPLES + 5):
        errors.observe("ra", BASE + origin, 100.0)
        errors.record(
            HourlyForecast(
                region="ra",
                start=hour_start(BASE + origin),
                carbon_g_per_kwh=(100.0, 103.0, 90.0),
                made_at=hour_start(BASE + origin),
            )
        )
        if origin < MIN_ERROR_SAMPLES:
            assert errors.errors("ra", 3) == ()
    assert errors.errors("ra", 4) == pytest.approx((0.0, 3.0, 10.0, 10.0))


def test_old_forecasts_leave_the_window() -> None:
    errors = ForecastErrors(window_hours=30, min_samples=1)
    for origin in range(100):
        errors.observe("ra", BASE + origin, 100.0)
        wrong = 200.0 if origin < 50 else 101.0
        errors.record(
            HourlyForecast(
                region="ra",
                start=hour_start(BASE + origin),
                carbon_g_per_kwh=(100.0, wrong),
                made_at=hour_start(BASE + origin),
            )
        )
    assert errors.errors("ra", 2) == pytest.approx((0.0, 1.0))


def test_warming_on_a_repeating_grid_measures_no_error() -> None:
    errors = ForecastErrors()
    values = daily(168)
    warm_errors(errors, "ra", values, upto_hour=BASE + 167, horizon_hours=24)
    measured = errors.errors("ra", 25)
    assert len(measured) == 25
    assert max(measured) == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1000.0), min_size=24, max_size=200))
def test_forecasts_are_never_negative_and_start_from_the_newest_sample(series: list[float]) -> None:
    values = {BASE + h: v for h, v in enumerate(series)}
    made = history_forecast("ra", values, hour=BASE + len(series) - 1, horizon_hours=48)
    assert made is not None
    assert made.carbon_g_per_kwh[0] == series[-1]
    assert min(made.carbon_g_per_kwh) >= 0.0
    assert made.start == datetime.fromtimestamp((BASE + len(series) - 1) * 3600, tz=UTC)


def test_the_embedded_forecasts_of_a_replica_learn_their_own_error() -> None:
    history = IntensityHistory(window_hours=168)
    errors = ForecastErrors()
    values = daily(24 * 5)
    made: list[HourlyForecast] = []
    for h in range(24 * 5):
        at = hour_start(BASE + h)
        history.record(
            SignalSnapshot(
                taken_at=at,
                provider="test",
                carbon={
                    "ra": CarbonSignal(
                        region="ra",
                        zone="ZA",
                        carbon_g_per_kwh=values[BASE + h],
                        observed_at=at,
                        fetched_at=at,
                        source="test",
                    )
                },
            )
        )
        made = embedded_forecasts(history, errors, now=at, horizon_hours=24)
        if h < MIN_HISTORY_HOURS - 1:
            assert made == []
    (last,) = made
    assert last.region == "ra"
    assert last.horizon_hours(hour_start(BASE + 24 * 5 - 1)) == 25
    # a grid that repeats each day is forecast exactly, and the record says so
    assert last.error_samples >= MIN_ERROR_SAMPLES
    assert max(abs(b) for b in last.bias_g_per_kwh) == pytest.approx(0.0, abs=1e-9)


def test_a_providers_points_become_hourly_means_from_the_hour_now_falls_in() -> None:
    at = datetime(2026, 12, 7, 10, 20, tzinfo=UTC)
    points = ((11, 0, 200.0), (11, 30, 300.0), (12, 0, 50.0), (13, 0, 80.0))
    signal = CarbonSignal(
        region="ra",
        zone="ZA",
        carbon_g_per_kwh=100.0,
        observed_at=at,
        fetched_at=at,
        source="electricitymaps",
        forecast=tuple(
            ForecastPoint(at=at.replace(hour=h, minute=m), carbon_g_per_kwh=v) for h, m, v in reversed(points)
        ),
    )
    made = provider_forecast(signal, now=at.replace(minute=40))
    assert made.start == at.replace(minute=0)
    assert made.carbon_g_per_kwh == pytest.approx((100.0, 250.0, 50.0, 80.0))
    assert (made.made_at, made.source) == (at, "electricitymaps")
    assert made.horizon_hours(at.replace(minute=40)) == pytest.approx(3 + 20 / 60)


def _record_errors(errors_by_origin: list[float], *, window_hours: int = 1000) -> HourlyForecast:
    """Forecasts of a flat 100 g/kWh grid, the one made at each origin off by its error at lead 1."""
    errors = ForecastErrors(window_hours=window_hours)
    for origin, error in enumerate(errors_by_origin):
        errors.observe("ra", BASE + origin, 100.0)
        errors.record(
            HourlyForecast(
                region="ra",
                start=hour_start(BASE + origin),
                carbon_g_per_kwh=(100.0, 100.0 + error),
                made_at=hour_start(BASE + origin),
            )
        )
    errors.observe("ra", BASE + len(errors_by_origin), 100.0)
    return errors.attach(
        HourlyForecast(
            region="ra",
            start=hour_start(BASE + len(errors_by_origin)),
            carbon_g_per_kwh=(100.0, 100.0),
            made_at=hour_start(BASE + len(errors_by_origin)),
        )
    )


@pytest.mark.parametrize(
    ("errors", "effective"),
    [
        # forecasts an hour apart err independently (alternating signs about the mean): all count
        ([10.0 + (5.0 if i % 2 else -5.0) for i in range(60)], 60.0),
        # they err alike for a day, then alike the other way: worth a handful, not 60
        ([10.0 + (5.0 if (i // 24) % 2 else -5.0) for i in range(60)], None),
    ],
)
def test_the_record_counts_what_a_mean_of_alike_errors_is_worth(
    errors: list[float], effective: float | None
) -> None:
    made = _record_errors(errors)
    assert made.error_samples == 60
    assert made.bias_g_per_kwh[1] == pytest.approx(sum(errors) / 60)
    if effective is not None:
        assert made.effective_samples[1] == pytest.approx(effective)
    else:
        assert 1.0 <= made.effective_samples[1] < 5.0


def test_pairs_leave_the_window_with_their_forecasts() -> None:
    # the alike errors leave the window: what is left errs independently again
    alike = [20.0] * 50
    independent = [10.0 + (5.0 if i % 2 else -5.0) for i in range(60)]
    made = _record_errors(alike + independent, window_hours=40)
    kept = independent[-made.error_samples :]
    assert made.error_samples < len(independent)
    assert made.bias_g_per_kwh[1] == pytest.approx(sum(kept) / len(kept))
    assert made.effective_samples[1] == pytest.approx(made.error_samples)
