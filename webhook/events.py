"""Events from admission, posted off the request path: ignored ``ecopulse.io/`` annotations, and
where a controller's pods were placed.

An admission warning is seen only by whoever ran ``kubectl apply``; a Deployment's pods are created
by a controller, whose warnings nobody reads. So a misspelt key or an invalid value also becomes an
events.k8s.io/v1 Event (``kubectl get events``), regarding the pod when it has a name, else its
controller (a ReplicaSet, a Job).

The API server waits for our answer, so the answer never waits for the API: the review only offers
the Event to a bounded queue (full: dropped and counted), and one background thread posts them.
One Event per (namespace, object, problem) per ``DEDUPLICATE_SECONDS``: a scale-up of a hundred
replicas from one template is one Event, not a hundred. Dry-run reviews post nothing (the webhook
declares ``sideEffects: NoneOnDryRun``).

A placed pod carries its ``ecopulse.io/decision`` annotation, but a pod being created has no uid
to hang an Event on; its controller has. So a placement is also a Normal ``RegionPlaced`` Event on
the pod's controller (``kubectl describe rs ...``), once per (controller, region) per
``DEDUPLICATE_SECONDS``, through its own queue and counter (``PLACEMENT_EVENTS``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from prometheus_client import Counter

from core.podspec import as_mapping

log = logging.getLogger("ecopulse.webhook")

REPORTING_CONTROLLER = "ecopulse.io/webhook"
REASON = "AnnotationIgnored"
PLACED_REASON = "RegionPlaced"
QUEUE_CAPACITY = 256
DEDUPLICATE_SECONDS = 600.0
MAX_REMEMBERED = 4096

ANNOTATION_EVENTS = Counter(
    "ecopulse_annotation_events_total",
    "Events about ignored ecopulse.io/ annotations, by result (posted, failed, dropped: queue full, "
    "duplicate: the same one was posted recently, no-subject: an unnamed pod without a controller).",
    ["result"],
)
PLACEMENT_EVENTS = Counter(
    "ecopulse_placement_events_total",
    "Events on a controller saying where admission placed its pods, by result (posted, failed, "
    "dropped, duplicate: its pods went to the same region recently, no-subject: a pod without one).",
    ["result"],
)
RESULTS = ("posted", "failed", "dropped", "duplicate", "no-subject")
for _result in RESULTS:
    ANNOTATION_EVENTS.labels(result=_result)
    PLACEMENT_EVENTS.labels(result=_result)


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnotationEvent:
    """An Event the webhook posts (the name is historical: placements are posted as these too)."""

    namespace: str
    regarding: Mapping[str, str]  # an ObjectReference: apiVersion, kind, name, namespace[, uid]
    note: str
    reason: str = REASON
    event_type: str = "Warning"
    action: str = "Admit"
    same_as: str = ""  # what makes two of them the same Event (default: the note)

    @property
    def key(self) -> tuple[str, str, str, str]:
        same = self.same_as or self.note
        return (self.namespace, self.regarding.get("kind", ""), self.regarding.get("name", ""), same)


class _OwnerWire(msgspec.Struct):
    apiVersion: Any = None
    kind: Any = None
    name: Any = None
    uid: Any = None
    controller: Any = None


class _OwnersWire(msgspec.Struct):
    ownerReferences: list[_OwnerWire] | None = None


class _ObjectOwnersWire(msgspec.Struct):
    metadata: _OwnersWire | None = None


# Only the owner references, decoded in C: a memoised decision never decoded the pod.
_OWNERS = msgspec.json.Decoder(_ObjectOwnersWire)


def placement_event(
    object_json: bytes, *, namespace: str, region: str, decision: str
) -> AnnotationEvent | None:
    """The Event on the controller of a pod placed in ``region``; None without one. Pure."""
    try:
        metadata = _OWNERS.decode(object_json).metadata
    except (msgspec.DecodeError, RecursionError):
        return None
    owners = metadata.ownerReferences if metadata is not None else None
    for owner in owners or ():
        fields = {"apiVersion": owner.apiVersion, "kind": owner.kind, "name": owner.name, "uid": owner.uid}
        if owner.controller is True and all(isinstance(v, str) and v for v in fields.values()):
            regarding = {**cast(dict[str, str], fields), "namespace": namespace}
            return AnnotationEvent(
                namespace=namespace,
                regarding=regarding,
                note=f"Placed its pods in {region}: " + "; ".join(decision.splitlines()),
                reason=PLACED_REASON,
                event_type="Normal",
                action="Place",
                same_as=f"placed in {region}",
            )
    return None


def annotation_event(
    pod: Mapping[str, object], *, namespace: str, problems: Sequence[str]
) -> AnnotationEvent | None:
    """The Event for ``problems`` (the annotation warnings) of ``pod``; None without a subject. Pure.

    A pod being created has no uid yet; one with a name is referred to by name. A pod named by its
    controller (generateName) is not yet anything to refer to: its controller is, uid and all.
    """
    metadata = as_mapping(pod.get("metadata"))
    note = "ecopulse.io annotations ignored: " + "; ".join(problems)
    name = metadata.get("name")
    if isinstance(name, str) and name:
        regarding = {"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": namespace}
        return AnnotationEvent(namespace=namespace, regarding=regarding, note=note)
    owners = metadata.get("ownerReferences")
    for owner in owners if isinstance(owners, list) else []:
        reference = as_mapping(owner)
        if reference.get("controller") is True:
            fields = {key: reference.get(key) for key in ("apiVersion", "kind", "name", "uid")}
            if all(isinstance(value, str) and value for value in fields.values()):
                regarding = {**cast(dict[str, str], fields), "namespace": namespace}
                return AnnotationEvent(namespace=namespace, regarding=regarding, note=f"{note} (its pods)")
    return None


class EventQueue:
    """Takes Events from the request path without waiting; a thread posts them with ``post``."""

    def __init__(
        self,
        post: Callable[[AnnotationEvent], bool],
        *,
        capacity: int = QUEUE_CAPACITY,
        deduplicate_seconds: float = DEDUPLICATE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        results: Counter = ANNOTATION_EVENTS,
        name: str = "annotation-events",
    ) -> None:
        self._post = post
        self._name = name
        # Each result's child looked up once: labels() takes a lock and builds a key every call.
        self._results = {result: results.labels(result=result) for result in RESULTS}
        self._queue: queue.Queue[AnnotationEvent | None] = queue.Queue(maxsize=capacity)
        self._deduplicate_seconds = deduplicate_seconds
        self._clock = clock
        self._offered: dict[tuple[str, str, str, str], float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def offer(self, event: AnnotationEvent | None) -> str:
        """Queue ``event`` unless it is a recent duplicate or the queue is full; never blocks."""
        result = self._admit(event)
        if result != "queued":  # a queued one is counted when it is posted or fails
            self._results[result].inc()
        return result

    def _admit(self, event: AnnotationEvent | None) -> str:
        if event is None:
            return "no-subject"
        now = self._clock()
        with self._lock:
            last = self._offered.get(event.key)
            if last is not None and now - last < self._deduplicate_seconds:
                return "duplicate"
            if len(self._offered) >= MAX_REMEMBERED:
                self._offered = {
                    k: t for k, t in self._offered.items() if now - t < self._deduplicate_seconds
                }
                if len(self._offered) >= MAX_REMEMBERED:
                    self._offered.clear()
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                return "dropped"
            self._offered[event.key] = now
        return "queued"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout_seconds: float = 5.0) -> None:
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout_seconds)
        except queue.Full:
            return  # a daemon thread: it dies with the process
        self._thread.join(timeout=timeout_seconds)

    def drain(self) -> None:
        """Post everything queued, on the caller's thread (tests, and a stop without a thread)."""
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                return
            if event is not None:
                self._deliver(event)

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            self._deliver(event)

    def _deliver(self, event: AnnotationEvent) -> None:
        try:
            posted = self._post(event)
        except Exception:  # the poster never raises; if it does, the thread must live on
            log.exception("event not recorded", extra={"namespace": event.namespace, "reason": event.reason})
            posted = False
        if posted:
            self._results["posted"].inc()
        else:
            self._results["failed"].inc()
            with self._lock:  # let a later pod try again
                self._offered.pop(event.key, None)


class PlacementNotices:
    """Offers each placed pod's Event to its queue, cheaply for the replicas of one template.

    The outcome memo hands byte-identical reviews (the replicas of a template, same namespace) the
    same outcome object: one that was just offered costs one comparison, not a decode and a lookup.
    Called from the event loop only (the reviews' bookkeeping).
    """

    def __init__(self, queue: EventQueue) -> None:
        self.queue = queue
        self._last: object = None

    def offer(
        self, object_json: bytes, *, namespace: str, region: str, decision: str, outcome: object
    ) -> None:
        if outcome is self._last:
            return
        self._last = outcome
        self.queue.offer(placement_event(object_json, namespace=namespace, region=region, decision=decision))
