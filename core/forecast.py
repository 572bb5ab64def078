"""Pure. A forecast that needs no account, built only from the hours already observed, and how
wrong forecasts have lately been.

The embedded forecast (``history_forecast``) reads the week of hourly history every replica keeps
(``core.history.IntensityHistory``):

    forecast(now + k) = profile(hour of day of now + k) + anomaly(now) x phi^k     (floored at 0)

- **profile**: for each UTC hour of the day, the mean of that hour over the days in the window. The
  daily cycle (solar at noon, demand in the evening) is what makes one hour greener than another
  for most grids, and a week holds every hour seven times, weekdays and weekend alike;
- **anomaly**: how far the grid is now from its profile (a windy day, a plant offline). Weather and
  outages last hours, not minutes, so the anomaly fades rather than vanishes: it decays by ``phi``
  per hour ahead, ``phi`` the lag-1 autocorrelation of the anomaly over the window (in [0, 1]),
  measured per region, so a grid whose departures last keeps them longer in its forecast.

Nothing in it is fitted to a zone or a year: two means and one correlation, each from the window.

``ForecastErrors`` measures any forecast (embedded or a provider's) against what came: for each
lead hour k, the RMS error of the forecasts made in the window at lead k, made non-decreasing in
k. That is the "recent error" the deferral planner asks a wait's saving to survive. By lead it
also keeps the mean error and its spread, and how alike the errors of forecasts made an hour apart
are (their correlation r): a mean of n such errors is worth n (1 - r) / (1 + r) independent ones
(``HourlyForecast.effective_samples``), which is how sure the planner may be of a source's bias
before it corrects the forecast by it.

It also keeps, by lead, how alike the errors of two forecasts of the same hour issued an hour apart
are, and ``attach`` gives each hour the minimum-variance combination of the newest forecast and the
one issued an hour before (``combined_weight``): a source whose revisions come true keeps its
newest forecast, one whose issuances err independently has its noise averaged down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from core.deferral import HourlyForecast
from core.history import IntensityHistory
from core.model import CarbonSignal

SECONDS_PER_HOUR = 3600
HOURS_PER_DAY = 24
DEFAULT_WINDOW_HOURS = 168
DEFAULT_HORIZON_HOURS = 48
# At least a day: every hour of the day seen once.
MIN_HISTORY_HOURS = HOURS_PER_DAY
# Fewer forecasts than this at a lead and its error is not known (the robust rule's own minimum).
MIN_ERROR_SAMPLES = 24
# The newest sample must be this recent for a forecast to start from it.
MAX_SAMPLE_AGE_HOURS = 2
SOURCE = "history"


def hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * SECONDS_PER_HOUR, tz=UTC)


def history_forecast(
    region: str,
    values: Mapping[int, float],
    *,
    hour: int,
    horizon_hours: int = DEFAULT_HORIZON_HOURS,
    window_hours: int = DEFAULT_WINDOW_HOURS,
) -> HourlyForecast | None:
    """The embedded forecast for ``region`` made at ``hour`` (``core.history.hour_index``) from the
    samples ``values`` of the hours ``hour - window_hours < h <= hour`` (later ones are ignored).

    Slot 0 is the newest sample (at most ``MAX_SAMPLE_AGE_HOURS`` old), then ``horizon_hours`` more.
    None while the window holds less than a day.
    """
    oldest = hour - window_hours
    seen = {h: v for h, v in values.items() if oldest < h <= hour}
    if len(seen) < MIN_HISTORY_HOURS:
        return None
    latest = max(seen)
    if hour - latest >= MAX_SAMPLE_AGE_HOURS:
        return None
    sums = [0.0] * HOURS_PER_DAY
    counts = [0] * HOURS_PER_DAY
    for h, v in seen.items():
        sums[h % HOURS_PER_DAY] += v
        counts[h % HOURS_PER_DAY] += 1
    overall = sum(seen.values()) / len(seen)
    profile = [sums[d] / counts[d] if counts[d] else overall for d in range(HOURS_PER_DAY)]
    phi = _persistence({h: v - profile[h % HOURS_PER_DAY] for h, v in seen.items()})
    anomaly = seen[latest] - profile[latest % HOURS_PER_DAY]
    ahead = [seen[latest]]
    decay = 1.0
    for k in range(1, horizon_hours + 1):
        decay *= phi
        ahead.append(max(0.0, profile[(latest + k) % HOURS_PER_DAY] + anomaly * decay))
    return HourlyForecast(
        region=region,
        start=hour_start(latest),
        carbon_g_per_kwh=tuple(ahead),
        made_at=hour_start(latest),
        source=SOURCE,
    )


def _persistence(anomalies: Mapping[int, float]) -> float:
    """The lag-1 autocorrelation of the anomalies (pairs of consecutive hours), in [0, 1]."""
    products = squares = 0.0
    for h, a in anomalies.items():
        before = anomalies.get(h - 1)
        if before is not None:
            products += a * before
            squares += before * before
    if squares <= 0.0:
        return 0.0
    return min(1.0, max(0.0, products / squares))


class ForecastErrors:
    """How far each region's forecasts were from what came, over the last ``window_hours``.

    ``record`` a forecast when it is made, ``observe`` each hour's value when it is known (either
    order). ``attach`` gives a new forecast its source's record by lead: the RMS error
    (``error_g_per_kwh``, exported as a metric), the mean error and its spread (what
    ``core.deferral`` judges a saving by).
    Work per hour and region is proportional to the forecasts in flight, so a replay of a year can
    keep it as the live loop does.
    """

    def __init__(
        self, *, window_hours: int = DEFAULT_WINDOW_HOURS, min_samples: int = MIN_ERROR_SAMPLES
    ) -> None:
        self.window_hours = window_hours
        self.min_samples = min_samples
        self._regions: dict[str, _RegionErrors] = {}

    def _region(self, region: str) -> _RegionErrors:
        found = self._regions.get(region)
        if found is None:
            found = self._regions[region] = _RegionErrors()
        return found

    def record(self, forecast: HourlyForecast) -> None:
        state = self._region(forecast.region)
        origin = _hour_of(forecast.start)
        predicted = forecast.carbon_g_per_kwh
        state.pending[origin] = _Pending(predicted)
        for k in range(len(predicted)):
            actual = state.actuals.get(origin + k)
            if actual is not None:
                state.fill(origin, k, actual)
        self._forget(state, origin)

    def observe(self, region: str, hour: int, value: float) -> None:
        state = self._region(region)
        if hour in state.actuals:
            return  # the first value seen for an hour is the one forecasts are judged against
        state.actuals[hour] = value
        for origin in [o for o, p in state.pending.items() if 0 <= hour - o < len(p.predicted)]:
            state.fill(origin, hour - origin, value)
        self._forget(state, hour)

    def errors(self, region: str, length: int) -> tuple[float, ...]:
        """RMS error by lead 0..length-1, non-decreasing from lead 1; () if lead 1 is unknown."""
        state = self._regions.get(region)
        if state is None or len(state.counts) < 2 or state.counts[1] < self.min_samples:
            return ()
        out = [0.0]
        for k in range(1, length):
            counts = state.counts[k] if k < len(state.counts) else 0
            measured = math.sqrt(max(0.0, state.squares[k]) / counts) if counts >= self.min_samples else 0.0
            out.append(max(out[-1], measured))
        return tuple(out)

    def attach(self, forecast: HourlyForecast) -> HourlyForecast:
        """The forecast with its region's record by lead: RMS error, bias, spread and how many
        forecasts they are from (the fewest of any lead; 0 while unknown)."""
        length = len(forecast.carbon_g_per_kwh)
        state = self._regions.get(forecast.region)
        if state is None or len(state.counts) < length or min(state.counts[:length]) < self.min_samples:
            return replace(forecast, error_g_per_kwh=self.errors(forecast.region, length))
        bias = tuple(state.sums[k] / state.counts[k] for k in range(length))
        spread = tuple(
            math.sqrt(max(0.0, state.squares[k] / state.counts[k] - bias[k] ** 2)) for k in range(length)
        )
        values, bias, spread = self._combined(state, forecast, bias, spread)
        return replace(
            forecast,
            carbon_g_per_kwh=values,
            error_g_per_kwh=self.errors(forecast.region, length),
            bias_g_per_kwh=bias,
            spread_g_per_kwh=spread,
            error_samples=min(state.counts[:length]),
            effective_samples=tuple(_effective(state, k, bias[k], spread[k]) for k in range(length)),
        )

    def _combined(
        self,
        state: _RegionErrors,
        forecast: HourlyForecast,
        bias: tuple[float, ...],
        spread: tuple[float, ...],
    ) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        """Each hour's value as the minimum-variance combination of this forecast (lead k) and the
        one issued an hour before for the same hour (lead k + 1), with their mean error and spread
        (``combined_weight``); an hour whose pair is not recorded keeps this forecast's value."""
        values = forecast.carbon_g_per_kwh
        origin = _hour_of(forecast.start)
        older = state.pending.get(origin - 1)
        if older is None:
            return values, bias, spread
        out_values, out_bias, out_spread = list(values), list(bias), list(spread)
        for k in range(len(values)):
            older_k = k + 1
            if (
                older_k >= len(older.predicted)
                or older_k >= len(state.counts)
                or state.counts[older_k] < self.min_samples
                or state.crossed_counts[k] < self.min_samples
            ):
                continue
            older_bias = state.sums[older_k] / state.counts[older_k]
            older_spread = math.sqrt(max(0.0, state.squares[older_k] / state.counts[older_k] - older_bias**2))
            covariance = state.crossed[k] / state.crossed_counts[k] - bias[k] * older_bias
            samples = _effective(state, k, bias[k], spread[k])
            w = combined_weight(spread[k], older_spread, covariance, samples)
            if w >= 1.0:
                continue
            out_values[k] = w * values[k] + (1.0 - w) * older.predicted[older_k]
            out_bias[k] = w * bias[k] + (1.0 - w) * older_bias
            out_spread[k] = math.sqrt(
                max(
                    0.0,
                    w * w * spread[k] ** 2
                    + (1.0 - w) ** 2 * older_spread**2
                    + 2.0 * w * (1.0 - w) * covariance,
                )
            )
        return tuple(out_values), tuple(out_bias), tuple(out_spread)

    def _forget(self, state: _RegionErrors, hour: int) -> None:
        """Drop forecasts made, and values seen, before the window."""
        state.latest = hour if state.latest is None else max(state.latest, hour)
        oldest = state.latest - self.window_hours
        for origin in [o for o in state.complete if o <= oldest]:
            state.unsum(origin, state.complete.pop(origin))
        for origin in [o for o in state.pending if o <= oldest]:
            state.unsum(origin, state.pending.pop(origin).errors)
        horizon = max((len(p.predicted) for p in state.pending.values()), default=0)
        for h in [h for h in state.actuals if h <= oldest - horizon]:
            del state.actuals[h]


