"""``python -m report``: avoided CO2 and savings per namespace and region over a time range, from
Prometheus, as namespaces.csv, regions.csv, report.json and report.html."""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from core.cli import program, reject_unknown_options
from report import figures
from report.prometheus import PrometheusClient, PrometheusError, Sample, Series, redact_url
from report.render import (
    NO_CHARTS,
    charts,
    iso,
    render_files,
    render_html,
    report_data,
    write_files,
)

# Prometheus' duration syntax (1h, 30m, 7d, 1h30m, 2w, 1y); a plain number is seconds.
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNIT_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)
# More chart points than this is a step far too small for the range (and many requests).
MAX_TIMELINE_POINTS = 50_000
PRINTED_ROWS = 20


class UsageError(ValueError):
    """A bad argument; the message is the one line printed before exiting with status 2."""


def parse_duration(text: str) -> timedelta:
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    match = _DURATION.match(text)
    if not text or match is None:
        raise UsageError(f"not a duration: {text!r} (examples: 90s, 30m, 1h, 7d, 1h30m)")
    seconds = sum(int(n) * unit for n, unit in zip(match.groups(), _UNIT_SECONDS, strict=True) if n)
    return timedelta(seconds=seconds)


def parse_time(text: str, *, option: str) -> datetime:
    """RFC 3339 / ISO 8601 with a timezone (``2026-07-01T00:00:00Z``, ``...+02:00``), in UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{option}: not a time: {text!r} (use RFC 3339 like 2026-07-01T00:00:00Z, or -7d for relative)"
        ) from None
    if value.tzinfo is None:
        raise UsageError(f"{option}: {text!r} has no timezone (add Z for UTC, e.g. 2026-07-01T00:00:00Z)")
    return value.astimezone(UTC)


def resolve_range(start: str, end: str | None, now: datetime) -> tuple[datetime, datetime]:
    """(start, end) in UTC, to the whole second. ``end``: a time, ``now`` or None (now), or ``-DURATION``
    before now; ``start``: a time or ``-DURATION`` before end."""
    now = now.astimezone(UTC).replace(microsecond=0)
    if end is None or end.strip() == "now":
        until = now
    elif end.strip().startswith("-"):
        until = now - parse_duration(end.strip()[1:])
    else:
        until = parse_time(end, option="--end").replace(microsecond=0)
    if start.strip().startswith("-"):
        since = until - parse_duration(start.strip()[1:])
    else:
        since = parse_time(start, option="--start").replace(microsecond=0)
    if until <= since:
        raise UsageError(f"--end ({iso(until)}) must be after --start ({iso(since)})")
    return since, until


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=program("python -m report"),
        description="Write per-namespace and per-region avoided CO2 and savings over a time range, read "
        "from the Eco-Pulse counters in Prometheus, as CSV, JSON and an HTML page with charts.",
    )
    p.add_argument(
        "--prometheus", required=True, metavar="URL", help="Prometheus base URL, e.g. http://prometheus:9090"
    )
    p.add_argument("--start", required=True, help="RFC 3339 time with timezone, or -7d (before --end)")
    p.add_argument("--end", help="RFC 3339 time with timezone, or -1d (before now); default now")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory for the report files")
    p.add_argument("--step", default="1h", help="chart resolution (Prometheus duration); default 1h")
    p.add_argument("--namespace", metavar="REGEX", help="only namespaces matching this (RE2, fully anchored)")
    p.add_argument(
        "--timeout-seconds", type=float, default=30.0, metavar="SECONDS", help="per query; default 30"
    )
    p.add_argument("--bearer-token-file", type=Path, metavar="F", help="file holding a bearer token to send")
    return p


def _attach_negative_values(argv: Sequence[str]) -> list[str]:
    """``--start -7d`` as ``--start=-7d``: argparse would take ``-7d`` for an option."""
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        if args[i] in ("--start", "--end") and i + 1 < len(args) and re.match(r"-\d", args[i + 1]):
            out.append(f"{args[i]}={args[i + 1]}")
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out


@dataclass(frozen=True, slots=True)
class Request:
    """Everything the report needs, checked."""

    prometheus: str
    start: datetime
    end: datetime
    step: timedelta
    out: Path
    namespace_regex: str | None
    timeout_seconds: float
    bearer_token: str | None


def check(args: argparse.Namespace, now: datetime) -> Request:
    url = args.prometheus.strip()
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise UsageError(f"--prometheus: not a URL: {redact_url(url)!r}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"--prometheus: need an http:// or https:// URL, got {redact_url(url)!r}")
    start, end = resolve_range(args.start, args.end, now)
    step = parse_duration(args.step)
    seconds = step.total_seconds()
    if seconds < 1 or seconds != int(seconds):
        raise UsageError(f"--step: must be a whole number of seconds, at least 1s, got {args.step!r}")
    if step > end - start:
        raise UsageError(f"--step ({args.step}) is longer than the range ({iso(start)} to {iso(end)})")
    points = (end - start) // step
    if points > MAX_TIMELINE_POINTS:
        least = math.ceil((end - start).total_seconds() / MAX_TIMELINE_POINTS)
        raise UsageError(f"--step {args.step} gives {points} points over the range; use at least {least}s")
    if not args.timeout_seconds > 0:
        raise UsageError(f"--timeout-seconds: must be > 0, got {args.timeout_seconds}")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out: {args.out} exists and is not a directory")
    token = None
    if args.bearer_token_file is not None:
        try:
            token = args.bearer_token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(
                f"--bearer-token-file: cannot read {args.bearer_token_file}: {error.__class__.__name__}"
            ) from None
        if not token:
            raise UsageError(f"--bearer-token-file: {args.bearer_token_file} is empty")
    return Request(
        prometheus=url,
        start=start,
        end=end,
        step=step,
        out=args.out,
        namespace_regex=args.namespace,
        timeout_seconds=args.timeout_seconds,
        bearer_token=token,
    )


@dataclass(frozen=True, slots=True)
class Results:
    totals: dict[str, list[Sample]]
    timeline: dict[str, list[Series]]
    total_queries: dict[str, str]
    timeline_queries: dict[str, str]
    warnings: list[str]
    price_sources: list[str]


def query(request: Request) -> Results:
    """Every query the report needs (the only network I/O). Raises PrometheusError."""
    range_seconds = int((request.end - request.start).total_seconds())
    step_seconds = int(request.step.total_seconds())
    total_queries = figures.total_queries(range_seconds, request.namespace_regex)
    timeline_queries = figures.timeline_queries(step_seconds, request.namespace_regex)
    with PrometheusClient(
        request.prometheus, timeout_seconds=request.timeout_seconds, bearer_token=request.bearer_token
    ) as client:
        totals = {metric: client.instant(q, request.end) for metric, q in total_queries.items()}
        # Each point is the increase over the step ending there: the first ends one step after start.
        timeline = {
            metric: client.range(q, request.start + request.step, request.end, request.step)
            for metric, q in timeline_queries.items()
        }
        prices = figures.price_sources(client.instant(figures.PRICE_SOURCES_QUERY, request.end))
        warnings = list(client.warnings)
    return Results(totals, timeline, total_queries, timeline_queries, warnings, prices)


def _print_summary(table: figures.Table, out: Path) -> None:
    print(f"{'namespace':<32} {'pod-hours':>12} {'net CO2 avoided kg':>19} {'net saved USD':>14}")
    rows = table.rows[:PRINTED_ROWS]
    for row in (*rows, table.total):
        avoided, saved = row.net_carbon_avoided_kg, row.net_cost_saved_usd
        print(f"{row.name:<32} {row.pod_hours:>12,.1f} {avoided:>+19,.3f} {saved:>+14,.2f}")
    if len(table.rows) > len(rows):
        print(f"... and {len(table.rows) - len(rows)} more namespaces in {out}/namespaces.csv")
    print(f"report in {out}/report.html")


def main(argv: Sequence[str] | None = None, *, now: datetime | None = None) -> int:
    arguments = _attach_negative_values(sys.argv[1:] if argv is None else argv)
    command_line = parser()
    reject_unknown_options(command_line, arguments)
    args = command_line.parse_args(arguments)
    try:
        request = check(args, now or datetime.now(UTC))
    except UsageError as error:
        print(f"report: {error}", file=sys.stderr)
        return 2
    try:
        results = query(request)
    except PrometheusError as error:
        print(f"report: {error}", file=sys.stderr)
        return 2
    warnings = results.warnings + figures.unusable(results.totals)
    if not any(results.totals.values()):
        warnings.append(
            "no Eco-Pulse series in this range (is Prometheus scraping the rebalancer's /metrics? "
            + (
                "does --namespace match any namespace?)"
                if request.namespace_regex
                else "is the range right?)"
            )
        )
    namespaces = figures.table(results.totals, "namespace")
    regions = figures.table(results.totals, "region")
    timeline = figures.timeline(results.timeline, start=request.start, end=request.end, step=request.step)
    meta: dict[str, Any] = {
        "prometheus": redact_url(request.prometheus),
        "start": iso(request.start),
        "end": iso(request.end),
        "rangeSeconds": int((request.end - request.start).total_seconds()),
        "stepSeconds": int(request.step.total_seconds()),
        "namespaceRegex": request.namespace_regex,
        "generatedAt": iso(datetime.now(UTC).replace(microsecond=0)),
        "methodology": figures.METHODOLOGY,
        # totals: instant queries at `end`; timeline: range queries from start + step to end, every step
        "queries": {
            "totals": results.total_queries,
            "timeline": results.timeline_queries,
            "prices": {"sources": figures.PRICE_SOURCES_QUERY},
        },
        # Which prices priced the cost figures (at the end of the range), as every decision names them.
        "priceSources": results.price_sources,
        "warnings": warnings,
    }
    data = report_data(namespaces=namespaces, regions=regions, timeline=timeline, meta=meta)
    note = None
    try:
        drawn = charts(timeline)
    except ImportError:
        drawn, note = [], NO_CHARTS
        print(f"report: {NO_CHARTS}", file=sys.stderr)
    page = render_html(data, drawn, charts_note=note)
    try:
        write_files(request.out, render_files(data, namespaces, regions, page))
    except OSError as error:
        print(f"report: cannot write {request.out}: {error}", file=sys.stderr)
        return 1
    for warning in warnings:
        print(f"report: warning: {warning}", file=sys.stderr)
    _print_summary(namespaces, request.out)
    return 0
