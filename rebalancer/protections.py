"""Which pods must never be evicted: descheduler's DefaultEvictor semantics, plus our opt-outs. Pure."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from core.config import RebalancerSettings
from core.kube.caches import SYSTEM_CRITICAL_PRIORITY, NamespaceInfo, PodRecord
from core.model import OPT_OUT_ANNOTATION, SYSTEM_NAMESPACES


class Protected(StrEnum):
    NAMESPACE_OPTED_OUT = "namespace-opted-out"
    OPTED_OUT = "opted-out"
    BARE_POD = "bare-pod"  # nothing would recreate it
    DAEMONSET_POD = "daemonset-pod"
    MIRROR_POD = "mirror-pod"
    STATIC_POD = "static-pod"
    SYSTEM_CRITICAL = "system-critical"
    TERMINATING = "terminating"
    NOT_RUNNING = "not-running"
    NOT_READY = "not-ready"
    TOO_YOUNG = "too-young"  # also the cooldown that stops a pod bouncing back and forth
    LOCAL_STORAGE = "local-storage"
    PVC = "persistent-volume-claim"


def unmanaged(
    pod: PodRecord, *, namespace: NamespaceInfo | None, own_namespace: str = ""
) -> Protected | None:
    """Why Eco-Pulse never places nor moves this pod, or None: system and opted-out namespaces,
    opted-out, mirror, static and DaemonSet pods. Accounting leaves out the same pods."""
    if pod.namespace in SYSTEM_NAMESPACES or (own_namespace and pod.namespace == own_namespace):
        return Protected.NAMESPACE_OPTED_OUT
    if namespace is not None and namespace.opted_out:
        return Protected.NAMESPACE_OPTED_OUT
    if pod.hint_annotations.get(OPT_OUT_ANNOTATION, "").strip().lower() == "true":
        return Protected.OPTED_OUT
    if pod.mirror:
        return Protected.MIRROR_POD
    if pod.static:
        return Protected.STATIC_POD
    if pod.owner_kind == "DaemonSet":
        return Protected.DAEMONSET_POD
    return None


def protection(
    pod: PodRecord,
    *,
    namespace: NamespaceInfo | None,
    settings: RebalancerSettings,
    now: datetime,
    own_namespace: str = "",
) -> Protected | None:
    """The first reason this pod must stay where it is, or None if it may be evicted."""
    reason = unmanaged(pod, namespace=namespace, own_namespace=own_namespace)
    if reason is not None:
        return reason
    if pod.owner_kind is None:
        return Protected.BARE_POD
    if pod.priority >= SYSTEM_CRITICAL_PRIORITY:
        return Protected.SYSTEM_CRITICAL
    if pod.deleting:
        return Protected.TERMINATING
    if pod.phase != "Running":
        return Protected.NOT_RUNNING
    if not pod.ready:
        return Protected.NOT_READY
    if pod.started_at is None or (now - pod.started_at).total_seconds() < settings.min_pod_age_seconds:
        return Protected.TOO_YOUNG
    if pod.local_storage and not settings.evict_local_storage_pods:
        return Protected.LOCAL_STORAGE
    if pod.pvc and not settings.evict_pvc_pods:
        return Protected.PVC
    return None