class _Pending:
    __slots__ = ("errors", "missing", "predicted")

    def __init__(self, predicted: tuple[float, ...]) -> None:
        self.predicted = predicted
        self.errors: list[float | None] = [None] * len(predicted)
        self.missing = len(predicted)


class _RegionErrors:
    __slots__ = (
        "actuals",
        "complete",
        "counts",
        "crossed",
        "crossed_counts",
        "lagged",
        "lagged_counts",
        "latest",
        "pending",
        "squares",
        "sums",
    )

    def __init__(self) -> None:
        self.actuals: dict[int, float] = {}
        # origin -> its forecast and errors so far; complete once every lead is observed
        self.pending: dict[int, _Pending] = {}
        self.complete: dict[int, tuple[float, ...]] = {}
        self.sums: list[float] = []  # by lead: errors, squared errors, how many
        self.squares: list[float] = []
        self.counts: list[int] = []
        # by lead: the products of the errors of forecasts made an hour apart, and how many (how
        # alike consecutive forecasts err: what a mean of them is worth)
        self.lagged: list[float] = []
        self.lagged_counts: list[int] = []
        # by lead k: the products of the errors of two forecasts of the same hour issued an hour
        # apart, the newer at lead k, the older at k + 1, and how many (what combining them is worth)
        self.crossed: list[float] = []
        self.crossed_counts: list[int] = []
        self.latest: int | None = None

    def error_at(self, origin: int, k: int) -> float | None:
        pending = self.pending.get(origin)
        if pending is not None:
            return pending.errors[k] if k < len(pending.errors) else None
        complete = self.complete.get(origin)
        return complete[k] if complete is not None and k < len(complete) else None

    def _pair(self, origin: int, k: int, error: float, sign: int) -> None:
        for neighbour in (origin - 1, origin + 1):
            other = self.error_at(neighbour, k)
            if other is not None:
                self.lagged[k] += sign * error * other
                self.lagged_counts[k] += sign
        # the same hour issued an hour earlier (lead k + 1) and an hour later (lead k - 1)
        older = self.error_at(origin - 1, k + 1)
        if older is not None:
            self.crossed[k] += sign * error * older
            self.crossed_counts[k] += sign
        newer = self.error_at(origin + 1, k - 1) if k > 0 else None
        if newer is not None:
            self.crossed[k - 1] += sign * error * newer
            self.crossed_counts[k - 1] += sign

    def fill(self, origin: int, k: int, actual: float) -> None:
        pending = self.pending[origin]
        if pending.errors[k] is not None:
            return
        error = pending.predicted[k] - actual
        pending.errors[k] = error
        pending.missing -= 1
        while len(self.sums) <= k:
            self.sums.append(0.0)
            self.squares.append(0.0)
            self.counts.append(0)
            self.lagged.append(0.0)
            self.lagged_counts.append(0)
            self.crossed.append(0.0)
            self.crossed_counts.append(0)
        self.sums[k] += error
        self.squares[k] += error * error
        self.counts[k] += 1
        self._pair(origin, k, error, 1)
        if not pending.missing:
            del self.pending[origin]
            self.complete[origin] = tuple(e for e in pending.errors if e is not None)

    def unsum(self, origin: int, errors: Sequence[float | None]) -> None:
        """Take out a forecast no longer stored (``origin`` already dropped), and its pairs with
        the forecasts made an hour before and after it that still are."""
        for k, error in enumerate(errors):
            if error is not None:
                self.sums[k] -= error
                self.squares[k] -= error * error
                self.counts[k] -= 1
                self._pair(origin, k, error, -1)


