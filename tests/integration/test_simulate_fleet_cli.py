"""``eco-pulse simulate fleet`` as a user runs it: the console script, an empty directory, the
shipped fleet example on a short window of the shipped 2021 trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ECO_PULSE = Path(sys.executable).parent / "eco-pulse"
EXAMPLE = REPO / "examples" / "simulate" / "fleet-two-continents" / "fleet.yaml"
CONFIG = REPO / "examples" / "simulate" / "two-continents" / "config.yaml"
TRACE = REPO / "examples" / "simulate" / "traces" / "carbon-intensity-hourly-2021.csv.gz"


def eco_pulse(*arguments: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ECO_PULSE), "simulate", "fleet", *map(str, arguments)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_fleet_replay_through_the_eco_pulse_command(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = eco_pulse(
        *("--config", CONFIG, "--fleet", EXAMPLE, "--trace", TRACE, "--out", out),
        *("--start", "2021-03-01T00:00:00Z", "--end", "2021-03-11T00:00:00Z", "--warm-up-hours", "72"),
        *("--forecast", "history"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ecopulse keeps" in done.stdout and "failovers" in done.stdout
    data = json.loads((out / "report.json").read_text())
    jobs = data["jobs"]
    policies = ("carbon-blind", "best-region-now", "threshold-wait", "ecopulse", "oracle")
    assert tuple(jobs["policies"]) == policies
    assert set(jobs["policies"]["ecopulse"]["byJob"]) == {"train-ca", "batch-de", "render-es", "sim-de"}
    assert jobs["timeOnlyJobs"] == ["render-es"]
    members = {"us-west-1a", "fra-1", "mad-1", "osl-1"}
    assert {m["name"] for m in data["meta"]["members"]} == members
    for name in policies:
        assert set(jobs["byMember"][name]) == members
        assert jobs["policies"][name]["deadlineMisses"] == 0
        assert sum(m["runs"] for m in jobs["byMember"][name].values()) == jobs["policies"][name]["runs"] > 0
    assert data["meta"]["warmUpHours"] == 72 and data["meta"]["hours"] == 240
    html = (out / "report.html").read_text()
    assert "Where each policy ran the Jobs" in html and "osl-1" in html


def test_a_bad_fleet_file_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text(EXAMPLE.read_text().replace("clusters: [mad-1]", "clusters: [mad-2]"))
    out = tmp_path / "out"
    done = eco_pulse("--config", CONFIG, "--fleet", bad, "--trace", TRACE, "--out", out, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert "jobs[2].clusters[0]: 'mad-2' is not a member" in done.stderr
    assert not (out / "report.json").exists()
