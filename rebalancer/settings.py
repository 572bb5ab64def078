"""The rebalancer's process settings: read once from the environment, frozen, logged once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.settings import controller_env, redacted


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
        return cls(**controller_env(env, defaults=cls()))

    def redacted(self, environ: Mapping[str, str] | None = None) -> dict[str, object]:
        return redacted(self, environ)
