"""Fleet mode's process settings: read once from the environment, frozen, logged once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from core.settings import ControllerSettings, controller_env


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetProcessSettings(ControllerSettings):
    # The Karmada API server's kubeconfig (Karmada's own karmada-kubeconfig Secret, mounted); unset:
    # KUBECONFIG, else the service account of the cluster fleet mode runs in.
    karmada_kubeconfig: Path | None = None
    lease_name: str = "eco-pulse-fleet"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = os.environ if environ is None else environ
        karmada_raw = env.get("ECOPULSE_KARMADA_KUBECONFIG", "").strip()
        return cls(
            **controller_env(env, defaults=cls()),
            karmada_kubeconfig=Path(karmada_raw) if karmada_raw else None,
        )
