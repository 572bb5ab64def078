"""One release-loop pass: every held Job re-planned, as the leader does each cycle
(rebalancer.release.plan_releases), the forecast table built once.

Unlike bench/deferral.py (the planner alone, requests prebuilt), this pass includes what the loop
reads of each Job: its resolved intent from its annotations, its hints, and the planner's request,
read once per version of the Job (core.deferral_memo, kept from pass to pass as the leader keeps
it; the first pass reads them all and is printed apart). The Jobs are slim records as the watch
keeps them (built before the timing). 10,000 held Jobs, 20 regions, 48-hour forecasts; median of
``--runs`` passes after the first, wall and CPU time; ``--profile``: where one pass spends it.

Usage: python bench/release.py [--jobs 10000] [--regions 20] [--hours 48] [--runs 5] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from bench.deferral import NOW, forecasts
from core.catalog import load_price_table, load_region_zones
from core.collector import collections_paused
from core.config import parse_config_text
from core.deferral_hints import job_facts, stamp
from core.deferral_memo import PassMemo
from core.policy import EMPTY_POLICY_SET
from rebalancer.release import plan_releases


def held_job(index: int, regions: list[str], rng: random.Random) -> dict[str, Any]:
    runtime = rng.choice([1, 2, 3, 4, 6, 8, 12])
    created = NOW - timedelta(minutes=rng.randint(0, 24 * 60))
    deadline = NOW + timedelta(hours=runtime, minutes=rng.randint(30, (47 - runtime) * 60))
    annotations = {
        "ecopulse.io/deadline": stamp(deadline),
        "ecopulse.io/expected-runtime-hours": str(runtime),
        "ecopulse.io/held-at": stamp(created),
        "ecopulse.io/release-by": stamp(deadline - timedelta(hours=runtime, minutes=15)),
    }
    if rng.random() < 0.5:
        annotations["ecopulse.io/allowed-regions"] = ",".join(
            rng.sample(regions, rng.randint(1, len(regions)))
        )
    cpu = rng.choice(["500m", "1", "2", "4", "8", "16"])
    return {
        "metadata": {
            "name": f"job-{index}",
            "namespace": f"team-{index % 50}",
            "uid": f"uid-{index}",
            "annotations": annotations,
            "creationTimestamp": stamp(created),
        },
        "spec": {
            "suspend": True,
            "parallelism": rng.choice([1, 1, 2, 4]),
            "template": {"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}},
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print where one pass spends its time")
    args = parser.parse_args()
    rng = random.Random(7)
    zones = load_region_zones()
    regions = [name for name in load_price_table() if name in zones][: args.regions]
    config = parse_config_text(
        "apiVersion: ecopulse.io/v1alpha1\nkind: EcoPulseConfiguration\nregions:\n"
        + "".join(f"  - {{name: {r}}}\n" for r in regions)
        + f"baselineRegion: {regions[0]}\neconomics: {{carbonPriceUsdPerTonne: 200}}\n"
        + "rebalancer: {dryRun: false}\n"
    )
    made = forecasts(regions, args.hours, rng)
    jobs = [job_facts(held_job(i, regions, rng)) for i in range(args.jobs)]
    memo: PassMemo[Any] = PassMemo()  # kept from pass to pass, as the leader's release loop keeps it

    def one_pass() -> Any:
        with collections_paused():
            return plan_releases(
                jobs,
                forecasts=made,
                config=config,
                namespaces={},
                policies=EMPTY_POLICY_SET,
                now=NOW,
                memo=memo,
            )

    started, started_cpu = time.perf_counter(), time.process_time()
    one_pass()
    first_wall, first_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    wall, cpu = [], []
    decided: Any = None
    for _ in range(args.runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        decided = one_pass()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    print(f"{len(jobs)} held Jobs, {len(regions)} regions, {args.hours}-hour forecasts")
    print(
        f"first pass (every Job read, memo cold): wall {first_wall * 1000:.0f} ms, "
        f"CPU {first_cpu * 1000:.0f} ms"
    )
    print(
        f"release pass: wall median {statistics.median(wall) * 1000:.0f} ms, CPU median "
        f"{statistics.median(cpu) * 1000:.0f} ms (min {min(cpu) * 1000:.0f}) of {args.runs}; "
        f"{len(decided.releases)} released, {len(decided.waiting)} waiting"
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        one_pass()
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
        print(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
