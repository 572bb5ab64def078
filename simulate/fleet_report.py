"""``report.json`` and ``report.html`` of a fleet's replay: the ``jobs`` of one cluster's replay
(``rebalancer.simulate.jobs_report``: policies, byJob, all and timeOnly, shares of the oracle,
deadline misses), plus per member what each policy ran there, and the failovers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rebalancer.simulate.jobs import JOB_POLICIES, JobTotals
from rebalancer.simulate.jobs_report import jobs_data, jobs_html, totals_entry
from report.html import escape, page, table
from simulate.fleet_jobs import FleetJobsResult
from simulate.fleetspec import SimulatedFleet


def fleet_jobs_data(result: FleetJobsResult) -> dict[str, Any]:
    """One cluster's ``jobs``, with ``byMember.<policy>.<member>`` (the same fields) and
    ``failovers.<policy>`` (runs restarted elsewhere after their member failed)."""
    data = jobs_data(result.jobs)
    by_member: dict[str, Any] = {}
    for name in JOB_POLICIES:
        totals = {member: JobTotals() for member in result.members}
        for outcome in result.jobs.outcomes[name]:
            totals[outcome.member].add(outcome)
        by_member[name] = {member: totals_entry(found) for member, found in totals.items()}
    data["byMember"] = by_member
    data["failovers"] = dict(result.failovers)
    return data


def members_data(fleet: SimulatedFleet) -> list[dict[str, Any]]:
    return [
        {
            "name": member.name,
            "region": member.region,
            "cpu": member.cpu,
            "memoryGib": member.memory_gib,
            "notReady": [{"fromHour": start, "hours": hours} for start, hours in member.not_ready],
        }
        for member in fleet.members
    ]


def render_html(data: dict[str, Any]) -> str:
    meta, jobs = data["meta"], data["jobs"]
    members = table(
        ("member", "region", "CPU", "memory (GiB)", "not Ready (hours from the start)"),
        [
            (
                m["name"],
                m["region"],
                f"{m['cpu']:g}",
                f"{m['memoryGib']:g}",
                ", ".join(f"{o['fromHour']}+{o['hours']}" for o in m["notReady"]) or "never",
            )
            for m in meta["members"]
        ],
    )
    runs = table(
        ("member", *JOB_POLICIES),
        [
            (
                m["name"],
                *(
                    f"{jobs['byMember'][p][m['name']]['runs']} runs, "
                    f"{jobs['byMember'][p][m['name']]['emissionsGrams'] / 1000:,.1f} kg"
                    for p in JOB_POLICIES
                ),
            )
            for m in meta["members"]
        ],
        total=("failovers", *(jobs["failovers"][p] for p in JOB_POLICIES)),
    )
    body = f"""<p>{escape(str(meta["start"]))} to {escape(str(meta["end"]))}, {meta["hours"]} hours;
ecopulse's forecast: {escape(str(meta["forecast"]))}.</p>
<h2>Members</h2>
{members}
{jobs_html(jobs)}
<h2>Where each policy ran the Jobs</h2>
{runs}
<p>A run whose member failed under it is restarted from scratch in another member it allows
(Karmada's failover); the hours it lost are counted in its emissions.</p>"""
    return page(title="Eco-Pulse fleet replay: deferrable Jobs", body=body)


def write_fleet_report(data: dict[str, Any], out: Path) -> None:
    (out / "report.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (out / "report.html").write_text(render_html(data), encoding="utf-8")
