"""Which pods must never be evicted: the never-managed rule, plus descheduler's DefaultEvictor. Pure."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from core.config import RebalancerSettings
from core.managed import Unmanaged, unmanaged
from core.model import SYSTEM_CRITICAL_PRIORITY, NamespaceInfo, PodRecord


class Protected(StrEnum):
    """Why a pod Eco-Pulse manages must stay where it runs for now (the rule's own reasons come first)."""

    BARE_POD = "bare-pod"  # nothing would recreate it
    SYSTEM_CRITICAL = "system-critical"
    TERMINATING = "terminating"
    NOT_RUNNING = "not-running"
    NOT_READY = "not-ready"
    TOO_YOUNG = "too-young"  # also the cooldown that stops a pod bouncing back and forth
    LOCAL_STORAGE = "local-storage"
    PVC = "persistent-volume-claim"
    # A Job's pod (restartPolicy Never or OnFailure): eviction throws its progress away.
    RUN_TO_COMPLETION = "run-to-completion"


def protection(
    pod: PodRecord,
    *,
    namespace: NamespaceInfo | None,
    settings: RebalancerSettings,
    now: datetime,
    own_namespace: str = "",
    run_to_completion_allowed: bool = False,
) -> Unmanaged | Protected | None:
    """The first reason this pod must stay where it is, or None if it may be evicted."""
    return unmanaged(pod, namespace=namespace, own_namespace=own_namespace) or eviction_protection(
        pod, settings=settings, now=now, run_to_completion_allowed=run_to_completion_allowed
    )


def eviction_protection(
    pod: PodRecord, *, settings: RebalancerSettings, now: datetime, run_to_completion_allowed: bool = False
) -> Protected | None:
    """Why a pod Eco-Pulse manages must not be evicted now (descheduler's DefaultEvictor), or None.
    The planner asks the never-managed rule once per template and this once per pod.

    A run-to-completion pod moves only where a policy says ``evictRunToCompletion: true``; the
    planner then prices the hours it has run into the move."""
    if pod.owner_kind is None:
        return Protected.BARE_POD
    if pod.run_to_completion and not run_to_completion_allowed:
        return Protected.RUN_TO_COMPLETION
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
