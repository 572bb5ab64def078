"""Events for refused moves: the first refusal of a workload (or a bare pod) per cooldown.

An eviction explains itself with an Event; a pod left where it runs should too, or a user who
sees it in a 600 g region cannot tell why. But a refusal repeats every cycle, so each subject (the
pod's controller, else the pod) gets one Event per reason and target region per cooldown: the
rebalancer's (``rebalancer.minPodAgeSeconds``), and never less than ``MIN_INTERVAL_SECONDS`` (a
10 s cooldown would make an Event of every other cycle). A cycle posts at most
``MAX_EVENTS_PER_CYCLE`` and stops at the first that fails (the rest wait for the next cycle).
Pods Eco-Pulse does not manage (opted out, system), refusals with no move to name (no usable
signals) and passing states (terminating, not running, not ready, a replica already moving) get
none: the log line and the metric say them. Posted through the rebalancer's Event
writer (core.kube.events.EventRecorder), like every Event of ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from core.kube.events import EventRequest
from core.managed import Unmanaged
from rebalancer.explain import explain_refusal
from rebalancer.planner import NO_SIGNAL, WORKLOAD_MOVING, Refusal
from rebalancer.protections import Protected

REASON = "CarbonRebalanceRefused"
MAX_EVENTS_PER_CYCLE = 20
MAX_REMEMBERED = 10_000
MIN_INTERVAL_SECONDS = 600.0
# Not ours to move, nothing to name, or a passing state of a pod or its workload (a rollout, a
# move under way), which would make an Event of every rollout: the log line says them.
_SILENT = frozenset(
    {
        *(str(reason) for reason in Unmanaged),
        NO_SIGNAL,
        Protected.TERMINATING,
        Protected.NOT_RUNNING,
        Protected.NOT_READY,
        WORKLOAD_MOVING,
    }
)


def refusal_event(refusal: Refusal, *, prices: str = "") -> EventRequest | None:
    """The Event for a refusal, on the pod's controller (else the pod); None when it gets none. Pure.
    ``prices`` names the prices the plan used (SignalSnapshot.prices_note()), as every decision does."""
    if refusal.reason in _SILENT or not refusal.target_region:
        return None
    pod = refusal.pod
    why = explain_refusal(refusal) + (f"; {prices}" if prices else "")
    if pod.owner_kind is not None and pod.owner_name is not None and pod.owner_api_version:
        involved = {
            "kind": pod.owner_kind,
            "apiVersion": pod.owner_api_version,
            "name": pod.owner_name,
            "namespace": pod.namespace,
        }
        message = f"Not moving pod {pod.name}: {why}"
    else:
        involved = {"kind": "Pod", "apiVersion": "v1", "name": pod.name, "namespace": pod.namespace}
        if pod.uid:
            involved["uid"] = pod.uid
        message = f"Not moving: {why}"
    return EventRequest(
        namespace=pod.namespace,
        involved=involved,
        reason=REASON,
        message=message,
        action="Refuse",
    )


class RefusalEvents:
    """Remembers which subjects were told about which refusal, and when, across cycles."""

    def __init__(self, *, max_per_cycle: int = MAX_EVENTS_PER_CYCLE) -> None:
        self._posted: dict[tuple[str, str, str], datetime] = {}
        self._max_per_cycle = max_per_cycle

    def reset(self) -> None:
        """On losing the lease: the next leader tells its own story."""
        self._posted.clear()

    def post(
        self,
        refusals: Iterable[Refusal],
        *,
        post: Callable[[EventRequest], bool],
        now: datetime,
        cooldown_seconds: float,
        prices: str = "",
    ) -> int:
        """Post the Events due this cycle; how many were posted."""
        self._forget(now, max(cooldown_seconds, MIN_INTERVAL_SECONDS))
        posted = attempts = 0
        for refusal in refusals:
            if attempts >= self._max_per_cycle:  # each post may wait on the API: bound the cycle
                break
            key = (refusal.pod.workload or refusal.pod.key, refusal.reason, refusal.target_region)
            if key in self._posted:
                continue
            request = refusal_event(refusal, prices=prices)
            if request is None:
                continue
            attempts += 1
            if not post(request):
                # The API refused or did not answer (each try may wait its timeout): stop for this
                # cycle, and try this one again next cycle.
                break
            self._posted[key] = now
            posted += 1
        return posted

    def _forget(self, now: datetime, cooldown_seconds: float) -> None:
        expired = [k for k, t in self._posted.items() if (now - t).total_seconds() >= cooldown_seconds]
        for key in expired:
            del self._posted[key]
        if len(self._posted) > MAX_REMEMBERED:  # a bound, whatever the churn of workloads
            for key in list(self._posted)[: len(self._posted) - MAX_REMEMBERED]:
                del self._posted[key]