def combined_weight(
    newer_spread: float, older_spread: float, covariance: float, samples: float = math.inf
) -> float:
    """The weight w on the newer of two forecasts of the same hour whose combination
    ``w x newer + (1 - w) x older`` errs least (least variance), from their errors' spreads s1, s2
    and covariance c, as sure as ``samples`` independent forecasts make it.

    ``1 - w = (s1² - c) / (s1² + s2² - 2c)`` is the slope of the newer forecast's error on the
    revision (newer minus older): 0 when revisions come true (errors alike from one issuance to the
    next, c = s1 s2 with s1 <= s2: the embedded forecast, whose anomaly persists; real providers),
    1/2 for independent errors of equal spread (a forecast re-drawn each issuance). The slope is
    shrunk by its standard error as the bias is (``b - se²/b``, positive part; se² the residual
    variance over ``samples`` times the revisions' variance): forecasts that err nearly alike make
    the revision tiny and the slope unsure, and an unsure slope keeps the newer forecast.

    Bounded to [0, 1]: outside it the combination extrapolates from one forecast through the other
    to a value neither issued. Between the least-variance weight and 1 the combined error's variance
    is never above the newer forecast's alone (it is convex in w). 1 (the newer alone) when the two
    are indistinguishable (no variance in the revision)."""
    revision = newer_spread**2 + older_spread**2 - 2.0 * covariance
    if revision <= 0.0 or samples <= 0.0:
        return 1.0
    slope = (newer_spread**2 - covariance) / revision
    if slope <= 0.0:
        return 1.0
    residual = max(0.0, newer_spread**2 - slope * slope * revision)
    sure = slope - residual / (samples * revision) / slope
    return 1.0 - min(1.0, max(0.0, sure))


