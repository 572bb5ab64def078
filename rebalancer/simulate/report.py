"""report.json and report.html (inline SVG plots made with matplotlib) for a simulation result."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rebalancer.simulate.engine import (
    CARBON_BLIND,
    CARBON_ORACLE,
    ECOPULSE,
    HOURLY_ORACLE,
    REPORTED,
    STATIC_BEST,
    SimulationResult,
)
from rebalancer.simulate.jobs import JobsResult
from rebalancer.simulate.jobs_report import jobs_data, jobs_html
from report.html import escape, figures, page, percent, scatter, svg, table

# Plots of more hours than this are drawn from daily means (a year of hourly points is unreadable).
MAX_PLOT_POINTS = 2000

# What each policy is, where its figures are shown (the page, the terminal, docs/methodology.md).
DEFINITIONS = {
    CARBON_BLIND: "every pod stays in its workload's start region: what every saving is measured against",
    STATIC_BEST: "hindsight: one placement for the whole window, each workload in the regions that cost it "
    "least at the window's mean intensities, within capacity, latency and allowed regions",
    HOURLY_ORACLE: "hindsight: every hour the cheapest placement at that hour's intensities, within the same "
    "constraints; moves are free and unlimited",
    CARBON_ORACLE: "as the hourly oracle, ranking regions by intensity alone (blind to prices and egress): "
    "the most carbon any placement within the constraints could avoid",
    ECOPULSE: "the rebalancer's own planner, evictor and the webhook's placement, hour by hour, seeing only "
    "the signals a live cluster would, within its disruption limits",
}

# One sign convention in every table: a positive number is a saving (less carbon, less cost).
HEADER = (
    "policy",
    "emissions (kg)",
    "CO2 saved",
    "CO2 saved, steady state",
    "compute cost saved",
    "migrations",
    "migrations per pod-day",
)
SIGN_NOTE = "saved: against carbon-blind; a positive number is a saving, a negative one costs more"


def summary_rows(data: dict[str, Any]) -> list[tuple[str, ...]]:
    """The table the terminal and the page both show, in ``HEADER``'s order."""
    return [
        (
            name,
            f"{p['emissionsGrams'] / 1000:,.1f}",
            percent(p["reductionVsCarbonBlindPercent"]),
            percent(p["steadyStateReductionVsCarbonBlindPercent"]),
            percent(p["computeCostReductionVsCarbonBlindPercent"]),
            f"{p['migrations']:,}",
            f"{p['migrationsPerPodDay']:.4f}",
        )
        for name, p in data["policies"].items()
    ]


