"""What the replayed rebalancer sees ahead: forecast models a user can name.

- ``none``: current intensities only (no forecast points), what a provider without forecasts gives;
- ``perfect``: the trace's next hours as they happened (an upper bound on what a forecast adds);
- ``persistence``: the current value held for every hour ahead;
- ``noisy``: the true next hours with an error that grows with lead time, seeded;
- ``history``: the embedded forecast (``core.forecast.history_forecast``) from the past week of the
  trace only: what every replica can forecast with no account;
- ``yesterday``: each hour ahead as it was at the same hour the day before (a naive baseline).

The ``noisy`` error is multiplicative, ``forecast = true x exp(e_k)`` at lead k hours, with ``e_k`` a
Gaussian random walk in the lead time: ``e_k = e_(k-1) + N(0, s_k^2 - s_(k-1)^2)``, so its spread at
lead k is ``s_k`` and neighbouring hours err alike, as real forecasts do. ``s_k`` is estimated per
zone from the trace itself: the standard deviation of ``log x(t+k) - log x(t)`` over the trace, the
error a forecaster with no skill beyond persistence would make at lead k. Centred on the truth, it
is a forecast that knows where the grid goes but is as unsure as persistence about how far: a
pessimistic stand-in for a commercial forecast. Each (zone, hour) draws from its own generator
seeded by ``seed``, so a forecast does not depend on which hours were asked for before.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from core.forecast import DEFAULT_WINDOW_HOURS, HOURS_PER_DAY, history_forecast

# Intensities are floored here before taking logs (a grid at 0 g/kWh would make the log infinite).
_FLOOR_G_PER_KWH = 1.0


class ForecastModel(StrEnum):
    NONE = "none"
    PERFECT = "perfect"
    PERSISTENCE = "persistence"
    NOISY = "noisy"
    HISTORY = "history"
    YESTERDAY = "yesterday"


def lead_spread(series: Sequence[float], max_lead_hours: int) -> tuple[float, ...]:
    """``s_k`` for k = 1..max_lead_hours: the spread of ``log x(t+k) - log x(t)`` over the series,
    made non-decreasing in k (an error cannot shrink by looking further ahead)."""
    logs = [math.log(max(_FLOOR_G_PER_KWH, x)) for x in series]
    spreads: list[float] = []
    for k in range(1, max_lead_hours + 1):
        diffs = [logs[t + k] - logs[t] for t in range(len(logs) - k)]
        if len(diffs) < 2:
            spreads.append(spreads[-1] if spreads else 0.0)
            continue
        mean = sum(diffs) / len(diffs)
        spread = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
        spreads.append(max(spread, spreads[-1] if spreads else 0.0))
    return tuple(spreads)


@dataclass(frozen=True, slots=True)
class Forecaster:
    """Forecast values for each zone's next hours; ``spread[zone]`` is ``s_1..s_H`` (noisy only)."""

    model: ForecastModel
    hours: int
    seed: int
    series: Mapping[str, Sequence[float]]
    spread: Mapping[str, tuple[float, ...]]

    @classmethod
    def build(
        cls, model: ForecastModel, *, hours: int, seed: int, series: Mapping[str, Sequence[float]]
    ) -> Forecaster:
        hours = 0 if model is ForecastModel.NONE else hours
        spread = (
            {zone: lead_spread(values, hours) for zone, values in series.items()}
            if model is ForecastModel.NOISY
            else {}
        )
        return cls(model=model, hours=hours, seed=seed, series=series, spread=spread)

    def ahead(self, zone: str, hour: int) -> list[float]:
        """The forecast made at ``hour`` for hours ``hour+1 ..`` (at most ``hours``, within the trace)."""
        values = self.series[zone]
        last = min(len(values), hour + 1 + self.hours)
        truth = [values[h] for h in range(hour + 1, last)]
        if self.model is ForecastModel.PERSISTENCE:
            return [values[hour]] * len(truth)
        if self.model is ForecastModel.YESTERDAY:
            return [
                values[max(0, h - HOURS_PER_DAY * math.ceil((h - hour) / HOURS_PER_DAY))]
                for h in range(hour + 1, last)
            ]
        if self.model is ForecastModel.HISTORY:
            window = range(max(0, hour - DEFAULT_WINDOW_HOURS + 1), hour + 1)
            made = history_forecast(zone, {h: values[h] for h in window}, hour=hour, horizon_hours=self.hours)
            return [] if made is None else list(made.carbon_g_per_kwh[1 : 1 + len(truth)])
        if self.model is not ForecastModel.NOISY:
            return truth
        rng = random.Random(f"{self.seed}:{zone}:{hour}")  # noqa: S311 - a model, not a secret
        spread = self.spread[zone]
        error = previous = 0.0
        out: list[float] = []
        for k, value in enumerate(truth):
            step = math.sqrt(max(0.0, spread[k] ** 2 - previous**2))
            error += rng.gauss(0.0, step)
            previous = spread[k]
            out.append(value * math.exp(error))
        return out

    def describe(self) -> dict[str, object]:
        """What report.json says about the forecast."""
        out: dict[str, object] = {"model": str(self.model), "hours": self.hours}
        if self.model is ForecastModel.NOISY:
            out["seed"] = self.seed
            out["error"] = (
                "forecast = true x exp(e_k), e_k a Gaussian random walk in lead time k with spread s_k; "
                "s_k = std of log x(t+k) - log x(t) over the trace, per zone"
            )
            leads = [k for k in (1, 3, 6, 12, 24, 48) if k <= self.hours]
            out["spreadByLeadHours"] = {
                zone: {str(k): round(values[k - 1], 4) for k in leads} for zone, values in self.spread.items()
            }
        return out


# What a named forecast model looks ahead when the configured provider does not forecast.
DEFAULT_FORECAST_HOURS = 24


def replay_forecaster(
    model: ForecastModel | None,
    *,
    hours: int | None,
    configured_hours: int,
    seed: int,
    series: Mapping[str, Sequence[float]],
) -> Forecaster:
    """What ecopulse sees in a replay: by default a provider that forecasts (``configured_hours``)
    is given the trace's next hours (a perfect forecast), one that does not sees the current hour
    only; a named model overrides both."""
    if model is None:
        model = ForecastModel.PERFECT if configured_hours else ForecastModel.NONE
    return Forecaster.build(
        model, hours=hours or configured_hours or DEFAULT_FORECAST_HOURS, seed=seed, series=series
    )
