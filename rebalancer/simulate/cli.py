"""``python -m rebalancer simulate``: replay a grid trace through the rebalancer and compare policies."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from core.cli import reject_unknown_options
from core.config import ConfigError, load_config
from core.trace import TraceError, load_trace, parse_time
from rebalancer.simulate.forecast import ForecastModel
from rebalancer.simulate.progress import Progress
from rebalancer.simulate.workload import WorkloadError, load_workload

SAMPLE_TRACE = Path(__file__).resolve().parent / "data" / "grid-sample-2022.csv.gz"


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rebalancer simulate",
        description="Replay an hourly carbon-intensity trace through Eco-Pulse and compare it with "
        "carbon-blind, static-best and hourly-oracle placement.",
    )
    p.add_argument("--config", required=True, type=Path, help="EcoPulseConfiguration YAML")
    p.add_argument(
        "--trace",
        type=Path,
        help="hourly intensity CSV (optionally .gz), format in docs/trace-format.md; default: the "
        "bundled sample, 4 weeks of 2022 for BR, DE, ES, NO, US-CAL-CISO (Electricity Maps, ODbL)",
    )
    p.add_argument("--workload", required=True, type=Path, help="SimulatedWorkload YAML")
    p.add_argument("--out", required=True, type=Path, help="directory for report.json and report.html")
    p.add_argument("--intensity", choices=("lifecycle", "direct"), default="lifecycle")
    p.add_argument("--start", type=_time, help="first hour kept (ISO, UTC)")
    p.add_argument("--end", type=_time, help="first hour dropped (ISO, UTC)")
    p.add_argument(
        "--forecast",
        choices=[str(m) for m in ForecastModel],
        help="what ecopulse sees ahead: none (current intensities only), perfect (the trace), "
        "persistence (the current value held) or noisy (the trace with an error growing with lead "
        "time); default: perfect if the configured provider forecasts, else none",
    )
    p.add_argument("--forecast-hours", type=int, help="hours ahead (default: the provider's, else 24)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noisy forecast (default 0)")
    return p


REPORT_FILES = ("report.json", "report.html")


def check_out(out: Path) -> str | None:
    """Why the report cannot be written to ``out``, or None; creates the directory if it is missing.

    Checked before the replay, which can take a while: its results must not be lost to a typo.
    """
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a directory"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"--out {out}: cannot create the directory: {error.strerror or error}"
    for name in REPORT_FILES:
        target = out / name
        if target.is_dir():
            return f"--out {out}: {name} is a directory"
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=".simulate-probe-"):
            pass
    except OSError as error:
        return f"--out {out}: not writable: {error.strerror or error}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    command_line = parser()
    reject_unknown_options(command_line, arguments)
    args = command_line.parse_args(arguments)
    if args.start is not None and args.end is not None and args.start >= args.end:
        command_line.error(
            f"--start {args.start.isoformat()} must be before --end {args.end.isoformat()} "
            "(--end is the first hour dropped)"
        )
    # The engine reaches the Kubernetes client (through the evictor), whose import already opens a
    # socket; --help and usage errors must exit before that.
    from rebalancer.simulate.engine import REPORTED, Simulator  # noqa: PLC0415
    from rebalancer.simulate.report import write_report  # noqa: PLC0415

    trace_path: Path = args.trace or SAMPLE_TRACE
    terminal = sys.stderr.isatty()
    try:
        config = load_config(args.config)
        workload = load_workload(args.workload, regions=frozenset(config.region_names))
        problem = check_out(args.out)
        if problem is not None:
            print(f"simulate: {problem}", file=sys.stderr)
            return 2
        if args.trace is None:
            print(f"simulate: no --trace given, replaying the bundled sample {trace_path}", file=sys.stderr)
        loading = Progress("loading trace", unit="rows", stream=sys.stderr, terminal=terminal)
        try:
            trace = load_trace(
                trace_path,
                zones={region.zone for region in config.regions},
                intensity=args.intensity,
                start=args.start,
                end=args.end,
                progress=loading,
            )
        finally:
            loading.close()
        if args.forecast_hours is not None and args.forecast_hours < 1:
            raise ValueError(f"--forecast-hours: must be >= 1, got {args.forecast_hours}")
        simulator = Simulator(
            config=config,
            trace=trace,
            workload=workload,
            forecast=ForecastModel(args.forecast) if args.forecast else None,
            forecast_hours=args.forecast_hours,
            seed=args.seed,
        )
    except (ConfigError, WorkloadError, TraceError, ValueError) as error:
        print(f"simulate: {error}", file=sys.stderr)
        return 2
    replay = Progress("replay", unit="hours", stream=sys.stderr, terminal=terminal)
    done = 0

    def hour_done(hours: int) -> None:
        nonlocal done
        done += hours
        replay(done, trace.hours)

    began = time.perf_counter()
    try:
        result = simulator.run(progress=hour_done)
    finally:
        replay.close()
    jobs = None
    if workload.jobs:
        from rebalancer.simulate.jobs import JobReplay  # noqa: PLC0415

        jobs = JobReplay(config=config, trace=trace, workload=workload, forecaster=simulator.forecaster).run()
    seconds = time.perf_counter() - began
    meta = {
        "config": str(args.config),
        "trace": str(trace_path),
        "workload": str(args.workload),
        "intensity": args.intensity,
        "replaySeconds": round(seconds, 2),
        # The planner's rule the moves were judged by (docs/robust-moves.md).
        "rule": {
            "minNetBenefitUsd": config.rebalancer.min_net_benefit_usd,
            "holdHours": config.rebalancer.hold_hours,
            "gapErrorMargin": config.rebalancer.gap_error_margin,
            "historyWindowHours": config.rebalancer.history_window_hours,
        },
    }
    try:
        data = write_report(result, args.out, meta=meta, jobs=jobs)
    except ImportError as error:
        print(f"simulate: {error}: install the plotting extra, pip install 'eco-pulse[sim]'", file=sys.stderr)
        return 2
    except OSError as error:
        # Checked before the replay; this is the directory changing under us (or a full disk).
        print(f"simulate: --out {args.out}: cannot write the report: {error}", file=sys.stderr)
        return 2
    print(
        f"{'policy':<14} {'emissions kg':>14} {'reduction':>10} {'compute':>9} {'migrations':>11} "
        f"{'per pod-day':>12}"
    )
    for name in REPORTED:
        p = data["policies"][name]
        print(
            f"{name:<14} {p['emissionsGrams'] / 1000:>14,.1f} {p['reductionVsCarbonBlindPercent']:>9.1f}% "
            f"{-p['computeCostReductionVsCarbonBlindPercent']:>+8.1f}% "
            f"{p['migrations']:>11} {p['migrationsPerPodDay']:>12.4f}"
        )
    if jobs is not None:
        print_jobs(data["jobs"])
    eco = data["policies"]["ecopulse"]
    if eco["shareOfMovesThatPaid"] is not None:
        print(f"ecopulse: {eco['movesThatPaid']} of {len(eco['moves'])} moves paid in hindsight")
    print(
        f"replayed {trace.hours} hours in {seconds:.1f} s (ecopulse's forecast: {data['meta']['forecast']}); "
        f"report in {args.out}/report.html"
    )
    return 0


def print_jobs(jobs: dict[str, Any]) -> None:
    """The deferral replay's summary: each policy's cut against carbon-blind, and misses."""
    cuts, time_only = jobs["all"]["cutVsCarbonBlindPercent"], jobs["timeOnly"]
    head = f"{'jobs policy':<16} {'emissions kg':>13} {'cut':>7} {'time-only cut':>14}"
    print(f"{head} {'misses':>7} {'delay h':>8}")
    for name, p in jobs["policies"].items():
        only = f"{time_only['cutVsCarbonBlindPercent'][name]:>13.1f}%" if time_only else f"{'-':>14}"
        print(
            f"{name:<16} {p['emissionsGrams'] / 1000:>13,.2f} {cuts[name]:>6.1f}% {only} "
            f"{p['deadlineMisses']:>7} {p['meanDelayHours']:>8.2f}"
        )
    share = jobs["all"]["ecopulseShareOfOracleCutPercent"]
    if share is not None:
        print(f"ecopulse keeps {share:.1f} % of the oracle's cut over all jobs")
