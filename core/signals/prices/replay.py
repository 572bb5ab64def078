"""Hourly price history for ``simulate --prices FILE``: a user's own cloud's prices, replayed.

CSV with the header ``datetime_utc,region,capacity_type,vcpu_hour_usd,gib_hour_usd``
(docs/trace-format.md). At any instant a region's price of a capacity type is its latest row at or
before that instant; before its first row, or for a region or capacity type the file does not
name, the configuration's price stands (the bundled table, or the operator's ``prices:``).
"""

from __future__ import annotations

import bisect
import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from core.model import CapacityType, PriceRates

HEADER = ["datetime_utc", "region", "capacity_type", "vcpu_hour_usd", "gib_hour_usd"]
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_USD_PER_HOUR = 100.0


class PriceHistoryError(ValueError):
    """The file cannot be used; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class PriceHistory:
    source: str
    # (region, capacity type) -> times ascending, and (vcpu-hour, GiB-hour) at each
    times: Mapping[tuple[str, CapacityType], list[datetime]] = field(default_factory=dict)
    values: Mapping[tuple[str, CapacityType], list[tuple[float, float]]] = field(default_factory=dict)

    def rates_at(self, when: datetime, configured: Mapping[str, PriceRates]) -> dict[str, PriceRates]:
        """Every configured region's prices at ``when``: the file's latest rows over the configuration's."""
        result: dict[str, PriceRates] = {}
        for region, configured_rates in configured.items():
            rates = configured_rates
            for capacity in CapacityType:
                times = self.times.get((region, capacity))
                if not times:
                    continue
                index = bisect.bisect_right(times, when) - 1
                if index < 0:
                    continue
                vcpu, gib = self.values[(region, capacity)][index]
                if capacity is CapacityType.SPOT:
                    rates = replace(rates, spot_vcpu_hour_usd=vcpu, spot_gib_hour_usd=gib)
                else:
                    rates = replace(rates, vcpu_hour_usd=vcpu, gib_hour_usd=gib)
                rates = replace(rates, source=self.source)
            result[region] = rates
        return result


def parse_price_history(text: str, *, source: str, regions: frozenset[str]) -> PriceHistory:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [cell.strip() for cell in rows[0]] != HEADER:
        found = ",".join(rows[0]) if rows else "nothing"
        raise PriceHistoryError(f"{source}: the header must be {','.join(HEADER)}, got {found}")
    series: dict[tuple[str, CapacityType], dict[datetime, tuple[float, float]]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        where = f"{source}:{line}"
        if len(row) != len(HEADER):
            raise PriceHistoryError(f"{where}: expected {len(HEADER)} fields, got {len(row)}")
        when_text, region, capacity_text, vcpu_text, gib_text = (cell.strip() for cell in row)
        when = _instant(when_text, where)
        if region not in regions:
            raise PriceHistoryError(f"{where}: region {region!r} is not one of the configured regions")
        try:
            capacity = CapacityType(capacity_text)
        except ValueError:
            raise PriceHistoryError(
                f"{where}: capacity_type must be on-demand or spot, got {capacity_text!r}"
            ) from None
        prices = (_price(vcpu_text, where, "vcpu_hour_usd"), _price(gib_text, where, "gib_hour_usd"))
        points = series.setdefault((region, capacity), {})
        if when in points:
            raise PriceHistoryError(f"{where}: a second row for {region} {capacity} at {when_text}")
        points[when] = prices
    if not series:
        raise PriceHistoryError(f"{source}: has no rows")
    times = {key: sorted(points) for key, points in series.items()}
    values = {key: [series[key][t] for t in times[key]] for key in series}
    return PriceHistory(source=source, times=times, values=values)


def load_price_history(path: Path, *, regions: frozenset[str]) -> PriceHistory:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PriceHistoryError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PriceHistoryError(f"{path}: cannot read: {error}") from None
    return parse_price_history(text, source=str(path), regions=regions)


def _instant(text: str, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PriceHistoryError(f"{where}: datetime_utc {text!r} is not an ISO 8601 time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _price(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PriceHistoryError(f"{where}: {column} {text!r} is not a number") from None
    if not math.isfinite(value) or not 0 < value <= MAX_USD_PER_HOUR:
        raise PriceHistoryError(f"{where}: {column} must be > 0 and <= {MAX_USD_PER_HOUR:g}, got {text}")
    return value
