"""``python -m rebalancer simulate`` as a newcomer runs it: real subprocesses, the shipped example.

Each run starts in an empty directory outside the checkout, so nothing but the repository's own
files (the example configuration and the bundled sample trace) can make it work.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rebalancer.simulate.cli import SAMPLE_TRACE

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "examples" / "simulate" / "config.yaml"
WORKLOAD = REPO / "examples" / "simulate" / "workload.yaml"
# The project's shared data sits next to the main checkout (../shared), two levels up from a worktree.
SHARED_GRID_2022 = next(
    (
        base / "shared" / "data" / "grid" / "carbon-intensity-hourly-2022.csv.gz"
        for base in (REPO.parent, REPO.parent.parent)
        if (base / "shared" / "data" / "grid").is_dir()
    ),
    REPO / "missing",
)
PROGRESS_LINE = re.compile(
    r"^simulate: (loading trace|replay) +(\d+)% \(([\d,]+) of ([\d,]+) (rows|hours)\)$"
)


def simulate(*arguments: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "rebalancer", "simulate", *map(str, arguments)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def example(*extra: str | Path, out: Path, trace: Path | None = SAMPLE_TRACE) -> tuple[str | Path, ...]:
    named = ("--trace", trace) if trace is not None else ()
    return ("--config", CONFIG, "--workload", WORKLOAD, *named, "--out", out, *extra)


def replay_started(stderr: str) -> bool:
    return "simulate: replay" in stderr


def test_the_readme_example_runs_with_nothing_outside_the_repository(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    # The example as printed, backslash continuations joined; its --out is redirected here.
    found = re.search(r"^python -m rebalancer simulate (?:.*\\\n)*.*$", readme, flags=re.MULTILINE)
    assert found is not None, "README has no `python -m rebalancer simulate` example"
    words = shlex.split(found.group(0).replace("\\\n", " "))[4:]
    for i, word in enumerate(words[:-1]):
        if word == "--out":
            words[i + 1] = str(tmp_path / "out")
        elif word in ("--config", "--workload", "--trace"):
            path = REPO / words[i + 1]
            assert path.is_file(), f"README's {word} {words[i + 1]} is not in the repository"
            assert REPO in path.resolve().parents, f"README's {word} points outside the repository"
            words[i + 1] = str(path)
    run = simulate(*words, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["meta"]["hours"] > 0
    assert "ecopulse" in run.stdout


def test_without_trace_the_bundled_sample_is_replayed_and_named(tmp_path: Path) -> None:
    assert REPO in SAMPLE_TRACE.parents
    run = simulate(*example(out=tmp_path / "out", trace=None), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"bundled sample {SAMPLE_TRACE}" in run.stderr
    meta = json.loads((tmp_path / "out" / "report.json").read_text())["meta"]
    assert meta["trace"] == str(SAMPLE_TRACE)
    assert meta["hours"] == 2232  # no --start: the whole sample, as a fresh install
    assert meta["start"].startswith("2022-01-01T00:00")
    assert meta["warmUp"]["hours"] == 0


def test_the_sample_carries_its_attribution() -> None:
    sources = (SAMPLE_TRACE.parent / "SOURCES.md").read_text(encoding="utf-8")
    for needed in ("Electricity Maps", "ODbL", "Sukprasert", "mosaik-emissions", "hack/make-sample-trace.py"):
        assert needed in sources


@pytest.mark.skipif(not SHARED_GRID_2022.is_file(), reason="the shared grid data is not on this machine")
def test_the_sample_is_what_the_script_makes_from_the_shared_data() -> None:
    source = gzip.decompress(SHARED_GRID_2022.read_bytes()).decode()
    sample = gzip.decompress(SAMPLE_TRACE.read_bytes()).decode()
    lines = sample.splitlines()
    assert len(lines) == 1 + 8 * 2232
    real = {line for line in lines[1:] if line.split(",")[1] in {"BR", "DE", "ES", "NO", "US-CAL-CISO"}}
    assert len(real) == 5 * 2232 and not real - set(source.splitlines())  # rows unchanged
    script = runpy.run_path(str(REPO / "hack" / "make-sample-trace.py"))
    means = (SHARED_GRID_2022.parent / "zone-annual-mean-lifecycle-g-per-kwh.csv").read_text()
    assert script["sample"](source, means) == sample  # the stand-ins too, exactly as documented


@pytest.mark.parametrize(
    ("make_out", "message"),
    [
        pytest.param(lambda d: d / "a-file", "exists and is not a directory", id="a file"),
        pytest.param(lambda d: d / "a-file" / "report", "cannot create the directory", id="under a file"),
        # sysfs takes no new files, not even from root (these tests may run as root).
        pytest.param(lambda d: Path("/sys"), "not writable", id="unwritable directory"),
    ],
)
def test_a_bad_out_is_refused_before_the_replay(tmp_path: Path, make_out: object, message: str) -> None:
    (tmp_path / "a-file").write_text("keep me\n")
    assert callable(make_out)
    out = make_out(tmp_path)
    run = simulate(*example(out=out), cwd=tmp_path)
    assert run.returncode == 2
    assert f"simulate: --out {out}: {message}" in run.stderr
    assert "Traceback" not in run.stderr
    assert not replay_started(run.stderr)
    assert "loading trace" not in run.stderr
    assert (tmp_path / "a-file").read_text() == "keep me\n"


def test_start_after_end_is_a_usage_error(tmp_path: Path) -> None:
    run = simulate(
        *example("--start", "2022-03-20", "--end", "2022-03-10", out=tmp_path / "out"), cwd=tmp_path
    )
    assert run.returncode == 2
    assert "usage:" in run.stderr
    assert "--start 2022-03-20T00:00:00+00:00 must be before --end 2022-03-10T00:00:00+00:00" in run.stderr
    assert "no rows for zone" not in run.stderr
    assert not (tmp_path / "out").exists()


def test_an_empty_window_names_the_period_and_what_the_trace_covers(tmp_path: Path) -> None:
    run = simulate(*example("--start", "2023-01-01", out=tmp_path / "out"), cwd=tmp_path)
    assert run.returncode == 2
    assert "no hours in the period [2023-01-01T00:00:00Z, …)" in run.stderr
    assert "the trace covers 2022-01-01T00:00:00Z to 2022-04-03T23:00:00Z" in run.stderr
    assert "no rows for zone" not in run.stderr
    assert not replay_started(run.stderr)


def test_off_a_terminal_progress_is_a_plain_line_every_few_percent(tmp_path: Path) -> None:
    run = simulate(*example(out=tmp_path / "out"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr
    lines = [
        line for line in run.stderr.splitlines() if line.startswith(("simulate: loading", "simulate: replay"))
    ]
    steps: dict[str, list[int]] = {"loading trace": [], "replay": []}
    for line in lines:
        match = PROGRESS_LINE.match(line)
        assert match is not None, line
        steps[match.group(1)].append(int(match.group(2)))
    for name, percents in steps.items():
        # Loading comes first, then the replay; each climbs in steps of a few percent to 100.
        assert percents, f"no {name} progress"
        assert percents == sorted(percents)
        assert percents[-1] == 100
        assert 5 <= len(percents) <= 25, percents
    assert lines.index(next(line for line in lines if "replay" in line)) > max(
        i for i, line in enumerate(lines) if "loading trace" in line
    )


JOB_EXAMPLES = (
    (CONFIG, REPO / "examples" / "simulate" / "jobs-eu.yaml"),
    (
        REPO / "examples" / "simulate" / "two-continents" / "config.yaml",
        REPO / "examples" / "simulate" / "two-continents" / "jobs-time-only.yaml",
    ),
)


@pytest.mark.parametrize(("config", "workload"), JOB_EXAMPLES, ids=["jobs-eu", "jobs-time-only"])
def test_the_job_examples_report_every_policy_with_no_deadline_missed(
    tmp_path: Path, config: Path, workload: Path
) -> None:
    run = simulate(
        "--config",
        config,
        "--workload",
        workload,
        "--forecast",
        "history",
        "--out",
        tmp_path / "out",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    jobs = report["jobs"]
    policies = jobs["policies"]
    assert list(policies) == ["carbon-blind", "best-region-now", "threshold-wait", "ecopulse", "oracle"]
    runs = {p["runs"] for p in policies.values()}
    assert len(runs) == 1 and runs.pop() > 0
    for entry in policies.values():
        assert entry["deadlineMisses"] == 0
        assert sum(job["runs"] for job in entry["byJob"].values()) == entry["runs"]
    assert policies["oracle"]["emissionsGrams"] <= policies["carbon-blind"]["emissionsGrams"]
    assert jobs["forecastModel"]["model"] == "history"
    assert "Deferrable Jobs" in (tmp_path / "out" / "report.html").read_text()
    assert "ecopulse keeps" in run.stdout