def text_table(data: dict[str, Any]) -> str:
    rows = [HEADER, *summary_rows(data)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    return "\n".join([*lines, SIGN_NOTE])


def warm_up_text(meta: dict[str, Any]) -> str:
    """One sentence on how the window began: after a warm-up, or as a fresh install."""
    warm = meta["warmUp"]
    if warm["hours"]:
        text = (
            f"warm-up: {warm['hours']:,} hours from {warm['start']} (ecopulse ran the cluster through "
            f"them, {warm['moves']:,} moves not counted): the window starts as a running deployment"
        )
    else:
        text = "warm-up: none (a fresh install: empty history, every pod in its start region)"
    steady = meta["steadyStateFrom"]
    if steady["hour"] and steady["time"]:
        text += f"; steady state from {steady['time']} (hour {steady['hour']}: the disruption limits' pace)"
    return text


def share_of_oracle_text(data: dict[str, Any]) -> str:
    eco = data["policies"][ECOPULSE]
    oracle = data["policies"][HOURLY_ORACLE]
    parts = []
    for key, label in (
        ("reductionVsCarbonBlindPercent", "window"),
        ("steadyStateReductionVsCarbonBlindPercent", "steady state"),
    ):
        if oracle[key] > 0:
            parts.append(f"{100.0 * eco[key] / oracle[key]:.1f} % ({label})")
    return "ecopulse saved " + (" and ".join(parts) or "n/a") + " of the hourly oracle's CO2 cut"


def report_data(
    result: SimulationResult, *, meta: dict[str, Any] | None = None, jobs: JobsResult | None = None
) -> dict[str, Any]:
    policies: dict[str, Any] = {}
    for name in REPORTED:
        p = result.policies[name]
        entry: dict[str, Any] = {
            "emissionsGrams": round(p.emissions_grams, 3),
            "energyKwh": round(p.energy_kwh, 6),
            "computeCostUsd": round(p.compute_usd, 4),
            "egressCostUsd": round(p.egress_usd, 4),
            "migrations": p.migrations,
            "migrationsPerPodDay": round(p.migrations_per_pod_day, 6),
            "reductionVsCarbonBlindPercent": round(result.reduction_percent(name), 3),
            "steadyStateReductionVsCarbonBlindPercent": round(result.steady_reduction_percent(name), 3),
            "computeCostReductionVsCarbonBlindPercent": round(result.cost_reduction_percent(name), 3),
            "spotComputeCostUsd": round(p.spot_compute_usd, 4),
            "spotComputeCostReductionVsCarbonBlindPercent": round(
                result.cost_reduction_percent(name, spot_only=True), 3
            ),
        }
        if name == ECOPULSE:
            entry["moves"] = [
                {
                    "time": m.time.isoformat().replace("+00:00", "Z"),
                    "workload": m.workload,
                    "from": m.source,
                    "to": m.target,
                    "predictedNetBenefitUsd": round(m.predicted_net_benefit_usd, 6),
                    "realisedNetBenefitUsd": round(m.realised_net_benefit_usd, 6),
                }
                for m in p.moves
            ]
            entry["predictedNetBenefitUsd"] = round(sum(m.predicted_net_benefit_usd for m in p.moves), 4)
            entry["realisedNetBenefitUsd"] = round(sum(m.realised_net_benefit_usd for m in p.moves), 4)
            # The share of executed moves whose realised net benefit was positive: the ones that paid.
            paid = sum(1 for m in p.moves if m.realised_net_benefit_usd > 0)
            entry["movesThatPaid"] = paid
            entry["shareOfMovesThatPaid"] = round(paid / len(p.moves), 6) if p.moves else None
        policies[name] = entry
    out = {
        "meta": {
            **(meta or {}),
            "hours": len(result.times),
            "start": result.times[0].isoformat() if result.times else None,
            "end": result.times[-1].isoformat() if result.times else None,
            "regions": dict(zip(result.regions, result.zones, strict=True)),
            # What ecopulse saw ahead: the configured provider's forecast horizon, taken from the trace.
            "forecast": (
                f"{result.forecast.get('model', 'perfect')}, {result.forecast_hours} hours"
                if result.forecast_hours
                else "none"
            ),
            "forecastModel": dict(result.forecast),
            "warmUp": {
                "hours": result.warm_up_hours,
                "start": _iso(result.warm_up_start),
                "moves": result.warm_up_moves,
            },
            "steadyStateFrom": {
                "hour": result.settle_hours,
                # None when the transition outlasts the window (the steady figure is then the window's)
                "time": _iso(result.times[result.settle_hours])
                if result.settle_hours < len(result.times)
                else None,
            },
            "signConvention": "positive = a saving against carbon-blind",
        },
        "policies": policies,
    }
    if jobs is not None:
        out["jobs"] = jobs_data(jobs)
    return out


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def _bucket(values: list[float], size: int) -> list[float]:
    return [sum(values[i : i + size]) / len(values[i : i + size]) for i in range(0, len(values), size)]


def plots(result: SimulationResult) -> list[tuple[str, str]]:
    """(title, inline SVG) for each plot. Needs matplotlib (the ``sim`` extra)."""
    import matplotlib  # noqa: PLC0415 - optional dependency, only for the report

    matplotlib.use("Agg")
    import matplotlib.dates  # noqa: PLC0415
    import matplotlib.pyplot as plt  # noqa: PLC0415

    mdates: Any = matplotlib.dates  # its locators and formatters are untyped

    hours = len(result.times)
    size = 24 if hours > MAX_PLOT_POINTS else 1
    unit = "day" if size == 24 else "hour"
    index = list(range(0, hours, size))
    x = mdates.date2num([result.times[i] for i in index])  # dates on every time axis
    x_label = "date (UTC)" + (", daily means" if size > 1 else "")
    out: list[tuple[str, str]] = []

    def dated(ax: Any) -> None:
        locator = mdates.AutoDateLocator(tz=UTC)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))

    fig, ax = plt.subplots(figsize=(10, 3.5))
    for region, zone, series in zip(result.regions, result.zones, result.intensity, strict=True):
        ax.plot(x, _bucket(list(series), size), label=f"{region} ({zone})", linewidth=0.9)
    dated(ax)
    ax.set_xlabel(x_label)
    ax.set_ylabel("gCO2eq/kWh")
    ax.legend(loc="upper right", fontsize="small")
    out.append((f"Carbon intensity per region (per {unit})", svg(fig)))
    plt.close(fig)

    fig, axes = plt.subplots(len(REPORTED), 1, figsize=(10, 2.2 * len(REPORTED)), sharex=True)
    for ax, name in zip(axes, REPORTED, strict=True):
        rows = result.policies[name].pods_per_region
        stacks = [_bucket([float(row[r]) for row in rows], size) for r in range(len(result.regions))]
        ax.stackplot(x, stacks, labels=list(result.regions))
        ax.set_title(name, fontsize="medium")
        ax.set_ylabel("pods")
    axes[0].legend(loc="upper right", fontsize="small")
    dated(axes[-1])
    axes[-1].set_xlabel(x_label)
    out.append(("Pods per region over time, per policy", svg(fig)))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 3.5))
    for name in REPORTED:
        cumulative = result.policies[name].cumulative_grams
        ax.plot(x, [cumulative[i] / 1000.0 for i in index], label=name, linewidth=1.2)
    dated(ax)
    ax.set_xlabel(x_label)
    ax.set_ylabel("kgCO2eq (cumulative)")
    ax.legend(loc="upper left", fontsize="small")
    out.append(("Cumulative emissions per policy", svg(fig)))
    plt.close(fig)
    return out


