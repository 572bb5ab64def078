"""python -m rebalancer: move running pods to a better region when, and only when, moving pays.

``python -m rebalancer simulate ...`` replays a grid trace instead (see rebalancer.simulate). The
savings report from Prometheus is its own command, ``python -m report`` (it needs no rebalancer).
Each subcommand parses its own arguments; everything else is parsed here before anything starts.
"""

import argparse
import sys

from core.cli import app_parser

ENVIRONMENT = (
    ("ECOPULSE_CONFIG", "configuration file (default: the embedded default, which runs dry)"),
    ("ECOPULSE_METRICS_BIND_ADDRESS", "metrics bind address (0.0.0.0)"),
    ("ECOPULSE_METRICS_PORT", "plain HTTP /metrics port (9090)"),
    ("ECOPULSE_LEADER_ELECTION", "take the Lease before acting (true)"),
    ("ECOPULSE_LEASE_NAME", "the Lease's name (eco-pulse-rebalancer)"),
    ("ECOPULSE_LOG_LEVEL", "log level (INFO); logs are one JSON object per line"),
    ("POD_NAME", "this replica's identity in the Lease"),
    ("POD_NAMESPACE", "where the Lease lives; never evicted from"),
    ("KUBECONFIG", "cluster to talk to when not running in a pod"),
)

arguments = sys.argv[1:]
if arguments[:1] == ["simulate"]:
    from rebalancer.simulate.cli import main as simulate

    sys.exit(simulate(arguments[1:]))
if arguments[:1] == ["release-overdue"]:
    from rebalancer.janitor import main as release_overdue

    sys.exit(release_overdue(arguments[1:]))

parser = app_parser(
    app="rebalancer",
    description=(
        "Run the Eco-Pulse rebalancer: evict running pods to a better region when the net benefit "
        "pays. Dry run unless the configuration says rebalancer.dryRun: false."
    ),
    environment=ENVIRONMENT,
)
commands = parser.add_subparsers(dest="command", metavar="COMMAND")
commands.add_parser(
    "simulate", help="replay a grid trace through the planner (see simulate --help)", add_help=False
)
commands.add_parser(
    "release-overdue",
    help="release every held Job past its release-by, then exit (the janitor; see release-overdue --help)",
    add_help=False,
)
namespace: argparse.Namespace = parser.parse_args(arguments)

from rebalancer.main import main  # noqa: E402  (after parsing: --help must not import or start anything)

sys.exit(main())
