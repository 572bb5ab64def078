"""python -m webhook: the mutating admission webhook and the scheduler extender, over HTTPS."""

import sys

from core.cli import app_parser

ENVIRONMENT = (
    ("ECOPULSE_CONFIG", "configuration file (default: the embedded default)"),
    ("ECOPULSE_TLS_DIR", "directory holding tls.crt and tls.key, re-read when they change"),
    ("ECOPULSE_BIND_ADDRESS", "HTTPS bind address (0.0.0.0)"),
    ("ECOPULSE_WEBHOOK_PORT", "HTTPS port for /mutate, /filter, /prioritize, probes (8443)"),
    ("ECOPULSE_METRICS_BIND_ADDRESS", "metrics bind address (0.0.0.0)"),
    ("ECOPULSE_METRICS_PORT", "plain HTTP /metrics port (9090)"),
    ("ECOPULSE_WEBHOOK_DEADLINE_SECONDS", "our own deadline per review (0.5)"),
    ("ECOPULSE_EXTENDER_DEADLINE_SECONDS", "the extender's own deadline (0.5)"),
    ("ECOPULSE_ADMISSION_MAX_BODY_BYTES", "largest /mutate body read, else 413 (6 MiB)"),
    ("ECOPULSE_EXTENDER_MAX_BODY_BYTES", "largest /filter, /prioritize body read, else 413 (8 MiB)"),
    ("ECOPULSE_BODY_MEMORY_MAX_BYTES", "memory for bodies read at once (14 B/byte), else 503 (128 MiB)"),
    ("ECOPULSE_HEADER_TIMEOUT_SECONDS", "a request's headers must be in within this long (5)"),
    ("ECOPULSE_BODY_TIMEOUT_SECONDS", "a request's body must be in within this long (10)"),
    ("ECOPULSE_KEEP_ALIVE_SECONDS", "idle time allowed between requests on a connection (120)"),
    ("ECOPULSE_MAX_CONNECTIONS", "connections beyond this many are closed at once (500)"),
    ("ECOPULSE_RELOAD_INTERVAL_SECONDS", "how often mounted files are checked for changes"),
    ("ECOPULSE_WATCH_CLUSTER", "use a reachable cluster: watch namespaces and nodes, post Events (true)"),
    ("ECOPULSE_RELEASER", "who releases held Jobs: rebalancer (one cluster) or fleet (on Karmada)"),
    ("ECOPULSE_RELEASER_LEASE", "namespace/name of the releaser's Lease; no hold while it is stale"),
    ("ECOPULSE_LOG_LEVEL", "log level (INFO); logs are one JSON object per line"),
    ("POD_NAMESPACE", "our own namespace, never mutated"),
)

app_parser(
    app="webhook",
    description="Serve the Eco-Pulse mutating admission webhook and scheduler extender (TLS).",
    environment=ENVIRONMENT,
).parse_args()

from webhook.server import main  # noqa: E402  (after parsing: --help must not import or start anything)

sys.exit(main())