def render_html(data: dict[str, Any], drawn: list[tuple[str, str]]) -> str:
    rows = summary_rows(data)
    eco = data["policies"][ECOPULSE]
    meta = data["meta"]
    share = eco["shareOfMovesThatPaid"]
    paid = "no moves" if share is None else f"{share * 100:.1f} % of them paid ({eco['movesThatPaid']})"
    moves = [(m["predictedNetBenefitUsd"], m["realisedNetBenefitUsd"]) for m in eco["moves"]]
    regions = ", ".join(f"{r} ({z})" for r, z in meta["regions"].items())
    body = f"""<p>{escape(str(meta.get("start")))} to {escape(str(meta.get("end")))}, {meta["hours"]} hours,
regions {escape(regions)}; ecopulse's forecast: {escape(str(meta["forecast"]))};
prices: {escape(str(meta.get("prices", "configuration")))}.</p>
<p>{escape(warm_up_text(meta))}.</p>
{table(HEADER, rows)}
<p>A positive number is a saving against carbon-blind (less CO2, less compute cost); a negative one
costs more. Migrations are pods changing region; per pod-day, per day a pod ran. The steady state
leaves out the window's first hours when the disruption limits were still moving pods from their
start region. {escape(share_of_oracle_text(data))}.</p>
<dl>{"".join(f"<dt>{escape(n)}</dt><dd>{escape(d)}</dd>" for n, d in DEFINITIONS.items())}</dl>
<p>ecopulse: {len(eco["moves"])} moves, predicted net benefit {eco["predictedNetBenefitUsd"]:+.2f} USD,
realised {eco["realisedNetBenefitUsd"]:+.2f} USD (actual intensities over each move's horizon, minus
migration cost); {paid}.</p>
<h2>Predicted vs realised net benefit of every move (USD)</h2>
<div>{scatter([(ECOPULSE, moves)], x_label="predicted (USD)", y_label="realised (USD)")}</div>
<p>Below the dashed diagonal a move did worse than predicted; below the horizontal axis it lost money.</p>
{figures(drawn)}{jobs_html(data["jobs"]) if "jobs" in data else ""}"""
    return page(title="Eco-Pulse what-if replay", body=body)


def write_report(
    result: SimulationResult,
    out: Path,
    *,
    meta: dict[str, Any] | None = None,
    html_report: bool = True,
    jobs: JobsResult | None = None,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    data = report_data(result, meta=meta, jobs=jobs)
    (out / "report.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if html_report:
        (out / "report.html").write_text(render_html(data, plots(result)), encoding="utf-8")
    return data
