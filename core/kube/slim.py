"""Namespaces, nodes and pods as the apps need them: the watch's JSON to core.model's slim records. Pure.

Each reader keeps only what a decision reads (a slim pod is a few hundred bytes, not a V1Pod);
the reflectors in core.kube.caches feed them from the API server.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
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
    PolicyPlacement,
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


# A pod that runs to completion restarts its work from the start when evicted (a Job's pods have one
# of these; a Deployment's must be Always).
RUN_TO_COMPLETION_RESTART_POLICIES = frozenset({"Never", "OnFailure"})

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


_string_maps: dict[tuple[tuple[str, str], ...], Mapping[str, str]] = {}


def _intern_map(pairs: Iterable[tuple[str, str]]) -> Mapping[str, str]:
    """One shared mapping per distinct set of pairs: the replicas of a template share theirs, and
    planners can key on its identity."""
    key = tuple(sorted(pairs))
    if not key:
        return _NO_HINTS
    shared = _string_maps.get(key)
    if shared is None:
        if len(_string_maps) > 100_000:  # bounded, like the demands
            _string_maps.clear()
        shared = _string_maps[key] = dict(key)
    return shared


def _hints(annotations: Mapping[str, Any]) -> Mapping[str, str]:
    return _intern_map((k, v) for k, v in annotations.items() if k in HINT_ANNOTATIONS and isinstance(v, str))


def intern_labels(labels: object) -> Mapping[str, str]:
    """One shared mapping per distinct label set: the replicas of a ReplicaSet share theirs."""
    if not isinstance(labels, dict) or not labels:
        return _NO_HINTS
    return _intern_map((k, v) for k, v in labels.items() if isinstance(k, str) and isinstance(v, str))


def _placed(annotations: Mapping[str, Any], metadata: Mapping[str, Any]) -> PolicyPlacement | None:
    refs = annotations.get(POLICY_ANNOTATION)
    if not refs:
        return None  # most pods: no object, no creation time kept
    return PolicyPlacement(refs=str(refs)[:512], created_at=_parse_time(metadata.get("creationTimestamp")))


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
        # A cluster has few owner kinds and API versions: one string each, not one per pod.
        owner_kind=sys.intern(owner.kind) if owner else None,
        owner_name=owner.name if owner else None,
        demand=intern_demand(pod_demand(obj)),
        hint_annotations=_hints(annotations),
        mirror=is_mirror(annotations),
        static=is_static(annotations),
        priority=priority if isinstance(priority, int) else 0,
        local_storage=any("emptyDir" in v or "hostPath" in v for v in volumes),
        pvc=any("persistentVolumeClaim" in v for v in volumes),
        labels=intern_labels(metadata.get("labels")),
        owner_api_version=sys.intern(owner.api_version) if owner else "",
        placed=_placed(annotations, metadata),
        run_to_completion=spec.get("restartPolicy") in RUN_TO_COMPLETION_RESTART_POLICIES
        or (owner is not None and owner.kind == "Job"),
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
