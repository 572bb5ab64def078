"""Helpers every app's process settings share: reading typed values from the environment, and the
one log-safe view of them (secrets shown only as set or unset)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

# Provider credentials (from a Secret): never logged, only whether they are there.
SECRET_ENV = ("ELECTRICITYMAPS_API_TOKEN", "WATTTIME_USERNAME", "WATTTIME_PASSWORD")


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerSettings:
    """The process settings every controller app shares; each app subclasses it, overriding the
    Lease name and adding its own."""

    config_path: Path | None = None
    metrics_bind_address: str = "0.0.0.0"  # noqa: S104 - scraped from other pods
    metrics_port: int = 9090
    identity: str = ""  # this replica's name in the leader Lease
    namespace: str = "eco-pulse"  # where the Lease lives; never placed nor moved
    leader_election: bool = True
    lease_name: str = "eco-pulse"
    log_level: str = "INFO"
    reload_interval_seconds: float = 2.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = os.environ if environ is None else environ
        defaults = cls()
        config_raw = env.get("ECOPULSE_CONFIG", "").strip()
        return cls(
            config_path=Path(config_raw) if config_raw else None,
            metrics_bind_address=env.get("ECOPULSE_METRICS_BIND_ADDRESS", defaults.metrics_bind_address),
            metrics_port=env_port(env, "ECOPULSE_METRICS_PORT", defaults.metrics_port),
            identity=env.get("POD_NAME") or socket.gethostname(),  # this replica's name in the Lease
            namespace=env.get("POD_NAMESPACE", defaults.namespace),
            leader_election=env.get("ECOPULSE_LEADER_ELECTION", "true").strip().lower() != "false",
            lease_name=env.get("ECOPULSE_LEASE_NAME", defaults.lease_name),
            log_level=env.get("ECOPULSE_LOG_LEVEL", defaults.log_level),
            **cls.own_env(env),
        )

    @classmethod
    def own_env(cls, env: Mapping[str, str]) -> dict[str, Any]:
        """What an app's subclass reads from ``env`` on top of the shared settings (its own fields)."""
        return {}

    def redacted(self, environ: Mapping[str, str] | None = None) -> dict[str, object]:
        return redacted(self, environ)


class SettingsError(ValueError):
    """An environment variable holds something unusable; the message names it."""


def env_port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: must be a port number, got {raw[:20]!r}") from None
    if not 0 <= port <= 65535:
        raise SettingsError(f"{name}: must be 0..65535, got {port}")
    return port


def env_positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: must be a number, got {raw[:20]!r}") from None
    if not value > 0:
        raise SettingsError(f"{name}: must be > 0, got {raw[:20]!r}")
    return value


def env_positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: must be a whole number, got {raw[:20]!r}") from None
    if value <= 0:
        raise SettingsError(f"{name}: must be > 0, got {value}")
    return value


def redacted(settings: Any, environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """What to log at start: every field of a settings dataclass, and only whether each secret is set."""
    env = os.environ if environ is None else environ
    fields: dict[str, object] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()}
    fields.update({name: ("set" if env.get(name) else "unset") for name in SECRET_ENV})
    return fields
