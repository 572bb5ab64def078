"""The report's files: namespaces.csv, regions.csv, report.json and a self-contained report.html (tables and,
when matplotlib is installed, inline SVG charts), written so that a reader never sees half a report."""

from __future__ import annotations

import csv
import io
import json
import secrets
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from report.figures import Row, Table, Timeline
from report.html import escape, figures, page, svg, table

DECIMALS = 6
COLUMNS = (
    "pod_hours",
    "share_pod_hours_cleaner_than_baseline",
    "energy_kwh",
    "emissions_kg",
    "net_carbon_avoided_kg",
    "cost_usd",
    "net_cost_saved_usd",
)
# Lines per chart; the remaining namespaces are drawn as one "other" line.
MAX_CHART_LINES = 10
NO_CHARTS = "Charts left out: matplotlib is not installed (pip install 'eco-pulse[sim]')."


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rounded(value: float) -> float:
    """``value`` to DECIMALS places, with no negative zero."""
    return round(value, DECIMALS) + 0.0


def number(value: float | None) -> str:
    """A CSV cell: plain decimal notation, at most DECIMALS places, no trailing zeros; empty for None."""
    if value is None:
        return ""
    text = f"{rounded(value):.{DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _values(row: Row) -> tuple[float | None, ...]:
    return (
        row.pod_hours,
        row.share_cleaner,
        row.energy_kwh,
        row.emissions_kg,
        row.net_carbon_avoided_kg,
        row.cost_usd,
        row.net_cost_saved_usd,
    )


def _text_cell(text: str) -> str:
    # A label value starting like a formula would run as one in a spreadsheet (OWASP: CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_text(table: Table, key: str) -> str:
    """The table as CSV: ``key`` (namespace or region), then COLUMNS; the TOTAL row last."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow((key, *COLUMNS))
    for row in (*table.rows, table.total):
        writer.writerow((_text_cell(row.name), *(number(v) for v in _values(row))))
    return buffer.getvalue()


def _row_data(row: Row, key: str) -> dict[str, Any]:
    return {
        key: row.name,
        "podHours": rounded(row.pod_hours),
        "sharePodHoursCleanerThanBaseline": None if row.share_cleaner is None else rounded(row.share_cleaner),
        "energyKwh": rounded(row.energy_kwh),
        "emissionsKg": rounded(row.emissions_kg),
        "netCarbonAvoidedKg": rounded(row.net_carbon_avoided_kg),
        "costUsd": rounded(row.cost_usd),
        "netCostSavedUsd": rounded(row.net_cost_saved_usd),
    }


def report_data(
    *, namespaces: Table, regions: Table, timeline: Timeline, meta: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "meta": dict(meta),
        "namespaces": {
            "rows": [_row_data(r, "namespace") for r in namespaces.rows],
            "total": _row_data(namespaces.total, "namespace"),
        },
        "regions": {
            "rows": [_row_data(r, "region") for r in regions.rows],
            "total": _row_data(regions.total, "region"),
        },
        "timeline": {
            "times": [iso(t) for t in timeline.times],
            "netCarbonAvoidedKg": {
                ns: [rounded(v) for v in vs] for ns, vs in timeline.net_carbon_avoided_kg.items()
            },
            "netCostSavedUsd": {
                ns: [rounded(v) for v in vs] for ns, vs in timeline.net_cost_saved_usd.items()
            },
        },
    }


def _lines(series: Mapping[str, list[float]], order: Sequence[str]) -> list[tuple[str, list[float]]]:
    shown = list(order[:MAX_CHART_LINES])
    rest = [ns for ns in order if ns not in shown]
    lines = [(ns or "(no namespace)", series[ns]) for ns in shown]
    if rest:
        other = [sum(values) for values in zip(*(series[ns] for ns in rest), strict=True)]
        lines.append((f"other ({len(rest)} namespaces)", other))
    return lines


def charts(timeline: Timeline) -> list[tuple[str, str]]:
    """(title, inline SVG) for each chart. Needs matplotlib (the ``sim`` extra): ImportError otherwise."""
    import matplotlib  # noqa: PLC0415 - optional dependency, only for the charts

    matplotlib.use("Agg")
    import matplotlib.dates  # noqa: PLC0415
    import matplotlib.pyplot as plt  # noqa: PLC0415

    dates: Any = matplotlib.dates  # its locators and formatters are untyped

    # the N namespaces with the largest figures either way, in the timeline's order
    def biggest(series: Mapping[str, list[float]]) -> list[str]:
        top = sorted(series, key=lambda ns: -abs(series[ns][-1]))[:MAX_CHART_LINES]
        return [ns for ns in series if ns in top] + [ns for ns in series if ns not in top]

    out: list[tuple[str, str]] = []
    for title, unit, series in (
        (
            "Cumulative net avoided CO2 per namespace",
            "kgCO2eq (cumulative, net)",
            timeline.net_carbon_avoided_kg,
        ),
        ("Cumulative net cost saved per namespace", "USD (cumulative, net)", timeline.net_cost_saved_usd),
    ):
        fig, ax = plt.subplots(figsize=(10, 4))
        x = dates.date2num(list(timeline.times))
        for label, values in _lines(series, biggest(series)):
            ax.plot(x, values, label=label, linewidth=1.3)
        ax.axhline(0.0, color="#888888", linewidth=0.6)
        locator = dates.AutoDateLocator(tz=UTC)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator, tz=UTC))
        ax.set_xlabel("UTC")
        ax.set_ylabel(unit)
        if series:
            ax.legend(loc="upper left", fontsize="small")
        out.append((title, svg(fig)))
        plt.close(fig)
    return out


def _table_html(rows: Sequence[dict[str, Any]], total: dict[str, Any], key: str) -> str:
    header = (
        key,
        "pod-hours",
        "share cleaner than baseline",
        "energy (kWh)",
        "emissions (kg)",
        "net CO2 avoided (kg)",
        "cost (USD)",
        "net cost saved (USD)",
    )

    def cells(r: dict[str, Any]) -> tuple[object, ...]:
        share = r["sharePodHoursCleanerThanBaseline"]
        return (
            r[key],
            f"{r['podHours']:,.1f}",
            "" if share is None else f"{share * 100:.1f} %",
            f"{r['energyKwh']:,.2f}",
            f"{r['emissionsKg']:,.2f}",
            f"{r['netCarbonAvoidedKg']:+,.2f}",
            f"{r['costUsd']:,.2f}",
            f"{r['netCostSavedUsd']:+,.2f}",
        )

    return table(header, [cells(r) for r in rows], total=cells(total))


def render_html(data: Mapping[str, Any], drawn: Sequence[tuple[str, str]], *, charts_note: str | None) -> str:
    meta = data["meta"]
    esc = escape
    sections = figures(drawn)
    if charts_note:
        sections += f'<p class="note">{esc(charts_note)}</p>\n'
    queries = "\n".join(
        f"<li><code>{esc(q)}</code></li>" for group in meta["queries"].values() for q in group.values()
    )
    warnings = "".join(f"<li>{esc(w)}</li>" for w in meta.get("warnings", ()))
    warnings_html = f'<h2>Warnings</h2><ul class="note">{warnings}</ul>\n' if warnings else ""
    prices = ", ".join(meta.get("priceSources") or ["unknown"])
    regex = meta.get("namespaceRegex")
    scope = f", namespaces matching <code>{esc(regex)}</code>" if regex else ""
    body = f"""<p>{esc(meta["start"])} to {esc(meta["end"])}{scope};
