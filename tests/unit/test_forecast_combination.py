"""The forecasts issued for the same hour, combined by the weight their record gives
(``core.forecast.combined_weight``, applied by ``ForecastErrors.attach``)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.deferral import HourlyForecast
from core.forecast import MIN_ERROR_SAMPLES, ForecastErrors, combined_weight, hour_start

BASE = 460_000
ACTUAL = 100.0


@pytest.mark.parametrize(
    ("newer", "older", "covariance", "weight"),
    [
        (10.0, 10.0, 100.0, 1.0),  # identical errors: the newest only
        (10.0, 12.0, 120.0, 1.0),  # alike errors (correlation 1), the older wider: the newest only
        (10.0, 10.0, 0.0, 0.5),  # independent, equal spread: the mean
        (10.0, 20.0, 0.0, 0.8),  # independent: by inverse variance, 400 / (100 + 400)
        (20.0, 10.0, 0.0, 0.2),
        (10.0, 10.0, -100.0, 0.5),  # opposite errors cancel in the mean
        (0.0, 0.0, 0.0, 1.0),  # no error either way: nothing to combine
        (0.0, 10.0, 0.0, 1.0),  # the newer is exact (lead 0: the value now)
    ],
)
def test_the_weight_on_the_newer_forecast(
    newer: float, older: float, covariance: float, weight: float
) -> None:
    assert combined_weight(newer, older, covariance) == pytest.approx(weight)


spreads = st.floats(min_value=0.0, max_value=500.0)
correlations = st.floats(min_value=-1.0, max_value=1.0)


@given(spreads, spreads, correlations)
def test_the_combination_errs_no_more_than_either_forecast(s1: float, s2: float, r: float) -> None:
    c = r * s1 * s2
    w = combined_weight(s1, s2, c)
    assert 0.0 <= w <= 1.0  # the weights w and 1 - w sum to 1, neither negative
    variance = w * w * s1 * s1 + (1 - w) ** 2 * s2 * s2 + 2 * w * (1 - w) * c
    assert variance <= min(s1 * s1, s2 * s2) * (1 + 1e-9) + 1e-9


@given(spreads, spreads, correlations, st.floats(min_value=1.0, max_value=1e4))
def test_fewer_samples_keep_more_of_the_newest(s1: float, s2: float, r: float, n: float) -> None:
    sure = combined_weight(s1, s2, r * s1 * s2)
    unsure = combined_weight(s1, s2, r * s1 * s2, n)
    assert sure <= unsure + 1e-12 <= 1.0 + 1e-12
    # shrunk toward the newer, the combination still errs no more than the newer alone
    c = r * s1 * s2
    variance = unsure**2 * s1 * s1 + (1 - unsure) ** 2 * s2 * s2 + 2 * unsure * (1 - unsure) * c
    assert variance <= s1 * s1 * (1 + 1e-9) + 1e-9
    assert combined_weight(s1, s2, r * s1 * s2, n) <= combined_weight(s1, s2, r * s1 * s2, n / 2) + 1e-12


def _forecast(origin: int, ahead: tuple[float, ...]) -> HourlyForecast:
    return HourlyForecast(
        region="ra",
        start=hour_start(BASE + origin),
        carbon_g_per_kwh=(ACTUAL, *ahead),
        made_at=hour_start(BASE + origin),
    )


def _replayed(
    errors_at: list[tuple[float, float]], newest: tuple[float, float], *, window_hours: int = 168
) -> tuple[HourlyForecast, HourlyForecast]:
    """Forecasts issued hourly of a grid at ``ACTUAL``, the one at origin o erring by
    ``errors_at[o]`` at leads 1 and 2; then the newest, as given and as attached."""
    record = ForecastErrors(window_hours=window_hours)
    for origin, (e1, e2) in enumerate(errors_at):
        record.observe("ra", BASE + origin, ACTUAL)
        record.record(_forecast(origin, (ACTUAL + e1, ACTUAL + e2)))
    origin = len(errors_at)
    record.observe("ra", BASE + origin, ACTUAL)
    given_ = _forecast(origin, newest)
    return given_, record.attach(given_)


def _sign(flag: bool) -> float:
    return 5.0 if flag else -5.0


def test_independent_errors_of_equal_spread_give_the_mean() -> None:
    # lead 1 of origin o errs by +-5 (alternating), lead 2 by +-5 every two hours: the errors of
    # the same hour issued an hour apart are uncorrelated, of equal spread
    n = 96
    errors_at = [(_sign(o % 2 == 1), _sign((o + 1) // 2 % 2 == 1)) for o in range(n)]
    given_, made = _replayed(errors_at, (130.0, 100.0))
    older = ACTUAL + errors_at[-1][1]  # what the forecast an hour older said for lead 1's hour
    mean = (130.0 + older) / 2
    # the weight is 1/2, less the little its standard error over n forecasts keeps of the newest
    assert made.carbon_g_per_kwh[1] == pytest.approx(mean, abs=abs(130.0 - older) * 2 / n)
    assert made.carbon_g_per_kwh[1] != pytest.approx(given_.carbon_g_per_kwh[1])
    assert made.carbon_g_per_kwh[0] == ACTUAL  # the value now is not combined
    assert made.spread_g_per_kwh[1] < 5.0  # and the combined error is narrower


def test_identical_errors_keep_the_newest_forecast() -> None:
    # each hour's error is the same whichever issuance forecast it (lead 2 of origin o errs as lead
    # 1 of origin o + 1), and hours err independently: the older forecast tells nothing more
    given_, made = _replayed(_identical(96), (130.0, 100.0))
    assert made.carbon_g_per_kwh == given_.carbon_g_per_kwh


def _identical(n: int) -> list[tuple[float, float]]:
    return [(_sign(o % 2 == 1), _sign(o % 2 == 0)) for o in range(n)]


def test_an_unknown_record_keeps_the_newest_forecast() -> None:
    independent = [(_sign(o % 2 == 1), _sign((o + 1) // 2 % 2 == 1)) for o in range(MIN_ERROR_SAMPLES - 2)]
    given_, made = _replayed(independent, (130.0, 100.0))
    assert made.carbon_g_per_kwh == given_.carbon_g_per_kwh
    # no older forecast of the same hours: the newest as given, whatever the record
    record = ForecastErrors()
    fresh = _forecast(0, (130.0, 100.0))
    assert record.attach(fresh).carbon_g_per_kwh == fresh.carbon_g_per_kwh
    assert math.isfinite(combined_weight(1.0, 1.0, 1.0, 0.0))


def test_pairs_of_issuances_leave_the_window_with_their_forecasts() -> None:
    # independent errors, then identical ones for longer than the window: only the identical are
    # left in the record, and the newest forecast is kept as it is
    independent = [(_sign(o % 2 == 1), _sign((o + 1) // 2 % 2 == 1)) for o in range(60)]
    given_, made = _replayed(independent + _identical(60), (130.0, 100.0), window_hours=40)
    assert made.carbon_g_per_kwh == given_.carbon_g_per_kwh
