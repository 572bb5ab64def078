"""What the webhook and the extender both ask of a pod before deciding anything. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from core.kube.caches import NamespaceInfo
from core.model import SYSTEM_NAMESPACES
from core.podspec import MIRROR_ANNOTATION, is_opted_out, owner_kinds, read_annotations


class Exempt(StrEnum):
    SYSTEM_NAMESPACE = "system-namespace"
    NAMESPACE_OPTED_OUT = "namespace-opted-out"
    OPTED_OUT = "opted-out"
    MIRROR_POD = "mirror-pod"
    DAEMONSET_POD = "daemonset-pod"


def effective_annotations(pod: Mapping[str, object], namespace_info: NamespaceInfo | None) -> dict[str, str]:
    """The pod's annotations over its namespace's ecopulse.io/ defaults (the pod's own win)."""
    annotations = read_annotations(pod)
    if namespace_info is not None and namespace_info.hint_annotations:
        return {**namespace_info.hint_annotations, **annotations}
    return annotations


def exemption(
    pod: Mapping[str, object],
    *,
    namespace: str,
    namespace_info: NamespaceInfo | None,
    annotations: Mapping[str, str],
    own_namespace: str = "",
) -> Exempt | None:
    """Why this pod is none of our business, or None."""
    if namespace in SYSTEM_NAMESPACES or (own_namespace and namespace == own_namespace):
        return Exempt.SYSTEM_NAMESPACE
    if namespace_info is not None and namespace_info.opted_out:
        return Exempt.NAMESPACE_OPTED_OUT
    if is_opted_out(annotations):
        return Exempt.OPTED_OUT
    if MIRROR_ANNOTATION in annotations:
        return Exempt.MIRROR_POD
    if "DaemonSet" in owner_kinds(pod):
        return Exempt.DAEMONSET_POD
    return None