from Prometheus at <code>{esc(meta["prometheus"])}</code>, generated {esc(meta["generatedAt"])}.
Net CO2 avoided and net cost saved are measured against the baseline region; negative figures mean
more emissions or cost than the baseline. Prices from: {esc(prices)}
(the price sources in force at the end of the range).</p>
<h2>Per namespace</h2>
{_table_html(data["namespaces"]["rows"], data["namespaces"]["total"], "namespace")}
<h2>Per region</h2>
{_table_html(data["regions"]["rows"], data["regions"]["total"], "region")}
{sections}{warnings_html}<h2>Methodology</h2>
<p>{esc(meta["methodology"])}</p>
<details><summary>PromQL used</summary><ul>
{queries}
</ul></details>
"""
    return page(title="Eco-Pulse savings report", body=body)


def render_files(
    data: Mapping[str, Any], namespaces: Table, regions: Table, html_page: str
) -> dict[str, str]:
    """file name -> content, for :func:`write_files`."""
    return {
        "namespaces.csv": csv_text(namespaces, "namespace"),
        "regions.csv": csv_text(regions, "region"),
        "report.json": json.dumps(data, indent=2, ensure_ascii=False) + "\n",
        "report.html": html_page,
    }


def write_files(out: Path, files: Mapping[str, str]) -> None:
    """Write ``files`` into ``out`` (created with its parents if missing) so that no reader sees half of
    them: everything is written into a sibling staging directory first, which then becomes ``out`` by one
    rename, or, when ``out`` already exists, whose files each replace their namesake by one rename."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
    staging.mkdir()  # not mkdtemp: its 0700 would stay on the report directory after the rename
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8", newline="")
        if not out.exists():
            staging.replace(out)
            return
        for name in files:
            (staging / name).replace(out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
