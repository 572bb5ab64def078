"""What the grid did lately: hourly intensity samples per region, and how far the gap between two
regions moves over a horizon. Pure (no I/O); the rebalancer feeds it each cycle's snapshot.

A move pays in hindsight when the *mean* intensity gap over its horizon (source minus target) is
large enough; the planner predicts that gap from the current values (or a forecast). How wrong such
a prediction has been lately is measurable from the samples themselves: for every past hour t with
a horizon's worth of samples after it, the error of predicting the mean gap over (t, t + H] by the
gap at t. Its root mean square over the window is ``gap_error_g_per_kwh``: the spread a move's
realised carbon difference has had around what was predicted. The robust rule in
``core.economics.robust_net_benefit_usd`` prices that spread, and asks that the gap has held for
the last few hourly samples, so a dip that lasts one hour moves nothing.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from core.model import SignalSnapshot

SECONDS_PER_HOUR = 3600
# Fewer horizon errors than this in the window and the spread is unknown (unknown: do nothing).
MIN_ERROR_SAMPLES = 24


def hour_index(at: datetime) -> int:
    """Whole hours since the epoch, UTC: the bucket a sample belongs to."""
    return int(at.astimezone(UTC).timestamp() // SECONDS_PER_HOUR)


@dataclass(frozen=True, slots=True, kw_only=True)
class GapHistory:
    """The recent gap between two regions (source minus target), in g/kWh."""

    held_gaps_g_per_kwh: tuple[float, ...]  # the last hold_hours completed hours, oldest first
    error_g_per_kwh: float  # RMS error of "the mean gap over the horizon = the gap now"
    samples: int  # how many horizon errors the spread is computed from


class IntensityHistory:
    """The last value seen in each UTC hour, per region, for the last ``window_hours`` hours."""

    def __init__(self, *, window_hours: int) -> None:
        self.window_hours = window_hours
        self._values: dict[str, OrderedDict[int, float]] = {}
        self._latest_hour: int | None = None
        self._memo: dict[tuple[str, str, int, int], GapHistory | None] = {}

    def record(self, snapshot: SignalSnapshot) -> None:
        """Keep each known region's value under the hour it was observed in (later ones replace it)."""
        for region, signal in snapshot.carbon.items():
            hour = hour_index(signal.observed_at)
            series = self._values.setdefault(region, OrderedDict())
            series[hour] = signal.carbon_g_per_kwh
            series.move_to_end(hour)
            if self._latest_hour is None or hour > self._latest_hour:
                self._latest_hour = hour
        if self._latest_hour is not None:
            oldest = self._latest_hour - self.window_hours
            for series in self._values.values():
                while series and next(iter(series)) <= oldest:
                    series.popitem(last=False)
        self._memo.clear()

    def series(self, region: str) -> Mapping[int, float]:
        """The region's samples by hour (``hour_index``), oldest first: a read-only view."""
        series = self._values.get(region)
        return MappingProxyType(series) if series is not None else MappingProxyType({})

    def regions(self) -> tuple[str, ...]:
        return tuple(sorted(self._values))

    @property
    def latest_hour(self) -> int | None:
        return self._latest_hour

    def value(self, region: str, hour: int) -> float | None:
        series = self._values.get(region)
        return None if series is None else series.get(hour)

    def gap(
        self, source: str, target: str, *, now: datetime, horizon_hours: float, hold_hours: int
    ) -> GapHistory | None:
        """The gap's recent history, or None when the window does not hold enough of it yet."""
        current = hour_index(now)
        horizon = max(1, math.ceil(horizon_hours))
        key = (source, target, current, horizon * 1000 + hold_hours)
        if key in self._memo:
            return self._memo[key]
        found = self._gap(source, target, current=current, horizon=horizon, hold_hours=hold_hours)
        self._memo[key] = found
        return found

    def _gap(
        self, source: str, target: str, *, current: int, horizon: int, hold_hours: int
    ) -> GapHistory | None:
        gaps: dict[int, float] = {}
        for hour in range(current - self.window_hours + 1, current + 1):
            a, b = self.value(source, hour), self.value(target, hour)
            if a is not None and b is not None:
                gaps[hour] = a - b
        held: list[float] = []
        for hour in range(current - hold_hours, current):
            if hour not in gaps:
                return None  # the hold cannot be shown: a missing hour proves nothing
            held.append(gaps[hour])
        squares = 0.0
        samples = 0
        for start, now_gap in gaps.items():
            ahead = [gaps.get(start + k) for k in range(1, horizon + 1)]
            if any(g is None for g in ahead):
                continue
            mean = sum(g for g in ahead if g is not None) / horizon
            squares += (mean - now_gap) ** 2
            samples += 1
        if samples < MIN_ERROR_SAMPLES:
            return None
        return GapHistory(
            held_gaps_g_per_kwh=tuple(held), error_g_per_kwh=math.sqrt(squares / samples), samples=samples
        )
