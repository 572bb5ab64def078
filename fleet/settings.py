"""Fleet mode's process settings: read once from the environment, frozen, logged once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.settings import controller_env, redacted


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
        karmada_raw = env.get("ECOPULSE_KARMADA_KUBECONFIG", "").strip()
        return cls(
            **controller_env(env, defaults=cls()),
            karmada_kubeconfig=Path(karmada_raw) if karmada_raw else None,
        )

    def redacted(self, environ: Mapping[str, str] | None = None) -> dict[str, object]:
        return redacted(self, environ)
