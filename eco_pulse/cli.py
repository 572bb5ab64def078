"""``eco-pulse COMMAND [ARGS]``: each command is an app's ``python -m`` entry point, unchanged.

The command names the module to run and nothing is imported before it is known: the app's own
``__main__`` parses its arguments before any heavy import, so ``eco-pulse webhook --help`` touches
no cluster, port or file, exactly as ``python -m webhook --help`` does. ``sys.argv[0]`` becomes
``eco-pulse COMMAND``, which the apps' parsers show as their program name (core.cli.program).
The modules are named as strings and run with runpy: this package imports no app.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from collections.abc import Sequence

PROGRAM = "eco-pulse"
# command -> (the module run as __main__, the arguments put before the user's, its one-line help)
COMMANDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "webhook": ("webhook", (), "serve the mutating admission webhook and scheduler extender (TLS)"),
    "rebalancer": ("rebalancer", (), "move running pods to a better region when moving pays"),
    "fleet": ("fleet", (), "place a Karmada fleet's workloads in the member clusters where they cost least"),
    "simulate": (
        "simulate",
        (),
        "replay an hourly grid trace through the planner (`simulate fleet`: a fleet's deferrable Jobs)",
    ),
    "report": ("report", (), "avoided CO2 and savings per namespace and region, from Prometheus"),
    "certs": ("certs", (), "issue TLS certificates for the webhook"),
}


def _version() -> str:
    # The package metadata, as certs reads it: importing core here would import before parsing.
    import importlib.metadata  # noqa: PLC0415

    try:
        return importlib.metadata.version("eco-pulse")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Eco-Pulse: carbon- and cost-aware placement for Kubernetes. "
        f"`{PROGRAM} COMMAND --help` for a command's options and environment.",
    )
    parser.add_argument("--version", action="version", version=f"{PROGRAM} {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, _, summary) in COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] not in COMMANDS:
        # --help, --version, nothing, or an unknown command: argparse answers (and exits).
        _parser().parse_args(arguments)
        return 2  # not reached: a valid command was not given
    command, *rest = arguments
    module, before, _ = COMMANDS[command]
    sys.argv = [f"{PROGRAM} {command}", *before, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=False)
    return 0
