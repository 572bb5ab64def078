"""The webhook's process settings: read once from the environment, frozen, logged once (redacted)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.settings import SettingsError, env_port, env_positive, env_positive_int, redacted
from webhook.admission.review import MAX_BODY_BYTES as ADMISSION_MAX_BODY_BYTES
from webhook.extender.types import MAX_BODY_BYTES as EXTENDER_MAX_BODY_BYTES


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSettings:
    tls_dir: Path = Path("/etc/ecopulse/tls")
    bind_address: str = "0.0.0.0"  # noqa: S104 - a webhook must be reachable from the API server
    port: int = 8443
    metrics_bind_address: str = "0.0.0.0"  # noqa: S104
    metrics_port: int = 9090
    config_path: Path | None = None
    # Our own deadline; the MutatingWebhookConfiguration's timeoutSeconds (2 s) is well above it.
    deadline_seconds: float = 0.5
    own_namespace: str = ""
    log_level: str = "INFO"
    reload_interval_seconds: float = 2.0
    # Watch namespaces (opt-out label, ecopulse.io/ annotations) and nodes (the extender's
    # NodeNames mode) when a cluster is reachable.
    watch_cluster: bool = True
    # The Lease of the controller that releases held Jobs (the rebalancer's), namespace/name:
    # the webhook holds a Job only while it is fresh (docs/deferral.md).
    releaser_lease: str = "eco-pulse/eco-pulse-rebalancer"
    # Which app releases held Jobs: "rebalancer" (one cluster) or "fleet" (fleet mode, with this
    # webhook on the Karmada API server): whose dryRun says the releaser acts.
    releaser: str = "rebalancer"
    # Under the scheduler's extender httpTimeout (1 s in the shipped configuration).
    extender_deadline_seconds: float = 0.5
    # Body caps per route, from the largest real requests (bench/request_sizes.py, docs/hardening.md);
    # a body over its cap is answered 413 without being read whole.
    admission_max_body_bytes: int = ADMISSION_MAX_BODY_BYTES
    extender_max_body_bytes: int = EXTENDER_MAX_BODY_BYTES
    # The memory all bodies being read at once may take (each charged at 14 bytes per byte, what
    # the worst JSON costs decoded: webhook.bodies); beyond it: 503. With the process's ~61 MiB
    # and 500 idle connections (~23 MiB) this stays under the 256 Mi container limit.
    body_memory_max_bytes: int = 128 * 1024 * 1024
    # A connection is held only while it makes progress (webhook.transport): its headers within
    # this long of the connection or of the request's first byte, its body within this long of
    # the headers. The API server and the scheduler send each request at once.
    header_timeout_seconds: float = 5.0
    body_timeout_seconds: float = 10.0
    # Idle time allowed between requests on one connection (uvicorn's keep-alive timeout).
    # Longer than the API server keeps an idle connection to a webhook (90 s, net/http's
    # default): the client closes first, so a review is never sent on a connection we close.
    keep_alive_seconds: int = 120
    # Connections beyond this many are closed as soon as they are made (docs/hardening.md).
    max_connections: int = 500

    @property
    def cert_file(self) -> Path:
        return self.tls_dir / "tls.crt"

    @property
    def key_file(self) -> Path:
        return self.tls_dir / "tls.key"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if environ is None else environ
        defaults = cls()
        config_raw = env.get("ECOPULSE_CONFIG", "").strip()
        return cls(
            tls_dir=Path(env.get("ECOPULSE_TLS_DIR", str(defaults.tls_dir))),
            bind_address=env.get("ECOPULSE_BIND_ADDRESS", defaults.bind_address),
            port=env_port(env, "ECOPULSE_WEBHOOK_PORT", defaults.port),
            metrics_bind_address=env.get("ECOPULSE_METRICS_BIND_ADDRESS", defaults.metrics_bind_address),
            metrics_port=env_port(env, "ECOPULSE_METRICS_PORT", defaults.metrics_port),
            config_path=Path(config_raw) if config_raw else None,
            deadline_seconds=env_positive(
                env, "ECOPULSE_WEBHOOK_DEADLINE_SECONDS", defaults.deadline_seconds
            ),
            own_namespace=env.get("POD_NAMESPACE", defaults.own_namespace),
            log_level=env.get("ECOPULSE_LOG_LEVEL", defaults.log_level),
            reload_interval_seconds=env_positive(
                env, "ECOPULSE_RELOAD_INTERVAL_SECONDS", defaults.reload_interval_seconds
            ),
            watch_cluster=env.get("ECOPULSE_WATCH_CLUSTER", "true").strip().lower() != "false",
            releaser_lease=_lease_ref(env.get("ECOPULSE_RELEASER_LEASE", defaults.releaser_lease)),
            releaser=_releaser(env.get("ECOPULSE_RELEASER", defaults.releaser)),
            extender_deadline_seconds=env_positive(
                env, "ECOPULSE_EXTENDER_DEADLINE_SECONDS", defaults.extender_deadline_seconds
            ),
            admission_max_body_bytes=env_positive_int(
                env, "ECOPULSE_ADMISSION_MAX_BODY_BYTES", defaults.admission_max_body_bytes
            ),
            extender_max_body_bytes=env_positive_int(
                env, "ECOPULSE_EXTENDER_MAX_BODY_BYTES", defaults.extender_max_body_bytes
            ),
            body_memory_max_bytes=env_positive_int(
                env, "ECOPULSE_BODY_MEMORY_MAX_BYTES", defaults.body_memory_max_bytes
            ),
            header_timeout_seconds=env_positive(
                env, "ECOPULSE_HEADER_TIMEOUT_SECONDS", defaults.header_timeout_seconds
            ),
            body_timeout_seconds=env_positive(
                env, "ECOPULSE_BODY_TIMEOUT_SECONDS", defaults.body_timeout_seconds
            ),
            keep_alive_seconds=env_positive_int(
                env, "ECOPULSE_KEEP_ALIVE_SECONDS", defaults.keep_alive_seconds
            ),
            max_connections=env_positive_int(env, "ECOPULSE_MAX_CONNECTIONS", defaults.max_connections),
        )

    def redacted(self, environ: Mapping[str, str] | None = None) -> dict[str, object]:
        return redacted(self, environ)


def _releaser(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("rebalancer", "fleet"):
        raise SettingsError(f"ECOPULSE_RELEASER: must be rebalancer or fleet, got {raw[:60]!r}")
    return value


def _lease_ref(raw: str) -> str:
    namespace, _, name = raw.strip().partition("/")
    if not namespace or not name or "/" in name:
        raise SettingsError(f"ECOPULSE_RELEASER_LEASE: must be namespace/name, got {raw[:60]!r}")
    return f"{namespace}/{name}"