def _effective(state: _RegionErrors, k: int, bias: float, spread: float) -> float:
    """How many independent forecasts the mean error at lead k is worth: n (1 - r) / (1 + r), r the
    correlation of the errors of forecasts made an hour apart (in [0, 1)): forecasts that err
    alike from one hour to the next tell the mean little more than one of them does."""
    n = state.counts[k]
    pairs = state.lagged_counts[k] if k < len(state.lagged_counts) else 0
    if pairs <= 0 or spread <= 0.0:
        return float(n)
    r = min(1.0 - 1e-9, max(0.0, (state.lagged[k] / pairs - bias * bias) / (spread * spread)))
    return max(1.0, n * (1.0 - r) / (1.0 + r))


def _hour_of(at: datetime) -> int:
    return int(at.astimezone(UTC).timestamp() // SECONDS_PER_HOUR)


def warm_errors(
    errors: ForecastErrors,
    region: str,
    values: Mapping[int, float],
    *,
    upto_hour: int,
    horizon_hours: int = DEFAULT_HORIZON_HOURS,
    window_hours: int = DEFAULT_WINDOW_HOURS,
) -> None:
    """Replay the history through ``errors`` as if the embedded forecast had run every past hour:
    a process that starts with a week of history knows the forecast's error at once."""
    for hour in sorted(h for h in values if h <= upto_hour):
        errors.observe(region, hour, values[hour])
        made = history_forecast(
            region, values, hour=hour, horizon_hours=horizon_hours, window_hours=window_hours
        )
        if made is not None:
            errors.record(made)


def embedded_forecasts(
    history: IntensityHistory,
    errors: ForecastErrors,
    *,
    now: datetime,
    horizon_hours: int = DEFAULT_HORIZON_HOURS,
) -> list[HourlyForecast]:
    """Each region's embedded forecast at ``now`` from ``history``, with its error record: what the
    planner is given when no provider forecasts. The record learns the newest hours and this
    forecast; call it once a cycle (a forecast made again within its hour replaces the earlier one)."""
    hour = _hour_of(now)
    out: list[HourlyForecast] = []
    for region in history.regions():
        values = history.series(region)
        # Completed hours only: the history keeps the last value seen in an hour.
        for seen in [h for h in values if hour - MAX_SAMPLE_AGE_HOURS - 1 < h < hour]:
            errors.observe(region, seen, values[seen])
        made = history_forecast(
            region, values, hour=hour, horizon_hours=horizon_hours, window_hours=history.window_hours
        )
        if made is not None:
            errors.record(made)
            out.append(errors.attach(made))
    return out


def provider_forecast(signal: CarbonSignal, *, now: datetime) -> HourlyForecast:
    """A provider's signal (its value and forecast points) as the planner's hourly forecast from the
    hour ``now`` falls in, as far as its points reach.

    The intensity is a step function: the current value from ``observed_at``, each forecast point
    from its instant on; each hour is its time-weighted mean. An hour past the last point is not
    known (its first hour after the last point is, as that point holds for it). Give it an error
    record with ``ForecastErrors.record`` and ``attach``, as the embedded forecast has.
    """
    origin = hour_start(_hour_of(now))
    steps = sorted(
        [
            (signal.observed_at, signal.carbon_g_per_kwh),
            *((p.at, p.carbon_g_per_kwh) for p in signal.forecast),
        ],
        key=lambda step: step[0],
    )
    last = steps[-1][0]
    values: list[float] = []
    slot = origin
    while slot <= last:
        end = slot + timedelta(hours=1)
        # the value holding at the slot's start, then each change within it
        holding = next((v for at, v in reversed(steps) if at <= slot), steps[0][1])
        weighted, at = 0.0, slot
        for change, value in steps:
            if slot < change < end:
                weighted += holding * (change - at).total_seconds()
                holding, at = value, change
        weighted += holding * (end - at).total_seconds()
        values.append(weighted / SECONDS_PER_HOUR)
        slot = end
    return HourlyForecast(
        region=signal.region,
        start=origin,
        carbon_g_per_kwh=tuple(values),
        made_at=signal.observed_at,
        source=signal.source,
    )
