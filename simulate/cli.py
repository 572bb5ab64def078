"""``python -m simulate fleet`` (``eco-pulse simulate fleet``): replay a Karmada fleet's deferrable
Jobs against a grid trace, five policies side by side (simulate.fleet_jobs)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from core.cli import program, reject_unknown_options
from core.config import ConfigError, load_config
from core.trace import TraceError
from rebalancer.simulate.cli import (
    SAMPLE_TRACE,
    add_replay_options,
    check_out,
    load_window,
    print_jobs,
    with_progress,
)
from rebalancer.simulate.forecast import ForecastModel, replay_forecaster
from simulate.fleet_jobs import FleetJobReplay
from simulate.fleet_report import fleet_jobs_data, members_data, write_fleet_report
from simulate.fleetspec import FleetError, load_fleet


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=program("python -m simulate fleet"),
        description="Replay a Karmada fleet's deferrable Jobs against an hourly carbon-intensity trace: "
        "carbon-blind, best-region-now, threshold-wait, ecopulse (fleet mode's choice of member and "
        "hour) and an oracle over (member, hour).",
    )
    add_replay_options(p, inputs=("--fleet", "SimulatedFleet YAML: member clusters and jobs"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    command_line = parser()
    reject_unknown_options(command_line, arguments)
    args = command_line.parse_args(arguments)
    if args.start is not None and args.end is not None and args.start >= args.end:
        command_line.error(f"--start {args.start.isoformat()} must be before --end {args.end.isoformat()}")
    trace_path: Path = args.trace or SAMPLE_TRACE
    terminal = sys.stderr.isatty()
    try:
        config = load_config(args.config)
        fleet = load_fleet(args.fleet, regions=frozenset(config.region_names))
        problem = check_out(args.out)
        if problem is not None:
            print(f"simulate: {problem}", file=sys.stderr)
            return 2
        if args.forecast_hours is not None and args.forecast_hours < 1:
            raise ValueError(f"--forecast-hours: must be >= 1, got {args.forecast_hours}")
        warm_up, trace = load_window(trace_path, config=config, args=args, terminal=terminal)
        zones = tuple(region.zone for region in config.regions)
        replay = FleetJobReplay(
            config=config,
            trace=trace,
            fleet=fleet,
            forecaster=replay_forecaster(
                ForecastModel(args.forecast) if args.forecast else None,
                hours=args.forecast_hours,
                configured_hours=config.carbon.forecast_hours,
                seed=args.seed,
                series={zone: trace.zones[zone] for zone in zones},
            ),
            warm_up=warm_up,
        )
    except (ConfigError, FleetError, TraceError, ValueError) as error:
        print(f"simulate: {error}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    result = with_progress(replay.run, hours=trace.hours, terminal=terminal)
    seconds = time.perf_counter() - began
    data = {
        "meta": {
            "config": str(args.config),
            "trace": str(trace_path),
            "fleet": str(args.fleet),
            "intensity": args.intensity,
            "replaySeconds": round(seconds, 2),
            "hours": trace.hours,
            "start": trace.times[0].isoformat(),
            "end": trace.times[-1].isoformat(),
            "warmUpHours": warm_up.hours if warm_up is not None else 0,
            "regions": {region.name: region.zone for region in config.regions},
            "members": members_data(fleet),
            "forecast": f"{replay.base.forecaster.model}, {replay.base.forecaster.hours} hours",
        },
        "jobs": fleet_jobs_data(result),
    }
    try:
        write_fleet_report(data, args.out)
    except ImportError as error:
        print(f"simulate: {error}: install the plotting extra, pip install 'eco-pulse[sim]'", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"simulate: --out {args.out}: cannot write the report: {error}", file=sys.stderr)
        return 2
    print_jobs(data["jobs"])
    failovers = ", ".join(f"{name} {count}" for name, count in result.failovers.items())
    print(f"failovers (runs restarted after their member failed): {failovers}")
    print(f"replayed {trace.hours} hours in {seconds:.1f} s; report in {args.out}/report.html")
    return 0
