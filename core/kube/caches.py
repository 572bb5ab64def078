"""Namespaces, nodes and pods as we need them: slim records fed by a watch."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes import client

from core.kube.reflector import Reflector
from core.model import (
    ANNOTATION_PREFIX,
    HINT_ANNOTATIONS,
    OPT_OUT_LABEL,
    POLICY_ANNOTATION,
    REGION_LABEL,
    CapacityType,
    PodDemand,
)
from core.podspec import MIRROR_ANNOTATION, SPOT_SELECTORS, controller_owner, pod_demand
from core.policy import (
    CLUSTER_KIND,
    EMPTY_POLICY_SET,
    NAMESPACED_KIND,
    Policy,
    PolicyError,
    PolicySet,
    PolicyStatus,
    build_policy_set,
    parse_policy,
)
from core.quantity import QuantityError, cpu_cores, memory_gib


@dataclass(frozen=True, slots=True, kw_only=True)
class NamespaceInfo:
    opted_out: bool = False
    hint_annotations: Mapping[str, str] = field(default_factory=dict)


def slim_namespace(obj: Mapping[str, Any]) -> NamespaceInfo | None:
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    hints = {
        key: value
        for key, value in annotations.items()
        if isinstance(key, str) and key.startswith(ANNOTATION_PREFIX) and isinstance(value, str)
    }
    opted_out = str(labels.get(OPT_OUT_LABEL, "")).lower() == "true"
    if not hints and not opted_out:
        return None  # nothing to remember: most namespaces cost us no memory at all
    return NamespaceInfo(opted_out=opted_out, hint_annotations=hints)


def slim_node_region(obj: Mapping[str, Any]) -> str | None:
    """A node as the extender needs it in NodeNames mode: its region label, nothing else."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    region = labels.get(REGION_LABEL)
    return region if isinstance(region, str) else None


def node_region_reflector(api_client: client.ApiClient) -> Reflector[str]:
    return Reflector(name="nodes", list_call=client.CoreV1Api(api_client).list_node, slim=slim_node_region)


def namespace_reflector(api_client: client.ApiClient) -> Reflector[NamespaceInfo]:
    return Reflector(
        name="namespaces", list_call=client.CoreV1Api(api_client).list_namespace, slim=slim_namespace
    )


SYSTEM_CRITICAL_PRIORITY = 2_000_000_000
STATIC_SOURCE_ANNOTATION = "kubernetes.io/config.source"


@dataclass(frozen=True, slots=True, kw_only=True)
class PodRecord:
    """A scheduled pod, reduced to what the rebalancer decides on (a few hundred bytes, not a V1Pod)."""

    namespace: str
    name: str
    uid: str
    node_name: str
    phase: str
    ready: bool
    deleting: bool
    started_at: datetime | None
    owner_kind: str | None  # the controller owner reference, if any
    owner_name: str | None
    demand: PodDemand
    hint_annotations: Mapping[str, str]  # only ecopulse.io/ keys
    mirror: bool
    static: bool
    priority: int
    local_storage: bool  # emptyDir or hostPath volumes
    pvc: bool
    labels: Mapping[str, str] = field(default_factory=dict)  # what policy selectors match
    created_at: datetime | None = None
    placed_by: str = ""  # the ecopulse.io/policy annotation the webhook wrote, if any

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def workload(self) -> str | None:
        if self.owner_kind is None:
            return None
        return f"{self.namespace}/{self.owner_kind}/{self.owner_name}"


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


def _hints(annotations: Mapping[str, Any]) -> Mapping[str, str]:
    hints = {k: v for k, v in annotations.items() if k in HINT_ANNOTATIONS and isinstance(v, str)}
    return hints or _NO_HINTS


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
    source = annotations.get(STATIC_SOURCE_ANNOTATION)
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
        owner_kind=owner[0] if owner else None,
        owner_name=owner[1] if owner else None,
        demand=intern_demand(pod_demand(obj)),
        hint_annotations=_hints(annotations),
        mirror=MIRROR_ANNOTATION in annotations,
        static=source is not None and source != "api",
        priority=priority if isinstance(priority, int) else 0,
        local_storage=any("emptyDir" in v or "hostPath" in v for v in volumes),
        pvc=any("persistentVolumeClaim" in v for v in volumes),
        labels=intern_labels(metadata.get("labels")),
        created_at=_parse_time(metadata.get("creationTimestamp")),
        placed_by=str(annotations.get(POLICY_ANNOTATION, ""))[:512],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRecord:
    name: str
    region: str | None
    capacity_type: CapacityType
    allocatable_cpu_cores: float
    allocatable_memory_gib: float
    schedulable: bool  # not cordoned, Ready, no NoSchedule/NoExecute taint


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


