"""The command-line surface every entry point shares: usage, --help and --version that never act.

Parsing happens before any heavy import or side effect, so ``--help``, ``--version`` and a typo
print and exit without touching a cluster, a port or a file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core.version import VERSION

COMMAND = "eco-pulse"


def program(default: str) -> str:
    """The program name a usage line shows: ``default`` (``python -m APP ...``), or as the
    ``eco-pulse`` command ran it (it sets ``sys.argv[0]`` to ``eco-pulse COMMAND``, see eco_pulse.cli):
    ``python -m rebalancer simulate`` is ``eco-pulse simulate`` or ``eco-pulse rebalancer simulate``."""
    first = sys.argv[0].split() if sys.argv else []
    words = default.removeprefix("python -m ").split()
    if len(first) != 2 or first[0] != COMMAND or first[1] not in words:
        return default
    return " ".join([COMMAND, *words[words.index(first[1]) :]])


def app_parser(
    *, app: str, description: str, environment: Sequence[tuple[str, str]]
) -> argparse.ArgumentParser:
    """A parser for ``python -m APP``; its help lists the environment variables the app reads."""
    width = max(len(name) for name, _ in environment)
    epilog = "environment:\n" + "\n".join(f"  {name.ljust(width)}  {doc}" for name, doc in environment)
    parser = argparse.ArgumentParser(
        prog=program(f"python -m {app}"),
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"eco-pulse {app} {VERSION}")
    return parser


def reject_unknown_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Name an unknown ``--option`` first: argparse would only say which required ones are missing."""
    for word in argv:
        if word == "--":
            return
        name = word.split("=", 1)[0]
        # argparse also takes a prefix of an option (--conf for --config); so do we.
        if name.startswith("--") and not any(
            known.startswith(name) for known in parser._option_string_actions
        ):
            parser.error(f"unrecognized arguments: {word}")
