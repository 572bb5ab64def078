"""Namespaces, nodes and pods as we need them: slim records (core.model) fed by a watch."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from core.deferral_hints import JobFacts, slim_job
from core.kube.lease_watch import LeaseState, slim_lease
from core.kube.reflector import Reflector
from core.kube.slim import intern_demand, slim_namespace, slim_node, slim_node_region, slim_pod
from core.model import SYSTEM_CRITICAL_PRIORITY, NamespaceInfo, NodeRecord, PodRecord
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

# The records and readers are re-exported: callers that knew them here keep working.
__all__ = [
    "SYSTEM_CRITICAL_PRIORITY",
    "NamespaceInfo",
    "NodeRecord",
    "PodRecord",
    "intern_demand",
    "namespace_reflector",
    "node_reflector",
    "node_region_reflector",
    "pod_reflector",
    "slim_namespace",
    "slim_node",
    "slim_node_region",
    "slim_pod",
]


def node_region_reflector(api_client: client.ApiClient) -> Reflector[str]:
    return Reflector(name="nodes", list_call=client.CoreV1Api(api_client).list_node, slim=slim_node_region)


def namespace_reflector(api_client: client.ApiClient) -> Reflector[NamespaceInfo]:
    return Reflector(
        name="namespaces", list_call=client.CoreV1Api(api_client).list_namespace, slim=slim_namespace
    )


def pod_reflector(api_client: client.ApiClient) -> Reflector[PodRecord]:
    return Reflector(
        name="pods", list_call=client.CoreV1Api(api_client).list_pod_for_all_namespaces, slim=slim_pod
    )


def node_reflector(api_client: client.ApiClient) -> Reflector[NodeRecord]:
    return Reflector(name="nodes", list_call=client.CoreV1Api(api_client).list_node, slim=slim_node)


def job_reflector(api_client: client.ApiClient) -> Reflector[JobFacts]:
    """The Jobs deferral reads (held, or asking for a deadline); the others cost no memory."""
    return Reflector(
        name="jobs", list_call=client.BatchV1Api(api_client).list_job_for_all_namespaces, slim=slim_job
    )


def lease_reflector(api_client: client.ApiClient, *, namespace: str, name: str) -> Reflector[LeaseState]:
    """One Lease, watched by name (key ``namespace/name``): whether its holder is alive."""
    return Reflector(
        name="leases",
        list_call=functools.partial(
            client.CoordinationV1Api(api_client).list_namespaced_lease,
            namespace,
            field_selector=f"metadata.name={name}",
        ),
        slim=slim_lease,
    )


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
