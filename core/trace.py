"""An hourly carbon-intensity trace (Electricity Maps export format), read into per-zone arrays.

The CSV has the columns ``datetime_utc, zone, carbon_intensity_direct_g_per_kwh,
carbon_intensity_lifecycle_g_per_kwh`` (gzipped when the name ends in ``.gz``). Every zone kept
must have a value for every hour kept; each error names the file and line. Read by the what-if
replay (``python -m rebalancer simulate``) and by the ``trace`` carbon provider.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

COLUMNS = {
    "direct": "carbon_intensity_direct_g_per_kwh",
    "lifecycle": "carbon_intensity_lifecycle_g_per_kwh",
}
MAX_G_PER_KWH = 5000.0


class TraceError(ValueError):
    """The trace is unusable; the message names the file and, where it can, the line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Trace:
    """Hours (UTC, one apart) and, per zone, the intensity at each hour (gCO2eq/kWh)."""

    times: tuple[datetime, ...]
    zones: dict[str, tuple[float, ...]]

    @property
    def hours(self) -> int:
        return len(self.times)


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def load_trace(
    path: Path,
    *,
    zones: Iterable[str] | None = None,
    intensity: str = "lifecycle",
    start: datetime | None = None,
    end: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Trace:
    """Read ``path`` (optionally .gz) keeping ``zones`` (None: every zone) and the hours in [start, end).

    ``progress(rows_read, rows_total)`` is called as the rows are parsed, about every half percent.
    """
    _column(intensity)  # before reading: a bad choice should not wait for a large file
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise TraceError(f"{path}: cannot read: {error}") from None
    text = raw.decode("utf-8", errors="replace")
    return parse_trace(
        text, zones=zones, intensity=intensity, start=start, end=end, source=str(path), progress=progress
    )


def parse_trace(
    text: str,
    *,
    zones: Iterable[str] | None = None,
    intensity: str = "lifecycle",
    start: datetime | None = None,
    end: datetime | None = None,
    source: str = "<trace>",
    progress: Callable[[int, int], None] | None = None,
) -> Trace:
    if start is not None and end is not None and start >= end:
        raise TraceError(f"the period is empty: start {_iso(start)} is not before end {_iso(end)}")
    wanted = set(zones) if zones is not None else None
    column = _column(intensity)
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise TraceError(f"{source}: empty file")
    names = [name.strip() for name in header]
    for needed in ("datetime_utc", "zone", column):
        if needed not in names:
            raise TraceError(f"{source}:1: missing column {needed!r} (header: {', '.join(names)})")
    i_time, i_zone, i_value = names.index("datetime_utc"), names.index("zone"), names.index(column)
    values: dict[str, dict[datetime, float]] = {zone: {} for zone in wanted or ()}
    # The hours the file has for the zones kept, whatever the period: an empty period names them.
    seen_first: datetime | None = None
    seen_last: datetime | None = None
    file_zones: set[str] = set()
    rows_total = max(text.count("\n"), 1)
    every = max(rows_total // 200, 1)
    for line_number, row in enumerate(reader, start=2):
        if progress is not None and line_number % every == 0:
            progress(min(line_number, rows_total), rows_total)
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            raise TraceError(f"{source}:{line_number}: expected {len(names)} fields, got {len(row)}")
        zone = row[i_zone].strip()
        file_zones.add(zone)
        if wanted is None:
            if not zone:
                raise TraceError(f"{source}:{line_number}: zone: empty")
        elif zone not in wanted:
            continue
        try:
            at = parse_time(row[i_time])
        except ValueError:
            raise TraceError(
                f"{source}:{line_number}: datetime_utc: not a time: {row[i_time][:40]!r}"
            ) from None
        if at.minute or at.second or at.microsecond:
            raise TraceError(f"{source}:{line_number}: datetime_utc: not on the hour: {row[i_time]!r}")
        seen_first = at if seen_first is None else min(seen_first, at)
        seen_last = at if seen_last is None else max(seen_last, at)
        if (start is not None and at < start) or (end is not None and at >= end):
            continue
        try:
            value = float(row[i_value])
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not 0.0 <= value <= MAX_G_PER_KWH:
            raise TraceError(
                f"{source}:{line_number}: {column}: must be a number in 0..{MAX_G_PER_KWH:g}, "
                f"got {row[i_value][:40]!r}"
            )
        by_hour = values.setdefault(zone, {})
        if at in by_hour:
            raise TraceError(f"{source}:{line_number}: duplicate hour {at.isoformat()} for zone {zone}")
        by_hour[at] = value
    if progress is not None:
        progress(rows_total, rows_total)
    if seen_first is not None and seen_last is not None and not any(values.values()):
        raise TraceError(
            f"{source}: no hours in the period {_period(start, end)}; the trace covers "
            f"{_iso(seen_first)} to {_iso(seen_last)} (inclusive)"
        )
    if not values:
        raise TraceError(f"{source}: no rows in the chosen period")
    for zone in sorted(values):
        if zone not in file_zones:
            has = ", ".join(sorted(file_zones)) or "no zone"
            raise TraceError(f"{source}: no rows for zone {zone!r}; the trace has {has}")
        if not values[zone]:
            raise TraceError(f"{source}: no rows for zone {zone!r} in the period {_period(start, end)}")
    first = min(min(v) for v in values.values())
    last = max(max(v) for v in values.values())
    count = int((last - first).total_seconds() // 3600) + 1
    times = tuple(first + timedelta(hours=h) for h in range(count))
    series: dict[str, tuple[float, ...]] = {}
    for zone in sorted(values):
        by_hour = values[zone]
        missing = [t for t in times if t not in by_hour]
        if missing:
            raise TraceError(
                f"{source}: zone {zone!r} has no value for {len(missing)} hour(s), "
                f"first {missing[0].isoformat()}"
            )
        series[zone] = tuple(by_hour[t] for t in times)
    return Trace(times=times, zones=series)


def _column(intensity: str) -> str:
    """The CSV column of an ``intensity`` choice (direct or lifecycle)."""
    column = COLUMNS.get(intensity)
    if column is None:
        raise TraceError(f"intensity must be one of {', '.join(COLUMNS)}, got {intensity!r}")
    return column


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _period(start: datetime | None, end: datetime | None) -> str:
    """``[start, end)`` as the user gave it, an open side written as ``…``."""
    return f"[{_iso(start) if start else '…'}, {_iso(end) if end else '…'})"
