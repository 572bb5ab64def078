"""The rebalancer's process settings: read once from the environment, frozen, logged once."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

SECRET_ENV = ("ELECTRICITYMAPS_API_TOKEN", "WATTTIME_USERNAME", "WATTTIME_PASSWORD")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class RebalancerProcessSettings:
    config_path: Path | None = None
    metrics_bind_address: str = "0.0.0.0"  # noqa: S104 - scraped from other pods
    metrics_port: int = 9090
    identity: str = ""  # this replica's name in the leader Lease
    namespace: str = "eco-pulse"  # where the Lease lives; also never evicted from
    leader_election: bool = True
    lease_name: str = "eco-pulse-rebalancer"
    log_level: str = "INFO"
    reload_interval_seconds: float = 2.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RebalancerProcessSettings:
        env = os.environ if environ is None else environ
        defaults = cls()
        config_raw = env.get("ECOPULSE_CONFIG", "").strip()
        port_raw = env.get("ECOPULSE_METRICS_PORT", "").strip()
        try:
            port = int(port_raw) if port_raw else defaults.metrics_port
        except ValueError:
            raise SettingsError(
                f"ECOPULSE_METRICS_PORT: must be a port number, got {port_raw[:20]!r}"
            ) from None
        if not 0 <= port <= 65535:
            raise SettingsError(f"ECOPULSE_METRICS_PORT: must be 0..65535, got {port}")
        return cls(
            config_path=Path(config_raw) if config_raw else None,
            metrics_bind_address=env.get("ECOPULSE_METRICS_BIND_ADDRESS", defaults.metrics_bind_address),
            metrics_port=port,
            identity=env.get("POD_NAME") or socket.gethostname(),
            namespace=env.get("POD_NAMESPACE", defaults.namespace),
            leader_election=env.get("ECOPULSE_LEADER_ELECTION", "true").strip().lower() != "false",
            lease_name=env.get("ECOPULSE_LEASE_NAME", defaults.lease_name),
            log_level=env.get("ECOPULSE_LOG_LEVEL", defaults.log_level),
        )

    def redacted(self, environ: Mapping[str, str] | None = None) -> dict[str, object]:
        env = os.environ if environ is None else environ
        fields: dict[str, object] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        fields.update({name: ("set" if env.get(name) else "unset") for name in SECRET_ENV})
        return fields
