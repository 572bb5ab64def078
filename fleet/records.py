"""Karmada objects as fleet mode decides on them: slim records parsed once from the wire JSON. Pure.

Each ``slim_*`` takes an object as the API server sends it (camelCase JSON) and keeps only what the
planner reads; hostile or odd values never raise here (a missing field reads as Karmada's default).
The records are what the watch caches hold, so a fleet of thousands of policies costs little memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from core.kube.slim import intern_demand
from core.model import ANNOTATION_PREFIX, OPT_OUT_LABEL, REGION_LABEL, PodDemand, Subject
from core.podspec import as_list, as_mapping, pod_demand, string_map

POLICY_GROUP = "policy.karmada.io"
POLICY_VERSION = "v1alpha1"
PROPAGATION_POLICY = "PropagationPolicy"
CLUSTER_PROPAGATION_POLICY = "ClusterPropagationPolicy"
# Karmada marks a resource template with the policy that claimed it.
CLAIMED_BY_NAMESPACE = "propagationpolicy.karmada.io/namespace"
CLAIMED_BY_NAME = "propagationpolicy.karmada.io/name"
CLAIMED_BY_CLUSTER_POLICY = "clusterpropagationpolicy.karmada.io/name"
# When fleet mode last moved a policy's workloads (RFC 3339): the cooldown counts from it.
MOVED_AT_ANNOTATION = "ecopulse.io/moved-at"
# A move in two steps (make before break): while the replicas start in the new cluster the old
# ones keep running. Karmada deletes a cluster's copy at once when a placement change drops it
# (its graceful eviction serves failover only), so the first step keeps both clusters, Duplicated,
# and says where to (this annotation) and what the policy's replicaScheduling was (the next one).
MOVING_TO_ANNOTATION = "ecopulse.io/moving-to"
SAVED_SCHEDULING_ANNOTATION = "ecopulse.io/replica-scheduling"
# When the new copy was first seen all available in a Ready member (RFC 3339): the move settles once
# it has stayed so for fleet.moveStabilitySeconds with that member Ready throughout.
AVAILABLE_SINCE_ANNOTATION = "ecopulse.io/available-since"
# A placement change makes Karmada delete a member's copy: a started Job (or a CronJob's Jobs)
# would lose its progress. A policy that propagates these kinds is never rewritten.
RUN_TO_COMPLETION_KINDS = frozenset({"Job", "CronJob"})
# Affinity terms fleet mode writes are named with this prefix and their rank: ecopulse-0 is the best.
AFFINITY_PREFIX = "ecopulse-"


class ReplicaMode(StrEnum):
    """How Karmada spreads a workload's replicas over the clusters of the chosen affinity term."""

    DUPLICATED = "Duplicated"  # every chosen cluster runs all replicas (Karmada's default)
    AGGREGATED = "Aggregated"  # Divided, as few clusters as possible
    STATIC_WEIGHTED = "StaticWeighted"  # Divided by staticWeightList
    DYNAMIC_WEIGHTED = "DynamicWeighted"  # Divided by available replicas: not ours to weigh


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberCluster:
    name: str
    region: str | None  # spec.region, else the topology.kubernetes.io/region label
    ready: bool
    # The Ready condition's lastTransitionTime while it is True: Karmada rewrites it only when the
    # status changes, so a member Ready since before t was reachable by Karmada within its failure
    # detection lag of now, throughout (docs/fleet.md, "Evidence").
    ready_since: datetime | None = None


