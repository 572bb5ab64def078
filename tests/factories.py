"""Builders of the cache records tests feed to the planner and the accountant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.kube.caches import PodRecord
from core.model import PodDemand


def pod_record(name: str, *, started_at: datetime, node_name: str, **overrides: Any) -> PodRecord:
    """A running, ready ReplicaSet pod of 'shop' on ``node_name``; ``overrides`` change any field."""
    fields: dict[str, Any] = dict(
        namespace="shop",
        name=name,
        uid=f"uid-{name}",
        node_name=node_name,
        phase="Running",
        ready=True,
        deleting=False,
        started_at=started_at,
        owner_kind="ReplicaSet",
        owner_name="web-abc",
        demand=PodDemand(cpu_cores=4, memory_gib=8),
        hint_annotations={},
        mirror=False,
        static=False,
        priority=0,
        local_storage=False,
        pvc=False,
    )
    fields.update(overrides)
    return PodRecord(**fields)
