"""The rebalancer's process settings: read once from the environment, frozen, logged once."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import ControllerSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class RebalancerProcessSettings(ControllerSettings):
    lease_name: str = "eco-pulse-rebalancer"
