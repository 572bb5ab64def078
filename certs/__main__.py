"""`python -m certs issue ...`: write a Service's CA and serving cert, print the caBundle.

stdout carries only the base64 caBundle, so `CA_BUNDLE=$(python -m certs issue ...)` works;
everything meant for people goes to stderr. Bad input exits 2 with one line and writes nothing.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from certs.issue import (
    LEAF_VALIDITY_DAYS,
    MAX_VALIDITY_DAYS,
    CertsError,
    ca_bundle_b64,
    issue_ca,
    issue_serving_cert,
    service_dns_names,
    write_bundle,
)

EXIT_BAD_INPUT = 2
# As the eco-pulse command runs it (it sets argv[0] to `eco-pulse certs`), else as `python -m`.
_PROG = sys.argv[0] if sys.argv[0:1] == ["eco-pulse certs"] else "python -m certs"
_MAX_CA_COMMON_NAME_CHARS = 64


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    # argparse would print the whole usage block and exit; we want one line and a return code.
    def error(self, message: str) -> NoReturn:
        usage = self.format_usage().strip().replace("\n", " ")
        raise _UsageError(f"{self.prog}: error: {message} ({usage}; see --help)")


def _package_version() -> str:
    # certs is a leaf (it imports nothing of ours), so it reads the package metadata itself.
    try:
        return importlib.metadata.version("eco-pulse")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=_PROG, description="Issue TLS certificates for Eco-Pulse.")
    parser.add_argument("--version", action="version", version=f"eco-pulse certs {_package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    issue = commands.add_parser(
        "issue",
        help="issue a CA and a serving cert for a Service; print the base64 caBundle",
        description=(
            "Write ca.crt, tls.crt and tls.key (0600) into DIR and print the base64 caBundle "
            "for the webhook configuration on stdout."
        ),
    )
    issue.add_argument("--service", required=True, metavar="NAME", help="the Service's name")
    issue.add_argument("--namespace", required=True, metavar="NS", help="the Service's namespace")
    issue.add_argument("--out", required=True, type=Path, metavar="DIR", help="created if missing")
    issue.add_argument("--dns", action="extend", nargs="+", default=[], metavar="NAME", help="extra DNS SANs")
    issue.add_argument("--ip", action="extend", nargs="+", default=[], metavar="ADDR", help="IP SANs")
    issue.add_argument(
        "--validity-days",
        type=_validity_days,
        default=LEAF_VALIDITY_DAYS,
        metavar="N",
        help=f"serving cert lifetime in days (default {LEAF_VALIDITY_DAYS})",
    )
    issue.add_argument(
        "--keep-ca-key",
        action="store_true",
        help="also write ca.key (0600) so the CA can sign more certificates later",
    )
    return parser


def _validity_days(text: str) -> int:
    # Checked here too so the message names the flag, not the library parameter.
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {text!r}") from None
    if not 1 <= days <= MAX_VALIDITY_DAYS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_VALIDITY_DAYS} days, got {days}")
    return days


def main(argv: Sequence[str] | None = None) -> int:
    try:
        arguments = sys.argv[1:] if argv is None else list(argv)
        parser = build_parser()
        _reject_unknown_options(parser, arguments)
        args = parser.parse_args(arguments)
        return _issue(args)
    except _UsageError as exc:
        _fail(str(exc))
    except CertsError as exc:
        _fail(f"{_PROG}: error: {exc}")
    return EXIT_BAD_INPUT


def _reject_unknown_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    # Name an unknown --option first: argparse would only say which required ones are missing.
    # (certs is a leaf, so this mirrors core.cli.reject_unknown_options for its two levels.)
    commands = {
        name: sub
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name, sub in action.choices.items()
    }
    current = parser
    for word in argv:
        if word == "--":
            return
        if current is parser and word in commands:
            current = commands[word]
            continue
        name = word.split("=", 1)[0]
        if name.startswith("--") and not any(
            known.startswith(name) for known in current._option_string_actions
        ):
            current.error(f"unrecognized arguments: {word}")


def _issue(args: argparse.Namespace) -> int:
    service: str = args.service
    namespace: str = args.namespace
    service_dns_names(service, namespace)  # validate before spending time on keys
    ca_common_name = f"{service}.{namespace} webhook CA"
    if len(ca_common_name) > _MAX_CA_COMMON_NAME_CHARS:
        ca_common_name = "eco-pulse webhook CA"
    ca = issue_ca(ca_common_name)
    leaf = issue_serving_cert(
        ca,
        service=service,
        namespace=namespace,
        dns_names=args.dns,
        ip_addresses=args.ip,
        validity_days=args.validity_days,
    )
    paths = write_bundle(args.out, ca=ca, leaf=leaf, keep_ca_key=args.keep_ca_key)
    written = [paths.ca_cert, paths.tls_cert, paths.tls_key] + ([paths.ca_key] if paths.ca_key else [])
    print(
        f"wrote {', '.join(p.name for p in written)} to {args.out}; "
        f"serving cert for {service}.{namespace}.svc expires {leaf.cert.not_valid_after_utc:%Y-%m-%d}",
        file=sys.stderr,
    )
    print(ca_bundle_b64(ca.cert_pem))
    return 0


def _fail(message: str) -> None:
    print(message.replace("\n", " "), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
