"""Whether another process's leader Lease is fresh, read from a watch (never on a request path). Pure.

The webhook holds a Job only while the controller that releases holds (the rebalancer's leader)
is alive: its Lease has a holder and was renewed within ``leaseDurationSeconds`` plus a
tolerance for clock skew between the nodes. A Lease we have not seen, a released one (no
holder) or a watch that cannot reach the API server all read as stale: nobody would release.
The watch is core.kube.caches.lease_reflector.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseState:
    holder: str
    renewed_at: datetime | None
    duration_seconds: int


def slim_lease(obj: Mapping[str, Any]) -> LeaseState | None:
    spec = obj.get("spec") or {}
    renew = spec.get("renewTime")
    renewed_at: datetime | None = None
    if isinstance(renew, str):
        try:
            renewed_at = datetime.fromisoformat(renew.replace("Z", "+00:00"))
        except ValueError:
            renewed_at = None
    duration = spec.get("leaseDurationSeconds")
    return LeaseState(
        holder=str(spec.get("holderIdentity") or ""),
        renewed_at=renewed_at,
        duration_seconds=duration if isinstance(duration, int) and not isinstance(duration, bool) else 0,
    )


def lease_fresh(state: LeaseState | None, *, now: datetime, tolerance_seconds: float) -> bool:
    """Held, and renewed no longer ago than its duration plus ``tolerance_seconds``. Pure."""
    if state is None or not state.holder or state.renewed_at is None:
        return False
    return now - state.renewed_at <= timedelta(seconds=state.duration_seconds + tolerance_seconds)
