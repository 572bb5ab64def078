"""Measure how well executed moves hold up in hindsight: every year x scenario x forecast.

    nice python bench/robust_moves.py [--grid ../shared/data/grid] [--set rebalancer.KEY=VALUE ...]
                                      [--seeds 3] [--years 2021 2022] [--forecasts none noisy]

For each combination: moves, the share of moves whose realised net benefit was positive, ecopulse's
carbon reduction as a share of the hourly oracle's (same objective, free moves) and of the carbon
oracle's, moves per pod-day, and the compute cost against carbon-blind (all and spot only). Noisy
forecasts run once per seed; the table shows the median over seeds. ``--set`` overrides rebalancer
settings by their Python field name (``min_net_benefit_usd=0.001``), to compare rules.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from core.config import EcoPulseConfiguration, load_config
from core.trace import load_trace
from rebalancer.simulate.engine import CARBON_ORACLE, ECOPULSE, HOURLY_ORACLE, Simulator
from rebalancer.simulate.forecast import ForecastModel
from rebalancer.simulate.workload import load_workload

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = {
    "EU": REPO / "examples" / "simulate",
    "two-continents": REPO / "examples" / "simulate" / "two-continents",
}


def _override(config: EcoPulseConfiguration, settings: list[str]) -> EcoPulseConfiguration:
    rebalancer = config.rebalancer
    for item in settings:
        name, _, raw = item.partition("=")
        current = getattr(rebalancer, name)
        value: Any = type(current)(raw) if current is not None else float(raw)
        rebalancer = dataclasses.replace(rebalancer, **{name: value})
    return dataclasses.replace(config, rebalancer=rebalancer)


def run(
    *, scenario: Path, trace_path: Path, forecast: ForecastModel, seed: int, settings: list[str]
) -> dict[str, float]:
    config = _override(load_config(scenario / "config.yaml"), settings)
    workload = load_workload(scenario / "workload.yaml", regions=frozenset(config.region_names))
    trace = load_trace(trace_path, zones={r.zone for r in config.regions})
    result = Simulator(config=config, trace=trace, workload=workload, forecast=forecast, seed=seed).run()
    eco = result.policies[ECOPULSE]
    moves = eco.moves
    paid = sum(1 for m in moves if m.realised_net_benefit_usd > 0)
    oracle = result.reduction_percent(HOURLY_ORACLE)
    carbon = result.reduction_percent(CARBON_ORACLE)
    return {
        "moves": len(moves),
        "paid": 100.0 * paid / len(moves) if moves else 100.0,
        "reduction": result.reduction_percent(ECOPULSE),
        "of_oracle": 100.0 * result.reduction_percent(ECOPULSE) / oracle if oracle > 0 else 100.0,
        "of_carbon_oracle": 100.0 * result.reduction_percent(ECOPULSE) / carbon if carbon > 0 else 100.0,
        "per_pod_day": eco.migrations_per_pod_day,
        "compute": -result.cost_reduction_percent(ECOPULSE),
        "spot_compute": -result.cost_reduction_percent(ECOPULSE, spot_only=True),
        "oracle_compute": -result.cost_reduction_percent(HOURLY_ORACLE),
        "realised_usd": sum(m.realised_net_benefit_usd for m in moves),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", type=Path, default=REPO.parent.parent / "shared" / "data" / "grid")
    p.add_argument("--set", action="append", default=[], dest="settings")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--years", nargs="+", default=["2021", "2022"])
    p.add_argument("--forecasts", nargs="+", default=["none", "noisy"])
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    args = p.parse_args()
    print(f"settings: {args.settings or 'shipped defaults'}", flush=True)
    print(
        "| year | scenario | forecast | moves | paid | reduction | of oracle | of carbon oracle "
        "| per pod-day | compute | spot compute | realised $ |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    began = time.perf_counter()
    for year in args.years:
        trace = args.grid / f"carbon-intensity-hourly-{year}.csv.gz"
        for name in args.scenarios:
            for forecast in args.forecasts:
                model = ForecastModel(forecast)
                seeds = range(args.seeds) if model is ForecastModel.NOISY else range(1)
                runs = [
                    run(
                        scenario=SCENARIOS[name],
                        trace_path=trace,
                        forecast=model,
                        seed=s,
                        settings=args.settings,
                    )
                    for s in seeds
                ]
                m = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                worst = min(r["paid"] for r in runs)
                print(
                    f"| {year} | {name} | {forecast} | {m['moves']:.0f} "
                    f"| {m['paid']:.1f} % (min {worst:.1f}) "
                    f"| {m['reduction']:.1f} % | {m['of_oracle']:.1f} % | {m['of_carbon_oracle']:.1f} % "
                    f"| {m['per_pod_day']:.4f} | {m['compute']:+.1f} % | {m['spot_compute']:+.1f} % "
                    f"| {m['realised_usd']:+.2f} |",
                    flush=True,
                )
    print(f"({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
