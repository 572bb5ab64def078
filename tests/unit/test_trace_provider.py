"""The trace provider: a grid trace replayed against an injected clock, its errors, and its forecast."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import CarbonProviderName, CarbonSettings, TraceSettings, parse_config_text
from core.model import PlacementHints, PodDemand, Region
from core.placement import rank_regions
from core.signals.base import ProviderError, ProviderErrorKind
from core.signals.providers import PROCESS_STARTED_AT, TraceProvider, build_provider
from core.signals.refresher import SignalCache, SignalRefresher
from core.trace import parse_trace

HEADER = "datetime_utc,zone,carbon_intensity_direct_g_per_kwh,carbon_intensity_lifecycle_g_per_kwh\n"
FIRST = datetime(2022, 6, 1, tzinfo=UTC)
WALL = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # the wall instant the replay starts at
# lifecycle per hour; direct is half of it
SERIES = {"ZA": [100.0, 200.0, 300.0, 400.0], "ZB": [50.0, 60.0, 70.0, 80.0]}
ZA = Region(name="ra", zone="ZA")
ZB = Region(name="rb", zone="ZB")


def csv_text(series: dict[str, list[float]] = SERIES) -> str:
    rows = [
        f"{(FIRST + timedelta(hours=h)):%Y-%m-%dT%H:%M:%SZ},{zone},{value / 2},{value}"
        for zone, values in series.items()
        for h, value in enumerate(values)
    ]
    return HEADER + "\n".join(rows) + "\n"


@dataclass
class FakeClock:
    now: datetime = WALL

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "grid.csv"
    path.write_text(csv_text())
    return path


def carbon(path: Path, **trace: Any) -> CarbonSettings:
    settings = TraceSettings(path=str(path), wall_clock_start=WALL)
    return CarbonSettings(provider=CarbonProviderName.TRACE, trace=replace(settings, **trace))


def provider(path: Path, clock: FakeClock, **trace: Any) -> TraceProvider:
    built = build_provider(carbon(path, **trace), environ={}, clock=clock)
    assert isinstance(built, TraceProvider)
    assert built.name == "trace"
    return built


# (advance the wall clock by, speedup, start hour) -> (trace hour, wall instant it was entered)
POSITIONS = [
    (timedelta(0), 1.0, None, 0, WALL),
    (timedelta(minutes=59), 1.0, None, 0, WALL),
    (timedelta(hours=1), 1.0, None, 1, WALL + timedelta(hours=1)),
    (timedelta(hours=3, minutes=30), 1.0, None, 3, WALL + timedelta(hours=3)),
    (timedelta(hours=4), 1.0, None, 0, WALL + timedelta(hours=4)),  # after the last hour: the first
    (timedelta(0), 1.0, 2, 2, WALL),  # start maps to the wall clock start
    (timedelta(hours=2, minutes=10), 1.0, 2, 0, WALL + timedelta(hours=2)),
    (timedelta(seconds=1), 3600.0, None, 1, WALL + timedelta(seconds=1)),  # one trace hour a second
    (timedelta(seconds=2.5), 3600.0, None, 2, WALL + timedelta(seconds=2)),
    (timedelta(minutes=30), 2.0, None, 1, WALL + timedelta(minutes=30)),
    (-timedelta(hours=1), 1.0, None, 3, WALL - timedelta(hours=1)),  # before the start: wraps back
]


@pytest.mark.parametrize(("advance", "speedup", "start_hour", "hour", "entered"), POSITIONS)
def test_the_wall_clock_maps_to_the_trace_hour(
    trace_file: Path,
    advance: timedelta,
    speedup: float,
    start_hour: int | None,
    hour: int,
    entered: datetime,
) -> None:
    clock = FakeClock()
    start = None if start_hour is None else FIRST + timedelta(hours=start_hour)
    replay = provider(trace_file, clock, speedup=speedup, start=start)
    clock.now = WALL + advance
    observation = replay.fetch(ZA)
    assert observation.carbon_g_per_kwh == SERIES["ZA"][hour]
    assert observation.observed_at == entered
    assert observation.forecast == ()
    assert replay.fetch(ZB).carbon_g_per_kwh == SERIES["ZB"][hour]  # each region reads its zone


def test_direct_intensity_reads_the_direct_column(trace_file: Path) -> None:
    assert provider(trace_file, FakeClock(), intensity="direct").fetch(ZA).carbon_g_per_kwh == 50.0


def test_a_gzipped_trace_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "grid.csv.gz"
    path.write_bytes(gzip.compress(csv_text().encode()))
    clock = FakeClock()
    clock.advance(hours=2)
    assert provider(path, clock).fetch(ZB).carbon_g_per_kwh == 70.0


@pytest.mark.parametrize("speedup", [1.0, 3600.0])
def test_the_forecast_is_the_next_trace_hours_as_if_they_ran_in_real_time(
    trace_file: Path, speedup: float
) -> None:
    clock = FakeClock()
    replay = provider(trace_file, clock, speedup=speedup, forecast_hours=3)
    clock.advance(seconds=(2.25 * 3600) / speedup)  # a quarter into trace hour 2
    observation = replay.fetch(ZA)
    assert observation.carbon_g_per_kwh == 300.0
    assert observation.observed_at == WALL + timedelta(seconds=2 * 3600 / speedup)
    # the rest of hour 2 (45 min of trace time) and then one point an hour, whatever the speedup
    assert [(p.at - clock.now, p.carbon_g_per_kwh) for p in observation.forecast] == [
        (timedelta(minutes=45), 400.0),
        (timedelta(minutes=105), 100.0),  # wraps round to the first hour
        (timedelta(minutes=165), 200.0),
    ]


def test_without_a_wall_clock_start_the_replay_starts_with_the_process(trace_file: Path) -> None:
    clock = FakeClock(now=PROCESS_STARTED_AT + timedelta(hours=1, minutes=5))
    built = build_provider(
        CarbonSettings(provider=CarbonProviderName.TRACE, trace=TraceSettings(path=str(trace_file))),
        clock=clock,
    )
    assert built.fetch(ZA).carbon_g_per_kwh == 200.0


def test_an_unknown_zone_is_not_found(trace_file: Path) -> None:
    with pytest.raises(ProviderError) as caught:
        provider(trace_file, FakeClock()).fetch(Region(name="rx", zone="XX"))
    assert caught.value.kind is ProviderErrorKind.NOT_FOUND
    assert "XX" in caught.value.message and "rx" in caught.value.message


@pytest.mark.parametrize(
    ("content", "name", "detail"),
    [
        (None, "missing.csv", "cannot read"),
        (b"not gzip at all", "grid.csv.gz", "cannot read"),
        (b"", "grid.csv", "empty file"),
        (b"when,where\n", "grid.csv", "missing column"),
        (HEADER.encode() + b"2022-06-01T00:00:00Z,ZA,1,oops\n", "grid.csv", ":2: carbon_intensity"),
        (
            HEADER.encode() + b"2022-06-01T00:00:00Z,ZA,1,2\n2022-06-01T02:00:00Z,ZA,1,2\n",
            "grid.csv",
            "no value",
        ),
    ],
    ids=["missing", "bad gzip", "empty", "no columns", "bad value", "gap"],
)
def test_an_unusable_file_is_a_config_error_naming_the_key(
    tmp_path: Path, content: bytes | None, name: str, detail: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ProviderError) as caught:
        build_provider(carbon(path), environ={})
    assert caught.value.kind is ProviderErrorKind.CONFIG
    assert caught.value.message.startswith(f"trace: carbon.trace.path: {path}")
    assert detail in caught.value.message


def test_a_start_outside_the_trace_is_a_config_error_naming_the_key(trace_file: Path) -> None:
    with pytest.raises(ProviderError) as caught:
        build_provider(carbon(trace_file, start=FIRST + timedelta(hours=4)), environ={})
    assert caught.value.kind is ProviderErrorKind.CONFIG
    assert caught.value.message.startswith("trace: carbon.trace.start: 2022-06-01T04:00:00Z is outside")


@settings(max_examples=200, deadline=None)
@given(
    seconds=st.floats(-1e7, 1e7, allow_nan=False),
    speedup=st.floats(0.01, 1e5),
    start_hour=st.integers(0, 3),
)
def test_the_position_is_the_hour_the_elapsed_trace_time_falls_in(
    seconds: float, speedup: float, start_hour: int
) -> None:
    trace = parse_trace(csv_text())
    replay = TraceProvider(
        trace, wall_clock_start=WALL, start=FIRST + timedelta(hours=start_hour), speedup=speedup
    )
    now = WALL + timedelta(seconds=seconds)
    index, into_hour = replay.position(now)
    trace_seconds = start_hour * 3600 + seconds * speedup
    assert 0 <= index < 4
    assert 0 <= into_hour <= 3600
    expected = int(trace_seconds // 3600) % 4
    # away from an hour boundary the index is exact
    if min(trace_seconds % 3600, 3600 - trace_seconds % 3600) > 1e-3 * max(1.0, speedup):
        assert index == expected


CONFIG = """\
regions: [{name: ra, zone: ZA}, {name: rb, zone: ZB}]
carbon:
  provider: trace
  trace: {path: PATH, wallClockStart: "2026-11-20T12:00:00Z", forecastHours: FORECAST}