def pod_reflector(api_client: client.ApiClient) -> Reflector[PodRecord]:
    return Reflector(
        name="pods", list_call=client.CoreV1Api(api_client).list_pod_for_all_namespaces, slim=slim_pod
    )


def node_reflector(api_client: client.ApiClient) -> Reflector[NodeRecord]:
    return Reflector(name="nodes", list_call=client.CoreV1Api(api_client).list_node, slim=slim_node)


# --- policies ------------------------------------------------------------------------------------

POLICY_GROUP = "ecopulse.io"
POLICY_VERSION = "v1alpha1"
PLURALS = {NAMESPACED_KIND: "ecopulsepolicies", CLUSTER_KIND: "clusterecopulsepolicies"}


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyRecord:
    """A policy object as the watch has it: the parsed policy (None if unreadable) and its status."""

    kind: str
    namespace: str
    name: str
    generation: int
    policy: Policy | None
    problem: str  # why it could not be read (the field named), when policy is None
    status: PolicyStatus

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


def slim_policy(obj: Mapping[str, Any]) -> PolicyRecord | None:
    metadata = obj.get("metadata") or {}
    kind = str(obj.get("kind", ""))
    try:
        policy: Policy | None = parse_policy(obj)
        problem = ""
    except PolicyError as error:
        policy, problem = None, str(error)
    generation = metadata.get("generation")
    return PolicyRecord(
        kind=kind,
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name", "")),
        generation=generation if isinstance(generation, int) else 0,
        policy=policy,
        problem=problem,
        status=PolicyStatus.from_wire(obj.get("status")),
    )


def policy_reflectors(
    api_client: client.ApiClient,
) -> tuple[Reflector[PolicyRecord], Reflector[PolicyRecord]]:
    """EcoPulsePolicies in every namespace, and ClusterEcoPulsePolicies.

    Without the CRDs installed the lists fail and are retried with backoff; until they succeed
    the policy set is empty, so placement goes on as configured (fail open).
    """
    api = client.CustomObjectsApi(api_client)
    return tuple(  # type: ignore[return-value]
        Reflector(
            name=plural,
            list_call=functools.partial(api.list_cluster_custom_object, POLICY_GROUP, POLICY_VERSION, plural),
            slim=slim_policy,
        )
        for plural in (PLURALS[NAMESPACED_KIND], PLURALS[CLUSTER_KIND])
    )


class PolicyCache:
    """The current PolicySet, rebuilt only when a watch changed something or the regions changed.

    Readers on the request path get the last built set with no I/O and no lock: a reflector
    replaces its ``items`` mapping on every event, so comparing identities says whether to rebuild.
    """

    def __init__(self, *sources: Callable[[], Mapping[str, PolicyRecord]]) -> None:
        self._sources = sources
        self._built: tuple[tuple[Mapping[str, PolicyRecord], ...], frozenset[str], PolicySet] = (
            (),
            frozenset(),
            EMPTY_POLICY_SET,
        )

    def policy_set(self, known_regions: frozenset[str]) -> PolicySet:
        items = tuple(source() for source in self._sources)
        built_items, built_regions, built = self._built  # one load: a rebuild elsewhere swaps it whole
        if (
            len(built_items) == len(items)
            and all(a is b for a, b in zip(built_items, items, strict=True))
            and (built_regions is known_regions or built_regions == known_regions)
        ):
            return built
        policies = [r.policy for mapping in items for r in mapping.values() if r.policy is not None]
        fresh = build_policy_set(policies, known_regions=known_regions)
        self._built = (items, known_regions, fresh)
        return fresh

    def records(self) -> list[PolicyRecord]:
        return [record for source in self._sources for record in source().values()]
