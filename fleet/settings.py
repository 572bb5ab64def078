"""Fleet mode's process settings: read once from the environment, frozen, logged once."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.settings import env_port, redacted


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetProcessSettings:
    config_path: Path | None = None
    # The Karmada API server's kubeconfig (Karmada's own karmada-kubeconfig Secret, mounted); unset:
    # KUBECONFIG, else the service account of the cluster fleet mode runs in.
    karmada_kubeconfig: Path | None = None
    metrics_bind_address: str = "0.0.0.0"  # noqa: S104 - scraped from other pods
    metrics_port: int = 9090
    identity: str = ""  # this replica's name in the leader Lease
    namespace: str = "eco-pulse"  # where the Lease lives on the Karmada API server; never placed
    leader_election: bool = True
    lease_name: str = "eco-pulse-fleet"
    log_level: str = "INFO"
    reload_interval_seconds: float = 2.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FleetProcessSettings:
        env = os.environ if environ is None else environ
        defaults = cls()
        config_raw = env.get("ECOPULSE_CONFIG", "").strip()
        karmada_raw = env.get("ECOPULSE_KARMADA_KUBECONFIG", "").strip()
        return cls(
            config_path=Path(config_raw) if config_raw else None,
            karmada_kubeconfig=Path(karmada_raw) if karmada_raw else None,
            metrics_bind_address=env.get("ECOPULSE_METRICS_BIND_ADDRESS", defaults.metrics_bind_address),
            metrics_port=env_port(env, "ECOPULSE_METRICS_PORT", defaults.metrics_port),
            identity=env.get("POD_NAME") or socket.gethostname(),
            namespace=env.get("POD_NAMESPACE", defaults.namespace),
            leader_election=env.get("ECOPULSE_LEADER_ELECTION", "true").strip().lower() != "false",
            lease_name=env.get("ECOPULSE_LEASE_NAME", defaults.lease_name),
            log_level=env.get("ECOPULSE_LOG_LEVEL", defaults.log_level),
        )

    def redacted(self, environ: Mapping[str, str] | None = None) -> dict[str, object]:
        return redacted(self, environ)
