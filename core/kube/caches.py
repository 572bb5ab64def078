"""Namespaces and nodes as we need them: slim records fed by a watch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from core.kube.reflector import Reflector
from core.model import ANNOTATION_PREFIX, OPT_OUT_LABEL, REGION_LABEL


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
