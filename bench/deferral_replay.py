"""The deferral replay's figures table (docs/deferral-simulate.md, "Results") in one command.

Each row is one ``python -m rebalancer simulate`` run, exactly as the page shows it: an example
scenario, a year of examples/simulate/traces, a ``--forecast`` model. It prints each policy's cut
against carbon-blind over all jobs, ecopulse's share of the oracle's cut, the time-only jobs' cuts
(ecopulse against threshold-wait and the oracle) and the deadline misses of every policy. The runs
go ``--parallel`` at a time (default 2: the development VM is shared), niced; each run's
report.json stays under ``--out`` for a closer look (per job: ``jobs.policies.<p>.byJob``).

Usage: python bench/deferral_replay.py [--years 2021 2022]
                                       [--scenarios jobs-eu two-continents two-continents-time-only]
                                       [--forecasts history noisy yesterday perfect]
                                       [--parallel 2] [--out /tmp/deferral-replay]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "simulate"
SCENARIOS = {
    "jobs-eu": (EXAMPLES / "config.yaml", EXAMPLES / "jobs-eu.yaml"),
    "two-continents": (
        EXAMPLES / "two-continents" / "config.yaml",
        EXAMPLES / "two-continents" / "jobs.yaml",
    ),
    "two-continents-time-only": (
        EXAMPLES / "two-continents" / "config.yaml",
        EXAMPLES / "two-continents" / "jobs-time-only.yaml",
    ),
}
POLICIES = ("best-region-now", "threshold-wait", "ecopulse", "oracle")


def run_one(scenario: str, year: int, forecast: str, out: Path) -> dict[str, Any]:
    config, workload = SCENARIOS[scenario]
    where = out / f"{scenario}-{year}-{forecast}"
    where.mkdir(parents=True, exist_ok=True)
    command = [
        "nice", "-n", "5", sys.executable, "-m", "rebalancer", "simulate",
        "--config", str(config), "--workload", str(workload), "--forecast", forecast,
        "--trace", str(EXAMPLES / "traces" / f"carbon-intensity-hourly-{year}.csv.gz"),
        "--out", str(where),
    ]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    jobs: dict[str, Any] = json.loads((where / "report.json").read_text())["jobs"]
    jobs["seconds"] = time.perf_counter() - began
    return jobs


def row(scenario: str, year: int, forecast: str, jobs: dict[str, Any]) -> str:
    cuts = jobs["all"]["cutVsCarbonBlindPercent"]
    share = jobs["all"]["ecopulseShareOfOracleCutPercent"]
    only = jobs["timeOnly"]
    misses = sum(p["deadlineMisses"] for p in jobs["policies"].values())
    cells = [scenario, str(year), forecast, *(f"{cuts[p]:+.1f} %" for p in POLICIES), _share(share)]
    if only is None:
        cells += ["-"] * 4
    else:
        c = only["cutVsCarbonBlindPercent"]
        cells += [f"{c['threshold-wait']:+.1f} %", f"{c['ecopulse']:+.1f} %", f"{c['oracle']:+.1f} %"]
        cells.append(_share(only["ecopulseShareOfOracleCutPercent"]))
    cells.append(str(misses))
    return "| " + " | ".join(cells) + " |"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--years", type=int, nargs="+", default=[2021, 2022])
    parser.add_argument("--scenarios", nargs="+", choices=sorted(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--forecasts", nargs="+", default=["history", "noisy", "yesterday", "perfect"])
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/deferral-replay"))
    args = parser.parse_args(argv)
    cases = [(s, y, f) for s in args.scenarios for y in args.years for f in args.forecasts]
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        found = list(pool.map(lambda case: run_one(*case, args.out), cases))
    print(
        "| scenario | year | forecast | best-region-now | threshold-wait | ecopulse | oracle "
        "| ecopulse / oracle | time-only: threshold-wait | ecopulse | oracle | ecopulse / oracle | misses |"
    )
    print("|" + "---|" * 13)
    for case, jobs in zip(cases, found, strict=True):
        print(row(*case, jobs))
    print(f"({sum(j['seconds'] for j in found):.0f} s of runs; reports under {args.out})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
