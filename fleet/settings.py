"""Fleet mode's process settings: read once from the environment, frozen, logged once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import ControllerSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetProcessSettings(ControllerSettings):
    # The Karmada API server's kubeconfig (Karmada's own karmada-kubeconfig Secret, mounted); unset:
    # KUBECONFIG, else the service account of the cluster fleet mode runs in.
    karmada_kubeconfig: Path | None = None
    lease_name: str = "eco-pulse-fleet"

    @classmethod
    def own_env(cls, env: Mapping[str, str]) -> dict[str, Any]:
        karmada_raw = env.get("ECOPULSE_KARMADA_KUBECONFIG", "").strip()
        return {"karmada_kubeconfig": Path(karmada_raw) if karmada_raw else None}
