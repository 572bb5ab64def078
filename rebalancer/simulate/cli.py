"""``python -m rebalancer simulate``: replay a grid trace through the rebalancer and compare policies."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from core.cli import program, reject_unknown_options
from core.config import ConfigError, EcoPulseConfiguration, load_config
from core.signals.prices.replay import load_price_history
from core.trace import Trace, TraceError, load_trace, parse_time
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
        prog=program("python -m rebalancer simulate"),
        description="Replay an hourly carbon-intensity trace through Eco-Pulse and compare it with "
        "carbon-blind, static-best and hourly-oracle placement.",
    )
    add_replay_options(p, inputs=("--workload", "SimulatedWorkload YAML"))
    p.add_argument(
        "--prices",
        type=Path,
        help="hourly prices CSV (datetime_utc,region,capacity_type,vcpu_hour_usd,gib_hour_usd; "
        "docs/trace-format.md); default: the configuration's prices",
    )
    return p


def add_replay_options(p: argparse.ArgumentParser, *, inputs: tuple[str, str]) -> None:
    """The options every replay takes (this one and ``python -m simulate fleet``); ``inputs`` is the
    option naming what is replayed, and its help."""
    p.add_argument("--config", required=True, type=Path, help="EcoPulseConfiguration YAML")
    p.add_argument(
        "--trace",
        type=Path,
        help="hourly intensity CSV (optionally .gz), format in docs/trace-format.md; default: the "
        "bundled sample, 2022-01-01 to 2022-04-04 for BR, DE, ES, NO, US-CAL-CISO and stand-ins for IE, "
        "SE-SE3, US-MIDA-PJM (Electricity Maps, ODbL; rebalancer/simulate/data/SOURCES.md)",
    )
    p.add_argument(inputs[0], required=True, type=Path, help=inputs[1])
    p.add_argument("--out", required=True, type=Path, help="directory for report.json and report.html")
    p.add_argument("--intensity", choices=("lifecycle", "direct"), default="lifecycle")
    p.add_argument("--start", type=_time, help="first hour kept (ISO, UTC)")
    p.add_argument("--end", type=_time, help="first hour dropped (ISO, UTC)")
    p.add_argument(
        "--warm-up-hours",
        type=int,
        help="how many of the trace's hours before --start ecopulse runs the cluster through before the "
        "window is counted (its history and placement warm, as in a running deployment); default: all "
        "of them; 0: a fresh install at --start",
    )
    p.add_argument(
        "--forecast",
        choices=[str(m) for m in ForecastModel],
        help="what ecopulse sees ahead: none (current intensities only), perfect (the trace), "
        "persistence (the current value held), noisy (the trace with an error growing with lead "
        "time), history (the embedded forecast from past hours only) or yesterday (the same hour "
        "the day before); default: perfect if the configured provider forecasts, else none",
    )
    p.add_argument("--forecast-hours", type=int, help="hours ahead (default: the provider's, else 24)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noisy forecast (default 0)")


REPORT_FILES = ("report.json", "report.html")
T = TypeVar("T")


def split_trace(trace: Trace, start: datetime | None) -> tuple[Trace | None, Trace]:
    """The hours before ``start`` (the warm-up, None if there are none) and the hours from it on."""
    cut = 0 if start is None else sum(1 for t in trace.times if t < start)
    if cut == 0:
        return None, trace

    def part(times: slice) -> Trace:
        return Trace(times=trace.times[times], zones={zone: v[times] for zone, v in trace.zones.items()})

    return part(slice(None, cut)), part(slice(cut, None))


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


def load_window(
    trace_path: Path, *, config: EcoPulseConfiguration, args: argparse.Namespace, terminal: bool
) -> tuple[Trace | None, Trace]:
    """The warm-up hours (None if none) and the window, for the configured regions' zones, as the
    options of ``add_replay_options`` ask."""
    intensity: str = args.intensity
    start: datetime | None = args.start
    end: datetime | None = args.end
    warm_up_hours: int | None = args.warm_up_hours
    loading = Progress("loading trace", unit="rows", stream=sys.stderr, terminal=terminal)
    # A running deployment has its past: the trace's hours before --start (all of them, or the last
    # --warm-up-hours) run the simulated cluster under ecopulse, unaccounted, so the window starts
    # with its history full and its pods where it put them.
    warm_from = None
    if start is not None and warm_up_hours is not None:
        warm_from = start - timedelta(hours=warm_up_hours)
    try:
        loaded = load_trace(
            trace_path,
            zones={region.zone for region in config.regions},
            intensity=intensity,
            start=warm_from,
            end=end,
            progress=loading,
        )
    finally:
        loading.close()
    warm_up, trace = split_trace(loaded, start)
    if not trace.hours:  # only warm-up hours: the loader names the empty period and the trace's own
        load_trace(trace_path, intensity=intensity, start=start, end=end)
    if warm_up_hours is not None and warm_up_hours < 0:
        raise ValueError(f"--warm-up-hours: must be >= 0, got {warm_up_hours}")
    return warm_up, trace


def with_progress(run: Callable[[Callable[[int], None]], T], *, hours: int, terminal: bool) -> T:
    """``run(progress)``, its hours shown on stderr as they are replayed."""
    replay = Progress("replay", unit="hours", stream=sys.stderr, terminal=terminal)
    done = 0

    def hour_done(step: int) -> None:
        nonlocal done
        done += step
        replay(done, hours)

    try:
        return run(hour_done)
    finally:
        replay.close()


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
    from rebalancer.simulate.engine import Simulator  # noqa: PLC0415
    from rebalancer.simulate.report import (  # noqa: PLC0415
        share_of_oracle_text,
        text_table,
        warm_up_text,
        write_report,
    )

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
        warm_up, trace = load_window(trace_path, config=config, args=args, terminal=terminal)
        if args.forecast_hours is not None and args.forecast_hours < 1:
            raise ValueError(f"--forecast-hours: must be >= 1, got {args.forecast_hours}")
        simulator = Simulator(
            config=config,
            trace=trace,
            workload=workload,
            forecast=ForecastModel(args.forecast) if args.forecast else None,
            forecast_hours=args.forecast_hours,
            seed=args.seed,
            warm_up=warm_up,
            prices=load_price_history(args.prices, regions=frozenset(config.region_names))
            if args.prices
            else None,
        )
    except (ConfigError, WorkloadError, TraceError, ValueError) as error:
        print(f"simulate: {error}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    result = with_progress(simulator.run, hours=trace.hours, terminal=terminal)
    jobs = None
    if workload.jobs:
        from rebalancer.simulate.jobs import JobReplay  # noqa: PLC0415

        jobs = JobReplay(
            config=config, trace=trace, workload=workload, forecaster=simulator.forecaster, warm_up=warm_up
        ).run()
    seconds = time.perf_counter() - began
    meta = {
        "config": str(args.config),
        "trace": str(trace_path),
        "workload": str(args.workload),
        "intensity": args.intensity,
        # Which prices the costs are at: the replayed file, or the configuration's (bundled or prices:).
        "prices": str(args.prices) if args.prices else "configuration (bundled table and prices:)",
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
    if workload.workloads:  # a file of jobs only has no pods to show
        print(warm_up_text(data["meta"]))
        print(text_table(data))
        print(share_of_oracle_text(data))
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
