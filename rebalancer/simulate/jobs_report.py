"""``report.json``'s ``jobs`` and its section of ``report.html``: the deferral replay's policies
side by side."""

from __future__ import annotations

from typing import Any

from core.deferral import StartReason
from rebalancer.simulate.jobs import CARBON_BLIND, ECOPULSE, JOB_POLICIES, ORACLE, JobsResult, JobTotals
from report.html import escape, percent, svg, table


def shares(result: JobsResult, jobs: frozenset[str] | None = None) -> dict[str, Any]:
    """Each policy's cut against carbon-blind (percent of its emissions) and ecopulse's share of
    the oracle's cut, for ``jobs`` (None: all)."""
    blind = result.totals(CARBON_BLIND, jobs=jobs).emissions_grams
    cuts = {
        name: (100.0 * (1.0 - result.totals(name, jobs=jobs).emissions_grams / blind) if blind > 0 else 0.0)
        for name in JOB_POLICIES
    }
    oracle_cut = blind - result.totals(ORACLE, jobs=jobs).emissions_grams
    eco_cut = blind - result.totals(ECOPULSE, jobs=jobs).emissions_grams
    return {
        "cutVsCarbonBlindPercent": {name: round(value, 3) for name, value in cuts.items()},
        "ecopulseShareOfOracleCutPercent": round(100.0 * eco_cut / oracle_cut, 3) if oracle_cut > 0 else None,
    }


def totals_entry(totals: JobTotals) -> dict[str, Any]:
    return {
        "emissionsGrams": round(totals.emissions_grams, 3),
        "costUsd": round(totals.cost_usd, 4),
        "runs": totals.runs,
        "deadlineMisses": totals.deadline_misses,
        "meanDelayHours": round(totals.mean_delay_hours, 4),
    }


def jobs_data(result: JobsResult) -> dict[str, Any]:
    """Per policy the totals and ``byJob`` (the same fields per job); the cuts for all jobs and for
    the time-only ones (one region to run in); ecopulse's releases by reason."""
    policies: dict[str, Any] = {}
    for name in JOB_POLICIES:
        summary = totals_entry(result.totals(name))
        summary["byJob"] = {
            job.name: totals_entry(result.totals(name, jobs=frozenset({job.name}))) for job in result.jobs
        }
        policies[name] = summary
    return {
        "policies": policies,
        "all": shares(result),
        "timeOnlyJobs": sorted(result.time_only),
        "timeOnly": shares(result, result.time_only) if result.time_only else None,
        "ecopulseReleases": dict(result.reasons),
        "releaseReasons": [str(reason) for reason in StartReason],
        "forecastModel": dict(result.forecast),
    }


def jobs_html(data: dict[str, Any]) -> str:
    """The jobs section: a table per policy, the cuts, and a bar chart of them (matplotlib)."""
    import matplotlib  # noqa: PLC0415 - optional dependency, only for the report

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    header = (
        "policy",
        "emissions (kg)",
        "cut vs carbon-blind",
        "cost ($)",
        "runs",
        "deadline misses",
        "mean delay (h)",
    )
    cuts = data["all"]["cutVsCarbonBlindPercent"]
    rows = [
        (
            name,
            f"{p['emissionsGrams'] / 1000:,.2f}",
            percent(cuts[name]),
            f"{p['costUsd']:,.2f}",
            p["runs"],
            p["deadlineMisses"],
            f"{p['meanDelayHours']:.2f}",
        )
        for name, p in data["policies"].items()
    ]
    groups = [("all jobs", data["all"])]
    if data["timeOnly"] is not None:
        groups.append(("time-only jobs", data["timeOnly"]))
    fig, ax = plt.subplots(figsize=(10, 3.5))
    width = 0.8 / len(groups)
    for g, (label, found) in enumerate(groups):
        values = [found["cutVsCarbonBlindPercent"][name] for name in JOB_POLICIES]
        ax.bar([i + g * width for i in range(len(JOB_POLICIES))], values, width=width, label=label)
    ax.set_xticks([i + width * (len(groups) - 1) / 2 for i in range(len(JOB_POLICIES))], list(JOB_POLICIES))
    ax.set_ylabel("emissions cut vs carbon-blind (%)")
    ax.legend(loc="upper left", fontsize="small")
    chart = svg(fig)
    plt.close(fig)
    share = data["all"]["ecopulseShareOfOracleCutPercent"]
    time_share = data["timeOnly"]["ecopulseShareOfOracleCutPercent"] if data["timeOnly"] else None
    releases = ", ".join(f"{reason} {count}" for reason, count in data["ecopulseReleases"].items()) or "none"
    return f"""<h2>Deferrable Jobs</h2>
{table(header, rows)}
<p>ecopulse keeps {_percent(share)} of the oracle's cut over all jobs, {_percent(time_share)} on the
time-only jobs ({escape(", ".join(data["timeOnlyJobs"]) or "none")}); its releases by reason:
{escape(releases)}.</p>
<div>{chart}</div>
"""


def _percent(value: float | None) -> str:
    return "—" if value is None else percent(value)