economics: {horizonHours: 3}
prices:
  ra: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}
  rb: {vcpuHour: 0.03, gibHour: 0.004, spotVcpuHour: 0.01, spotGibHour: 0.001}
"""


@pytest.mark.parametrize(("forecast_hours", "best"), [(0, "rb"), (3, "ra")])
def test_through_the_refresher_a_forecast_changes_the_placement(
    tmp_path: Path, forecast_hours: int, best: str
) -> None:
    # rb is cleaner now (10 against 100) but much dirtier for the next two hours.
    path = tmp_path / "grid.csv"
    path.write_text(csv_text({"ZA": [100.0, 100.0, 100.0, 100.0], "ZB": [10.0, 900.0, 900.0, 10.0]}))
    config = parse_config_text(CONFIG.replace("PATH", str(path)).replace("FORECAST", str(forecast_hours)))
    clock = FakeClock()
    refresher = SignalRefresher(config=config, cache=SignalCache(), clock=clock)
    assert refresher.refresh_once().fetched == ["ra", "rb"]
    snapshot = refresher.snapshot()
    assert snapshot.provider == "trace"
    assert len(snapshot.carbon["rb"].forecast) == forecast_hours
    ranking = rank_regions(
        demand=PodDemand(cpu_cores=2, memory_gib=4), hints=PlacementHints(), signals=snapshot, config=config
    )
    assert ranking.best is not None and ranking.best.region == best
