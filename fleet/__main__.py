"""python -m fleet: place the workloads of a Karmada fleet in the member clusters where they cost
least, carbon priced in, and move them only when moving pays. Parsed before anything starts."""

import sys

from core.cli import app_parser

ENVIRONMENT = (
    ("ECOPULSE_CONFIG", "configuration file (default: the embedded default, which runs dry)"),
    ("ECOPULSE_KARMADA_KUBECONFIG", "the Karmada API server's kubeconfig (default: KUBECONFIG)"),
    ("ECOPULSE_METRICS_BIND_ADDRESS", "metrics bind address (0.0.0.0)"),
    ("ECOPULSE_METRICS_PORT", "plain HTTP /metrics port (9090)"),
    ("ECOPULSE_LEADER_ELECTION", "take the Lease before acting (true)"),
    ("ECOPULSE_LEASE_NAME", "the Lease's name on the Karmada API server (eco-pulse-fleet)"),
    ("ECOPULSE_LOG_LEVEL", "log level (INFO); logs are one JSON object per line"),
    ("POD_NAME", "this replica's identity in the Lease"),
    ("POD_NAMESPACE", "where the Lease lives on the Karmada API server; never placed"),
    ("KUBECONFIG", "API server to talk to when ECOPULSE_KARMADA_KUBECONFIG is not set"),
)

if sys.argv[1:2] == ["release-overdue"]:
    from fleet.janitor import main as release_overdue

    sys.exit(release_overdue(sys.argv[2:]))

parser = app_parser(
    app="fleet",
    description=(
        "Run Eco-Pulse fleet mode: rank the member clusters of a Karmada fleet for each "
        "PropagationPolicy and write the placement when moving pays. Dry run unless the "
        "configuration says fleet.dryRun: false."
    ),
    environment=ENVIRONMENT,
)
commands = parser.add_subparsers(dest="command", metavar="COMMAND")
commands.add_parser(
    "release-overdue",
    help="release every held Job on the Karmada API server past its release-by, then exit (the janitor)",
    add_help=False,
)
parser.parse_args(sys.argv[1:])

from fleet.main import main  # noqa: E402  (after parsing: --help must not import or start anything)

sys.exit(main())
