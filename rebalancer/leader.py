"""The rebalancer's leader election: core's Lease elector with the rebalancer's Lease and gauge."""

from __future__ import annotations

from prometheus_client import Gauge

from core.kube import lease

LEADER = Gauge(
    "ecopulse_rebalancer_leader",
    "1 while this process holds the rebalancer leader Lease and may evict, else 0.",
)

DEFAULT_LEASE_NAME = "eco-pulse-rebalancer"


class LeaderElector(lease.LeaderElector):
    """Only the holder of the ``eco-pulse-rebalancer`` Lease evicts."""

    default_lease_name = DEFAULT_LEASE_NAME
    leader_gauge = LEADER