def slim_cluster(obj: Mapping[str, object]) -> MemberCluster | None:
    metadata = as_mapping(obj.get("metadata"))
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        return None
    region = as_mapping(obj.get("spec")).get("region")
    if not isinstance(region, str) or not region:
        region = string_map(metadata.get("labels")).get(REGION_LABEL) or None
    condition = next(
        (
            as_mapping(c)
            for c in as_list(as_mapping(obj.get("status")).get("conditions"))
            if as_mapping(c).get("type") == "Ready"
        ),
        {},
    )
    ready = condition.get("status") == "True"
    since = parse_time(condition.get("lastTransitionTime")) if ready else None
    return MemberCluster(name=name, region=region, ready=ready, ready_since=since)


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelRequirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        return False  # an operator we do not know selects nothing, as an invalid selector would


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceSelector:
    api_version: str
    kind: str
    namespace: str | None
    name: str | None
    match_labels: Mapping[str, str] | None
    match_expressions: tuple[LabelRequirement, ...] = ()

    def selects(
        self, *, api_version: str, kind: str, namespace: str, name: str, labels: Mapping[str, str]
    ) -> bool:
        if self.api_version != api_version or self.kind != kind:
            return False
        if self.namespace is not None and self.namespace != namespace:
            return False
        if self.name is not None:
            return self.name == name  # Karmada: a name wins over the label selector
        if self.match_labels is None and not self.match_expressions:
            return True
        if self.match_labels is not None and any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        return all(requirement.matches(labels) for requirement in self.match_expressions)


