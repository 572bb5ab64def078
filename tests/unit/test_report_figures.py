"""The savings report's figures: query results in, rows and cumulative series out (no Prometheus here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from report import figures
from report.cli import UsageError, parse_duration, resolve_range
from report.figures import (
    CARBON_ADDED,
    CARBON_AVOIDED,
    COST,
    COST_ADDED,
    COST_SAVED,
    EMISSIONS,
    ENERGY,
    POD_SECONDS,
    Row,
    table,
    timeline,
)
from report.prometheus import Sample, Series
from report.render import csv_text, number

START = datetime(2026, 7, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def s(value: float, namespace: str, region: str = "eu-north-1", **labels: str) -> Sample:
    return Sample(labels={"namespace": namespace, "region": region, **labels}, value=value)


def pods(value: float, namespace: str, region: str, *, cleaner: bool) -> Sample:
    return s(value, namespace, region, cleaner_than_baseline="true" if cleaner else "false")


def row(name: str, **values: float | None) -> Row:
    base: dict[str, float | None] = {
        "pod_hours": 0.0,
        "share_cleaner": None,
        "energy_kwh": 0.0,
        "emissions_kg": 0.0,
        "net_carbon_avoided_kg": 0.0,
        "cost_usd": 0.0,
        "net_cost_saved_usd": 0.0,
    }
    base.update(values)
    return Row(name=name, **base)  # type: ignore[arg-type]


def approx_rows(rows: tuple[Row, ...] | list[Row]) -> list[tuple[object, ...]]:
    return [
        (
            r.name,
            pytest.approx(r.pod_hours),
            None if r.share_cleaner is None else pytest.approx(r.share_cleaner),
            pytest.approx(r.energy_kwh),
            pytest.approx(r.emissions_kg),
            pytest.approx(r.net_carbon_avoided_kg),
            pytest.approx(r.cost_usd),
            pytest.approx(r.net_cost_saved_usd),
        )
        for r in rows
    ]


def plain(rows: tuple[Row, ...] | list[Row]) -> list[tuple[object, ...]]:
    return [
        (
            r.name,
            r.pod_hours,
            r.share_cleaner,
            r.energy_kwh,
            r.emissions_kg,
            r.net_carbon_avoided_kg,
            r.cost_usd,
            r.net_cost_saved_usd,
        )
        for r in rows
    ]


# (case, instant results per metric, expected namespace rows in order, expected TOTAL)
TABLE_CASES = [
    (
        "empty results: no rows, a TOTAL of zeros with no share",
        {},
        [],
        row("TOTAL"),
    ),
    (
        "metrics present but no series",
        {metric: [] for metric in figures.TOTAL_METRICS},
        [],
        row("TOTAL"),
    ),
    (
        "one namespace, every figure, units converted (seconds -> hours, grams -> kg)",
        {
            POD_SECONDS: [
                pods(5400, "shop", "eu-north-1", cleaner=True),
                pods(1800, "shop", "us-east-1", cleaner=False),
            ],
            ENERGY: [s(1.5, "shop")],
            EMISSIONS: [s(45, "shop")],
            COST: [s(0.09, "shop")],
            CARBON_AVOIDED: [s(600, "shop")],
            CARBON_ADDED: [s(100, "shop", "us-east-1")],
            COST_SAVED: [s(0.02, "shop")],
            COST_ADDED: [s(0.005, "shop", "us-east-1")],
        },
        [
            row(
                "shop",
                pod_hours=2.0,
                share_cleaner=0.75,
                energy_kwh=1.5,
                emissions_kg=0.045,
                net_carbon_avoided_kg=0.5,
                cost_usd=0.09,
                net_cost_saved_usd=0.015,
            )
        ],
        row(
            "TOTAL",
            pod_hours=2.0,
            share_cleaner=0.75,
            energy_kwh=1.5,
            emissions_kg=0.045,
            net_carbon_avoided_kg=0.5,
            cost_usd=0.09,
            net_cost_saved_usd=0.015,
        ),
    ),
    (
        "dirtier than the baseline overall: negative net avoided and saved, not clamped",
        {
            CARBON_AVOIDED: [s(100, "ml")],
            CARBON_ADDED: [s(350, "ml", "ap-south-1")],
            COST_SAVED: [s(0.01, "ml")],
            COST_ADDED: [s(0.04, "ml", "ap-south-1")],
        },
        [row("ml", net_carbon_avoided_kg=-0.25, net_cost_saved_usd=-0.03)],
        row("TOTAL", net_carbon_avoided_kg=-0.25, net_cost_saved_usd=-0.03),
    ),
    (
        "a namespace with only `added` series is kept (it would vanish from a PromQL A - B)",
        {
            CARBON_AVOIDED: [s(1000, "shop")],
            CARBON_ADDED: [s(200, "batch", "ap-south-1")],
            COST_ADDED: [s(0.5, "batch", "ap-south-1")],
        },
        [
            row("shop", net_carbon_avoided_kg=1.0),
            row("batch", net_carbon_avoided_kg=-0.2, net_cost_saved_usd=-0.5),
        ],
        row("TOTAL", net_carbon_avoided_kg=0.8, net_cost_saved_usd=-0.5),
    ),
    (
        "sorted by net avoided, largest first, then by name; counter without a namespace label kept as ''",
        {
            CARBON_AVOIDED: [
                s(10, "b"),
                s(10, "a"),
                s(30, "c"),
                Sample(labels={"region": "eu-north-1"}, value=5),
            ],
            CARBON_ADDED: [s(40, "d")],
        },
        [
            row("c", net_carbon_avoided_kg=0.03),
            row("a", net_carbon_avoided_kg=0.01),
            row("b", net_carbon_avoided_kg=0.01),
            row("", net_carbon_avoided_kg=0.005),
            row("d", net_carbon_avoided_kg=-0.04),
        ],
        row("TOTAL", net_carbon_avoided_kg=0.015),
    ),
    (
        'share of cleaner pod-hours: only cleaner_than_baseline="true" counts as cleaner; TOTAL from sums',
        {
            POD_SECONDS: [
                pods(3600, "a", "eu-north-1", cleaner=True),
                pods(3600, "a", "us-east-1", cleaner=False),
                pods(7200, "b", "us-east-1", cleaner=False),
                Sample(labels={"namespace": "b", "region": "x"}, value=3600),  # no label: not cleaner
            ],
        },
        [row("a", pod_hours=2.0, share_cleaner=0.5), row("b", pod_hours=3.0, share_cleaner=0.0)],
        row("TOTAL", pod_hours=5.0, share_cleaner=0.2),
    ),
    (
        "NaN and infinite samples are left out",
        {
            CARBON_AVOIDED: [s(float("nan"), "a"), s(20, "a", "us-east-1")],
            ENERGY: [s(float("inf"), "a")],
        },
        [row("a", net_carbon_avoided_kg=0.02)],
        row("TOTAL", net_carbon_avoided_kg=0.02),
    ),
]


@pytest.mark.parametrize(("case", "results", "rows", "total"), TABLE_CASES, ids=[c[0] for c in TABLE_CASES])
def test_namespace_table(case: str, results: dict[str, list[Sample]], rows: list[Row], total: Row) -> None:
    got = table(results, "namespace")
    assert approx_rows(got.rows) == plain(rows), case
    assert approx_rows([got.total]) == plain([total]), case


def test_region_table_groups_the_same_samples_and_totals_agree() -> None:
    results = {
        POD_SECONDS: [
            pods(3600, "shop", "eu-north-1", cleaner=True),
            pods(1800, "batch", "eu-north-1", cleaner=True),
            pods(1800, "batch", "ap-south-1", cleaner=False),
        ],
        CARBON_AVOIDED: [s(500, "shop", "eu-north-1"), s(250, "batch", "eu-north-1")],
        CARBON_ADDED: [s(400, "batch", "ap-south-1")],
        COST: [s(0.25, "shop", "eu-north-1"), s(0.5, "batch", "ap-south-1")],
    }
    regions = table(results, "region")
    assert plain(regions.rows) == plain(
        [
            row("eu-north-1", pod_hours=1.5, share_cleaner=1.0, net_carbon_avoided_kg=0.75, cost_usd=0.25),
            row("ap-south-1", pod_hours=0.5, share_cleaner=0.0, net_carbon_avoided_kg=-0.4, cost_usd=0.5),
        ]
    )
    assert plain([regions.total]) == plain([table(results, "namespace").total])
    assert regions.total.share_cleaner == pytest.approx(0.75)


def test_unusable_samples_are_reported() -> None:
    warnings = figures.unusable({CARBON_AVOIDED: [s(float("nan"), "a"), s(1, "b")]})
    assert len(warnings) == 1
    assert CARBON_AVOIDED in warnings[0]
    assert "'a'" in warnings[0]


def test_queries_sum_increase_over_the_whole_range_by_namespace_and_region() -> None:
    queries = figures.total_queries(7948800)
    assert set(queries) == set(figures.TOTAL_METRICS)
    assert queries[ENERGY] == "sum by (namespace, region) (increase(ecopulse_energy_kwh_total[7948800s]))"
    assert queries[POD_SECONDS] == (
        "sum by (namespace, region, cleaner_than_baseline) (increase(ecopulse_pod_seconds_total[7948800s]))"
    )
    # avoided and added are separate queries: subtracted client-side
    assert "-" not in "".join(queries.values())
    timeline_queries = figures.timeline_queries(3600, "team-.*")
    assert timeline_queries[CARBON_ADDED] == (
        'sum by (namespace) (increase(ecopulse_carbon_added_grams_total{namespace=~"team-.*"}[3600s]))'
    )


@pytest.mark.parametrize(
    ("regex", "literal"),
    [
        ("team-a|team-b", '"team-a|team-b"'),
        (r"a\d+", r'"a\\d+"'),
        ('x"}) or vector(1) #', r'"x\"}) or vector(1) #"'),
        ("é.*", '"é.*"'),
    ],
)
def test_namespace_regex_is_a_quoted_promql_string(regex: str, literal: str) -> None:
    assert figures.selector("m", regex) == f"m{{namespace=~{literal}}}"


def series(namespace: str, points: list[tuple[float, float]]) -> Series:
    return Series(labels={"namespace": namespace}, points=tuple(points))


def at(hours: float) -> float:
    return (START + timedelta(hours=hours)).timestamp()


def test_timeline_accumulates_net_figures_from_zero_at_start() -> None:
    results = {
        CARBON_AVOIDED: [series("shop", [(at(1), 500), (at(2), 500), (at(3), 1000)])],
        CARBON_ADDED: [series("shop", [(at(2), 200)])],  # no point for hours 1 and 3: nothing added then
        COST_SAVED: [series("shop", [(at(1), 0.5), (at(3), 0.25)])],
        COST_ADDED: [],
    }
    got = timeline(results, start=START, end=START + 3 * HOUR, step=HOUR)
    assert got.times == tuple(START + k * HOUR for k in range(4))
    assert got.net_carbon_avoided_kg == {"shop": pytest.approx([0.0, 0.5, 0.8, 1.8])}
    assert got.net_cost_saved_usd == {"shop": pytest.approx([0.0, 0.5, 0.5, 0.75])}


def test_timeline_keeps_a_namespace_with_only_added_series_negative() -> None:
    results = {
        CARBON_AVOIDED: [series("shop", [(at(1), 1000), (at(2), 1000)])],
        CARBON_ADDED: [series("batch", [(at(1), 300), (at(2), 100)])],
        COST_ADDED: [series("batch", [(at(2), 0.1)])],
    }
    got = timeline(results, start=START, end=START + 2 * HOUR, step=HOUR)
    assert list(got.net_carbon_avoided_kg) == ["shop", "batch"]  # by final net avoided
    assert got.net_carbon_avoided_kg["batch"] == pytest.approx([0.0, -0.3, -0.4])
    assert got.net_cost_saved_usd["batch"] == pytest.approx([0.0, 0.0, -0.1])
    assert got.net_cost_saved_usd["shop"] == [0.0, 0.0, 0.0]


def test_timeline_empty_results_and_points_off_the_grid() -> None:
    empty = timeline({}, start=START, end=START + 2 * HOUR + timedelta(minutes=30), step=HOUR)
    assert empty.times == (START, START + HOUR, START + 2 * HOUR)  # the last step that fits
    assert empty.net_carbon_avoided_kg == {}
    # a point a few ms off its step (float timestamps) lands on the nearest step; outside the range: ignored
    results = {
        CARBON_AVOIDED: [
            series("a", [(at(1) + 0.004, 1000), (at(0), 5000), (at(5), 5000), (at(2), float("nan"))])
        ]
    }
    got = timeline(results, start=START, end=START + 2 * HOUR, step=HOUR)
    assert got.net_carbon_avoided_kg == {"a": [0.0, 1.0, 1.0]}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (-1e-9, "0"),
        (1.0, "1"),
        (100.0, "100"),
        (0.1 + 0.2, "0.3"),
        (-0.25, "-0.25"),
        (1234567.1234567, "1234567.123457"),
        (1e-5, "0.00001"),
        (None, ""),
    ],
)
def test_csv_numbers_are_plain_decimals(value: float | None, text: str) -> None:
    assert number(value) == text


def test_csv_text_has_the_columns_rows_and_total_last() -> None:
    results = {
        CARBON_AVOIDED: [s(100, "ml"), s(300, "=cmd|' /C calc'!A0")],
        CARBON_ADDED: [s(350, "ml", "ap-south-1")],
    }
    assert csv_text(table(results, "namespace"), "namespace").splitlines() == [
        "namespace,pod_hours,share_pod_hours_cleaner_than_baseline,energy_kwh,emissions_kg,"
        "net_carbon_avoided_kg,cost_usd,net_cost_saved_usd",
        "'=cmd|' /C calc'!A0,0,,0,0,0.3,0,0",  # a formula-looking label is defused
        "ml,0,,0,0,-0.25,0,0",
        "TOTAL,0,,0,0,0.05,0,0",
    ]


NOW = datetime(2026, 10, 1, 12, 30, 15, 999999, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2026-07-01T00:00:00Z", "2026-10-01T00:00:00Z", ("2026-07-01T00:00:00", "2026-10-01T00:00:00")),
        ("2026-07-01T02:00:00+02:00", "2026-07-02 00:00:00Z", ("2026-07-01T00:00:00", "2026-07-02T00:00:00")),
        ("-7d", None, ("2026-09-24T12:30:15", "2026-10-01T12:30:15")),
        ("-1h30m", "now", ("2026-10-01T11:00:15", "2026-10-01T12:30:15")),
        ("-1d", "-1d", ("2026-09-29T12:30:15", "2026-09-30T12:30:15")),
        ("-2w", "2026-09-15T00:00:00.75Z", ("2026-09-01T00:00:00", "2026-09-15T00:00:00")),
    ],
)
def test_resolve_range(start: str, end: str | None, expected: tuple[str, str]) -> None:
    since, until = resolve_range(start, end, NOW)
    assert (since.replace(tzinfo=None).isoformat(), until.replace(tzinfo=None).isoformat()) == expected
    assert since.tzinfo == UTC


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-07-01", "2026-10-01T00:00:00Z", "no timezone"),
        ("2026-07-01T00:00:00", "2026-10-01T00:00:00Z", "no timezone"),
        ("yesterday", None, "not a time"),
        ("2026-10-01T00:00:00Z", "2026-07-01T00:00:00Z", "must be after"),
        ("2026-10-01T00:00:00Z", "2026-10-01T00:00:00Z", "must be after"),
        ("-7x", None, "not a duration"),
        ("-", None, "not a duration"),
    ],
)
def test_resolve_range_rejects(start: str, end: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_range(start, end, NOW)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h", 3600),
        ("30m", 1800),
        ("90s", 90),
        ("1h30m", 5400),
        ("7d", 604800),
        ("1w", 604800),
        ("3600", 3600),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds
