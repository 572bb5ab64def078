"""Namespaces, nodes and pods as the apps need them: the watch's JSON to core.model's slim records. Pure.

Each reader keeps only what a decision reads (a slim pod is a few hundred bytes, not a V1Pod);
the reflectors in core.kube.caches feed them from the API server.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.managed import is_mirror, is_static, says_opt_out
from core.model import (
    ANNOTATION_PREFIX,
    HINT_ANNOTATIONS,
    OPT_OUT_LABEL,
    POLICY_ANNOTATION,
    REGION_LABEL,
    CapacityType,
    NamespaceInfo,
    NodeRecord,
    PodDemand,
    PodRecord,
)
from core.podspec import SPOT_SELECTORS, controller_owner, pod_demand
from core.quantity import QuantityError, cpu_cores, memory_gib


def slim_namespace(obj: Mapping[str, Any]) -> NamespaceInfo | None:
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    hints = {
        key: value
        for key, value in annotations.items()
        if isinstance(key, str) and key.startswith(ANNOTATION_PREFIX) and isinstance(value, str)
    }
    label = labels.get(OPT_OUT_LABEL)
    opted_out = says_opt_out(label if isinstance(label, str) else None)
    if not hints and not opted_out:
        return None  # nothing to remember: most namespaces cost us no memory at all
    return NamespaceInfo(opted_out=opted_out, hint_annotations=hints)


def slim_node_region(obj: Mapping[str, Any]) -> str | None:
    """A node as the extender needs it in NodeNames mode: its region label, nothing else."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    region = labels.get(REGION_LABEL)
    return region if isinstance(region, str) else None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


_demands: dict[PodDemand, PodDemand] = {}
_NO_HINTS: Mapping[str, str] = {}


def intern_demand(demand: PodDemand) -> PodDemand:
    """One shared object per distinct demand: replicas share it, and planners can key on it."""
    shared = _demands.get(demand)
    if shared is None:
        if len(_demands) > 100_000:  # bounded: distinct shapes are few; this only guards odd clusters
            _demands.clear()
        shared = _demands[demand] = demand
    return shared


def _hints(annotations: Mapping[str, Any]) -> Mapping[str, str]:
    hints = {k: v for k, v in annotations.items() if k in HINT_ANNOTATIONS and isinstance(v, str)}
    return hints or _NO_HINTS


_label_sets: dict[tuple[tuple[str, str], ...], Mapping[str, str]] = {}


def intern_labels(labels: object) -> Mapping[str, str]:
    """One shared mapping per distinct label set: the replicas of a ReplicaSet share theirs."""
    if not isinstance(labels, dict) or not labels:
        return _NO_HINTS
    key = tuple(sorted((k, v) for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)))
    shared = _label_sets.get(key)
    if shared is None:
        if len(_label_sets) > 100_000:  # bounded, like the demands
            _label_sets.clear()
        shared = _label_sets[key] = dict(key)
    return shared


def slim_pod(obj: Mapping[str, Any]) -> PodRecord | None:
    """Scheduled, not finished pods only: the others cannot be moved."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    node_name = spec.get("nodeName")
    phase = str(status.get("phase", ""))
    if not node_name or phase in ("Succeeded", "Failed"):
        return None
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    owner = controller_owner(obj)
    volumes = [v for v in spec.get("volumes") or () if isinstance(v, dict)]
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
        if isinstance(c, dict)
    )
    priority = spec.get("priority")
    return PodRecord(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        node_name=str(node_name),
        phase=phase,
        ready=ready,
        deleting=metadata.get("deletionTimestamp") is not None,
        started_at=_parse_time(status.get("startTime")),
        owner_kind=owner.kind if owner else None,
        owner_name=owner.name if owner else None,
        demand=intern_demand(pod_demand(obj)),
        hint_annotations=_hints(annotations),
        mirror=is_mirror(annotations),
        static=is_static(annotations),
        priority=priority if isinstance(priority, int) else 0,
        local_storage=any("emptyDir" in v or "hostPath" in v for v in volumes),
        pvc=any("persistentVolumeClaim" in v for v in volumes),
        labels=intern_labels(metadata.get("labels")),
        owner_api_version=owner.api_version if owner else "",
        created_at=_parse_time(metadata.get("creationTimestamp")),
        placed_by=str(annotations.get(POLICY_ANNOTATION, ""))[:512],
    )


def slim_node(obj: Mapping[str, Any]) -> NodeRecord | None:
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    allocatable = status.get("allocatable") or {}
    try:
        cpu = cpu_cores(allocatable.get("cpu", 0))
        memory = memory_gib(allocatable.get("memory", 0))
    except QuantityError:
        cpu = memory = 0.0
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
        if isinstance(c, dict)
    )
    tainted = any(
        t.get("effect") in ("NoSchedule", "NoExecute")
        for t in spec.get("taints") or ()
        if isinstance(t, dict)
    )
    region = labels.get(REGION_LABEL)
    spot = any(labels.get(key) in values for key, values in SPOT_SELECTORS.items())
    return NodeRecord(
        name=str(metadata.get("name", "")),
        region=region if isinstance(region, str) else None,
        capacity_type=CapacityType.SPOT if spot else CapacityType.ON_DEMAND,
        allocatable_cpu_cores=cpu,
        allocatable_memory_gib=memory,
        schedulable=ready and not tainted and not spec.get("unschedulable", False),
    )
