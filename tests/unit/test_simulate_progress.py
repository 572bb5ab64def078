"""Progress lines off a terminal, and the trace loader's report of the rows it read."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.trace import TraceError, load_trace, parse_trace
from rebalancer.simulate.progress import Progress

HEADER = "datetime_utc,zone,carbon_intensity_direct_g_per_kwh,carbon_intensity_lifecycle_g_per_kwh\n"


def lines(steps: list[int], total: int, *, step_percent: int = 5) -> list[str]:
    stream = io.StringIO()
    progress = Progress("replay", unit="hours", stream=stream, terminal=False, step_percent=step_percent)
    for done in steps:
        progress(done, total)
    progress.close()
    return stream.getvalue().splitlines()


@pytest.mark.parametrize(
    ("steps", "total", "expected_percents"),
    [
        (list(range(1, 101)), 100, list(range(5, 101, 5))),
        (list(range(1, 8761)), 8760, list(range(5, 101, 5))),
        # Few, big steps: one line per report, never one per boundary crossed.
        ([3, 7], 7, [42, 100]),
        # Stopped short (an error mid-way): close still says where it stopped.
        ([1, 2, 3], 100, [3]),
        ([], 100, []),
    ],
)
def test_a_line_per_step_percent(steps: list[int], total: int, expected_percents: list[int]) -> None:
    printed = lines(steps, total)
    assert [int(line.split("%")[0].split()[-1]) for line in printed] == expected_percents
    assert all(line.startswith("simulate: replay ") and line.endswith(" hours)") for line in printed)


def test_the_line_says_done_of_total() -> None:
    assert lines([8760], 8760) == ["simulate: replay 100% (8,760 of 8,760 hours)"]


def test_the_loader_reports_rows_up_to_the_total() -> None:
    rows = "".join(f"2022-01-01T{h:02d}:00:00Z,ZA,1,2\n" for h in range(24))
    seen: list[tuple[int, int]] = []
    parse_trace(HEADER + rows, zones={"ZA"}, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (25, 25)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_start_not_before_end_is_an_empty_period() -> None:
    at = datetime(2022, 1, 1, tzinfo=UTC)
    with pytest.raises(TraceError, match=r"period is empty: start 2022-01-01T00:00:00Z is not before end"):
        parse_trace(HEADER + "2022-01-01T00:00:00Z,ZA,1,2\n", zones={"ZA"}, start=at, end=at)


def test_a_period_outside_the_trace_names_what_it_covers() -> None:
    text = HEADER + "2022-01-01T00:00:00Z,ZA,1,2\n2022-01-01T01:00:00Z,ZA,1,2\n"
    with pytest.raises(TraceError, match=r"no hours in the period \[…, 2021-06-01T00:00:00Z\); "
                       r"the trace covers 2022-01-01T00:00:00Z to 2022-01-01T01:00:00Z"):  # fmt: skip
        parse_trace(text, zones={"ZA"}, end=datetime(2021, 6, 1, tzinfo=UTC))


def test_a_zone_absent_from_the_file_names_the_zones_it_has() -> None:
    with pytest.raises(TraceError, match=r"no rows for zone 'ZB'; the trace has ZA, ZC"):
        parse_trace(HEADER + "2022-01-01T00:00:00Z,ZA,1,2\n2022-01-01T00:00:00Z,ZC,1,2\n", zones={"ZA", "ZB"})


def test_an_unknown_intensity_is_named_before_anything_is_read(tmp_path: Path) -> None:
    expected = "intensity must be one of direct, lifecycle, got 'average'"
    with pytest.raises(TraceError) as parsed:
        parse_trace(HEADER + "2022-01-01T00:00:00Z,ZA,1,2\n", intensity="average")
    # The loader refuses before reading: no "cannot read" for a file that is not there.
    with pytest.raises(TraceError) as loaded:
        load_trace(tmp_path / "absent.csv", intensity="average")
    assert str(parsed.value) == str(loaded.value) == expected
