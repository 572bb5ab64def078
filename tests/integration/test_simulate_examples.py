"""The replay's examples as a newcomer meets them: the README's own run shows what a running
deployment would see (ecopulse within 10 % of the hourly oracle's cut, as over a held-out year),
docs/methodology.md prints the figures its commands produce, the embedded default's and the
local demo's regions replay on the bundled sample, and the examples cite repository files only."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_simulate_cli import REPO, simulate

METHODOLOGY = REPO / "docs" / "methodology.md"
TRACES = REPO / "examples" / "simulate" / "traces"


def readme_command() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^python -m rebalancer simulate (?:.*\\\n)*.*$", readme, flags=re.MULTILINE)
    assert found is not None
    return shlex.split(found.group(0).replace("\\\n", " "))[4:]


def run(words: list[str], tmp_path: Path) -> tuple[dict[str, Any], str]:
    out = tmp_path / "out"
    words = list(words)
    for i, word in enumerate(words[:-1]):
        if word == "--out":
            words[i + 1] = str(out)
        elif word in ("--config", "--workload", "--trace"):
            words[i + 1] = str(REPO / words[i + 1])
    done = simulate(*words, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / "report.json").read_text()), done.stdout


def share_of_oracle(data: dict[str, Any], key: str) -> float:
    policies = data["policies"]
    return float(policies["ecopulse"][key] / policies["hourly-oracle"][key])


def methodology_table(heading: str) -> dict[str, list[str]]:
    """The first table after ``heading`` in docs/methodology.md: first cell -> the other cells."""
    text = METHODOLOGY.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if line.startswith("|---"):
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
        elif rows:
            break
    return rows


def test_the_readme_example_is_what_a_running_deployment_sees(tmp_path: Path) -> None:
    words = readme_command()
    assert "--start" in words  # the sample's weeks before it are the warm-up
    data, stdout = run(words, tmp_path)
    meta = data["meta"]
    assert meta["warmUp"]["hours"] >= 168 and meta["steadyStateFrom"]["hour"] == 0
    assert share_of_oracle(data, "reductionVsCarbonBlindPercent") >= 0.9
    assert share_of_oracle(data, "steadyStateReductionVsCarbonBlindPercent") >= 0.9
    assert "warm-up: " in stdout and "-0.0 %" not in stdout
    # docs/methodology.md prints this run's figures, as the terminal shows them
    table = methodology_table("### The README example")
    for name, p in data["policies"].items():
        line = next(x for x in stdout.splitlines() if x.startswith(f"{name} "))
        _, emissions, saved, _steady, compute, migrations, per_pod_day = re.split(r" {2,}", line.strip())
        assert table[name] == [emissions, saved, compute, migrations, per_pod_day], name
        assert p["migrations"] == int(migrations.replace(",", ""))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    eco = data["policies"]["ecopulse"]["reductionVsCarbonBlindPercent"]
    assert f"saves {eco:.1f} % of the CO2" in readme
    assert (
        f"{100 * share_of_oracle(data, 'reductionVsCarbonBlindPercent'):.1f} % of the hourly oracle" in readme
    )


@pytest.mark.parametrize("year", ["2022", "2021"])
def test_over_a_year_ecopulse_reaches_nine_tenths_of_the_oracle(tmp_path: Path, year: str) -> None:
    # 2021 is held out: nothing in the replay or the example was adjusted on it.
    words = [
        "--config", "examples/simulate/config.yaml", "--workload", "examples/simulate/workload.yaml",
        "--out", "out", "--trace", f"examples/simulate/traces/carbon-intensity-hourly-{year}.csv.gz",
        "--start", f"{year}-01-08T00:00:00Z",
    ]  # fmt: skip
    data, _ = run(words, tmp_path)
    share = share_of_oracle(data, "reductionVsCarbonBlindPercent")
    assert share >= 0.9
    row = methodology_table("### A year, and a held-out year")[year]
    assert row[4] == f"{data['policies']['ecopulse']['reductionVsCarbonBlindPercent']:.1f} %"
    assert row[5] == f"{100 * share:.1f} %"


def test_the_default_and_demo_regions_replay_on_the_bundled_sample(tmp_path: Path) -> None:
    example = REPO / "examples" / "simulate" / "default-regions"
    words = [
        "--config", str(example / "config.yaml"), "--workload", str(example / "workload.yaml"),
        "--out", "out", "--start", "2022-03-07T00:00:00Z",
    ]  # fmt: skip
    data, _ = run(words, tmp_path)
    assert set(data["meta"]["regions"].values()) == {"US-MIDA-PJM", "IE", "SE-SE3"}
    assert data["policies"]["ecopulse"]["reductionVsCarbonBlindPercent"] > 0


# A path in a comment or value: a slash and a file name with an extension, or a directory path.
PATH = re.compile(r"(?<![\w./-])((?:\.\./)*[\w.-]+(?:/[\w.-]+)+/?)")


def test_the_examples_cite_files_in_the_repository_only() -> None:
    for example in sorted((REPO / "examples").rglob("*.yaml")):
        for cited in PATH.findall(example.read_text(encoding="utf-8")):
            if not re.search(r"\.\w+$", cited) and not cited.startswith("../"):
                continue  # not a file: a unit (GB/h), an apiVersion, a label key
            if re.fullmatch(r"[\w-]+(\.[\w-]+)+/[\w-]+", cited):
                continue  # a label or annotation key (topology.kubernetes.io/region)
            where = f"{example.relative_to(REPO)} cites {cited}"
            assert not cited.startswith("../") and (REPO / cited).exists(), f"{where}: not in the repository"
