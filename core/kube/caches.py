"""Namespaces, nodes and pods as we need them: slim records (core.model) fed by a watch."""

from __future__ import annotations

from kubernetes import client

from core.kube.reflector import Reflector
from core.kube.slim import intern_demand, slim_namespace, slim_node, slim_node_region, slim_pod
from core.model import SYSTEM_CRITICAL_PRIORITY, NamespaceInfo, NodeRecord, PodRecord

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