def _selector(raw: object) -> ResourceSelector | None:
    fields = as_mapping(raw)
    api_version, kind = fields.get("apiVersion"), fields.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    namespace, name = fields.get("namespace"), fields.get("name")
    label_selector = fields.get("labelSelector")
    match_labels: Mapping[str, str] | None = None
    expressions: list[LabelRequirement] = []
    if label_selector is not None:
        selector = as_mapping(label_selector)
        match_labels = string_map(selector.get("matchLabels"))
        for expression in as_list(selector.get("matchExpressions")):
            e = as_mapping(expression)
            key, operator = e.get("key"), e.get("operator")
            if isinstance(key, str) and isinstance(operator, str):
                values = frozenset(v for v in as_list(e.get("values")) if isinstance(v, str))
                expressions.append(LabelRequirement(key=key, operator=operator, values=values))
    return ResourceSelector(
        api_version=api_version,
        kind=kind,
        namespace=namespace if isinstance(namespace, str) and namespace else None,
        name=name if isinstance(name, str) and name else None,
        match_labels=match_labels,
        match_expressions=tuple(expressions),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AffinityTerm:
    name: str
    cluster_names: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """The parts of ``spec.placement`` fleet mode reads and writes."""

    cluster_affinities: tuple[AffinityTerm, ...] = ()
    has_cluster_affinity: bool = False  # the single clusterAffinity form (replaced when we write)
    replica_mode: ReplicaMode = ReplicaMode.DUPLICATED
    static_weights: tuple[tuple[str, int], ...] = ()
    replica_scheduling: str = ""  # spec.placement.replicaScheduling as compact JSON; "" when absent

    @property
    def ours(self) -> bool:
        """Written by fleet mode: every affinity term carries our name."""
        return bool(self.cluster_affinities) and all(
            term.name.startswith(AFFINITY_PREFIX) for term in self.cluster_affinities
        )


def _placement(raw: object) -> Placement:
    fields = as_mapping(raw)
    terms: list[AffinityTerm] = []
    for term in as_list(fields.get("clusterAffinities")):
        t = as_mapping(term)
        name = t.get("affinityName")
        names = tuple(n for n in as_list(t.get("clusterNames")) if isinstance(n, str))
        terms.append(AffinityTerm(name=name if isinstance(name, str) else "", cluster_names=names))
    scheduling = as_mapping(fields.get("replicaScheduling"))
    mode = ReplicaMode.DUPLICATED
    weights: list[tuple[str, int]] = []
    if scheduling.get("replicaSchedulingType") == "Divided":
        weight_preference = as_mapping(scheduling.get("weightPreference"))
        if scheduling.get("replicaDivisionPreference") == "Aggregated":
            mode = ReplicaMode.AGGREGATED
        elif weight_preference.get("dynamicWeight"):
            mode = ReplicaMode.DYNAMIC_WEIGHTED
        else:
            mode = ReplicaMode.STATIC_WEIGHTED
            for entry in as_list(weight_preference.get("staticWeightList")):
                e = as_mapping(entry)
                weight = e.get("weight")
                for cluster in as_list(as_mapping(e.get("targetCluster")).get("clusterNames")):
                    if isinstance(cluster, str) and isinstance(weight, int):
                        weights.append((cluster, weight))
    return Placement(
        cluster_affinities=tuple(terms),
        has_cluster_affinity=fields.get("clusterAffinity") is not None,
        replica_mode=mode,
        static_weights=tuple(weights),
        replica_scheduling=(
            json.dumps(fields["replicaScheduling"], separators=(",", ":"), sort_keys=True)
            if isinstance(fields.get("replicaScheduling"), dict)
            else ""
        ),
    )


def _ecopulse_annotations(metadata: Mapping[str, object]) -> Mapping[str, str]:
    annotations = string_map(metadata.get("annotations"))
    return {k: v for k, v in annotations.items() if k.startswith(ANNOTATION_PREFIX)}


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyRecord:
    kind: str  # PropagationPolicy or ClusterPropagationPolicy
    namespace: str  # "" for a ClusterPropagationPolicy
    name: str
    uid: str
    resource_version: str
    selectors: tuple[ResourceSelector, ...]
    placement: Placement
    annotations: Mapping[str, str]  # only ecopulse.io/ keys
    moved_at: datetime | None
    moving_to: str | None = None  # the first step of a move is done: replicas start there
    saved_scheduling: str | None = None  # the replicaScheduling to restore when the move settles
    available_since: datetime | None = None  # the move's new copy first seen all available then
    # it selects a Job or CronJob: a placement change would restart run-to-completion work elsewhere
    selects_jobs: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def ref(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)


def slim_policy(obj: Mapping[str, object]) -> PolicyRecord | None:
    metadata = as_mapping(obj.get("metadata"))
    name = metadata.get("name")
    if not isinstance(name, str) or not name or metadata.get("deletionTimestamp") is not None:
        return None
    namespace = metadata.get("namespace")
    namespace = namespace if isinstance(namespace, str) else ""
    kind = obj.get("kind")
    if kind not in (PROPAGATION_POLICY, CLUSTER_PROPAGATION_POLICY):
        # A list's items carry no kind: a namespace says which of the two this is.
        kind = PROPAGATION_POLICY if namespace else CLUSTER_PROPAGATION_POLICY
    spec = as_mapping(obj.get("spec"))
    selectors = tuple(
        s for raw in as_list(spec.get("resourceSelectors")) if (s := _selector(raw)) is not None
    )
    annotations = _ecopulse_annotations(metadata)
    return PolicyRecord(
        kind=str(kind),
        namespace=namespace,
        name=name,
        uid=str(metadata.get("uid", "")),
        resource_version=str(metadata.get("resourceVersion", "")),
        selectors=selectors,
        placement=_placement(spec.get("placement")),
        annotations=annotations,
        moved_at=parse_time(annotations.get(MOVED_AT_ANNOTATION)),
        moving_to=annotations.get(MOVING_TO_ANNOTATION) or None,
        saved_scheduling=annotations.get(SAVED_SCHEDULING_ANNOTATION),
        available_since=parse_time(annotations.get(AVAILABLE_SINCE_ANNOTATION)),
        selects_jobs=any(s.kind in RUN_TO_COMPLETION_KINDS for s in selectors),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadRecord:
    """A Deployment on the Karmada API server: the resource template Karmada propagates."""

    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str]
    replicas: int
    max_unavailable: str  # as written (a count or a percentage); "25%" is the Deployment default
    demand: PodDemand  # one replica's, as the scheduler counts it (interned: replicas share shapes)
    hint_annotations: Mapping[str, str]  # ecopulse.io/ keys of the Deployment, its pod template's over them
    claimed_by: tuple[str, str, str] | None  # (kind, namespace, name) of the policy Karmada bound it to

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


API_VERSION_APPS = "apps/v1"
DEPLOYMENT = "Deployment"


def slim_deployment(obj: Mapping[str, object]) -> WorkloadRecord | None:
    metadata = as_mapping(obj.get("metadata"))
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if not isinstance(name, str) or not isinstance(namespace, str):
        return None
    spec = as_mapping(obj.get("spec"))
    template = as_mapping(spec.get("template"))
    replicas = spec.get("replicas", 1)
    replicas = (
        replicas if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas >= 0 else 1
    )
    rolling = as_mapping(as_mapping(spec.get("strategy")).get("rollingUpdate"))
    max_unavailable = rolling.get("maxUnavailable", "25%")
    annotations = string_map(metadata.get("annotations"))
    hints = {
        **_ecopulse_annotations(metadata),
        **_ecopulse_annotations(as_mapping(template.get("metadata"))),
    }
    claimed_by: tuple[str, str, str] | None = None
    if (policy := annotations.get(CLAIMED_BY_NAME)) is not None:
        claimed_by = (PROPAGATION_POLICY, annotations.get(CLAIMED_BY_NAMESPACE, namespace), policy)
    elif (cluster_policy := annotations.get(CLAIMED_BY_CLUSTER_POLICY)) is not None:
        claimed_by = (CLUSTER_PROPAGATION_POLICY, "", cluster_policy)
    return WorkloadRecord(
        namespace=namespace,
        name=name,
        uid=str(metadata.get("uid", "")),
        labels=string_map(metadata.get("labels")),
        replicas=replicas,
        max_unavailable=str(max_unavailable),
        demand=intern_demand(pod_demand(template)),
        hint_annotations=hints,
        claimed_by=claimed_by,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class BindingRecord:
    """A ResourceBinding: where Karmada scheduled one resource template's replicas."""

    namespace: str
    kind: str
    name: str  # the resource template's name
    clusters: tuple[tuple[str, int], ...]  # (cluster, replicas) as scheduled
    available: Mapping[str, int] = field(default_factory=dict)  # cluster -> available replicas there

    def available_in(self, cluster: str) -> int:
        return self.available.get(cluster, 0)

    @property
    def resource_key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)


def slim_binding(obj: Mapping[str, object]) -> BindingRecord | None:
    spec = as_mapping(obj.get("spec"))
    resource = as_mapping(spec.get("resource"))
    kind, name = resource.get("kind"), resource.get("name")
    namespace = resource.get("namespace") or as_mapping(obj.get("metadata")).get("namespace")
    if not isinstance(kind, str) or not isinstance(name, str) or not isinstance(namespace, str):
        return None
    clusters: list[tuple[str, int]] = []
    for target in as_list(spec.get("clusters")):
        t = as_mapping(target)
        cluster, replicas = t.get("name"), t.get("replicas", 0)
        if isinstance(cluster, str):
            clusters.append((cluster, replicas if isinstance(replicas, int) else 0))
    # Karmada aggregates each member's status of the workload: availableReplicas for a Deployment.
    available: dict[str, int] = {}
    for item in as_list(as_mapping(obj.get("status")).get("aggregatedStatus")):
        fields = as_mapping(item)
        cluster, count = (
            fields.get("clusterName"),
            as_mapping(fields.get("status")).get("availableReplicas", 0),
        )
        if isinstance(cluster, str) and isinstance(count, int):
            available[cluster] = count
    return BindingRecord(
        namespace=namespace, kind=kind, name=name, clusters=tuple(clusters), available=available
    )


def workload_subject(
    workload: WorkloadRecord, *, policy_annotations: Mapping[str, str] | None = None
) -> Subject:
    """A workload as core.managed's never-managed rule reads it: its opt-out label, and its
    ecopulse.io/ annotations over the policy's that propagates it (the most specific wins)."""
    label = workload.labels.get(OPT_OUT_LABEL)
    annotations = (
        {**policy_annotations, **workload.hint_annotations}
        if policy_annotations
        else workload.hint_annotations
    )
    return Subject(
        namespace=workload.namespace,
        labels={OPT_OUT_LABEL: label} if label is not None else {},
        annotations=annotations,
    )
