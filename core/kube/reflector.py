"""A watch-fed cache of slim records: list, then watch from that resourceVersion, re-list on 410 Gone.

Objects are read as raw JSON (no client model classes) and reduced at once by ``slim`` to the
few fields we keep, so memory is proportional to what we keep, not to full API objects. Readers
get the current mapping with one attribute load; the watch thread replaces it copy-on-write.

Reconnecting follows client-go's reflector: a watch that fails, or ends sooner than
MIN_WATCH_SECONDS, is re-opened only after a pause that doubles up to a cap (with jitter), so an
API server or proxy that ends every watch at once sees a few requests, not thousands. A watch
resumes from the last resourceVersion seen; only 410 Gone (expired) makes us list again.
"""

from __future__ import annotations

import enum
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from kubernetes.client.exceptions import ApiException

from core.kube.backoff import Backoff, SystemTimer, Timer
from core.metrics import WATCH_RECONNECTS, WATCH_RELISTS

log = logging.getLogger(__name__)

T = TypeVar("T")
# How long one watch request lasts before we re-open it from the last resourceVersion: spread
# over [300, 600) s, as client-go does, so replicas started together do not reconnect in step.
WATCH_TIMEOUT_SECONDS = 300
# A watch that ends sooner than this is treated like a failure (client-go: "very short watch"):
# the reflector pauses before it re-opens it.
MIN_WATCH_SECONDS = 1.0


class Gone(Exception):
    """The resourceVersion we watch from is too old (HTTP 410): list again."""


class WatchEnd(enum.Enum):
    """Why the reflector goes back to the API server (the ``reason`` label of the metric)."""

    CLOSED = "closed"  # the watch lasted and ended normally (the server's timeout): re-open at once
    TOO_SHORT = "too-short"  # it ended normally, but sooner than MIN_WATCH_SECONDS
    ERROR = "error"  # the watch request or its stream failed
    EXPIRED = "expired"  # 410 Gone: our resourceVersion is too old, list again
    LIST_ERROR = "list-error"  # the list request failed


def watch_end(*, failed: bool, expired: bool, lasted_seconds: float) -> WatchEnd:
    if expired:
        return WatchEnd.EXPIRED
    if failed:
        return WatchEnd.ERROR
    return WatchEnd.CLOSED if lasted_seconds >= MIN_WATCH_SECONDS else WatchEnd.TOO_SHORT


def pauses_after(end: WatchEnd, *, lasted_seconds: float) -> bool:
    """Whether to wait before going back: after failures and short watches, not after routine ends.

    An expiry after a long watch is routine (the server compacted its history); an expiry right
    after a list is not, and is paced like a failure.
    """
    if end is WatchEnd.CLOSED:
        return False
    if end is WatchEnd.EXPIRED:
        return lasted_seconds < MIN_WATCH_SECONDS
    return True


def object_key(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = str(metadata.get("name", ""))
    return f"{namespace}/{name}" if namespace else name


class Reflector(Generic[T]):
    """Keeps ``items`` (key -> slim record) in step with the API server for one resource."""

    def __init__(
        self,
        *,
        name: str,
        list_call: Callable[..., Any],
        slim: Callable[[Mapping[str, Any]], T | None],
        timer: Timer | None = None,
        random_fraction: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self._list_call = list_call
        self._slim = slim
        self._timer = timer or SystemTimer()
        self._random_fraction = random_fraction
        self._backoff = Backoff(random_fraction=random_fraction)
        for end in WatchEnd:  # every series from the start, so that rate() sees the first one
            WATCH_RECONNECTS.labels(resource=name, reason=end.value)
        WATCH_RELISTS.labels(resource=name)
        self.items: Mapping[str, T] = {}
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._resource_version = ""
        self._active_response: Any = None

    def relist(self) -> None:
        response = self._list_call(_preload_content=False)
        try:
            body = json.loads(response.data)
        finally:
            response.release_conn()
        items: dict[str, T] = {}
        for obj in body.get("items") or ():
            record = self._slim(obj)
            if record is not None:
                items[object_key(obj)] = record
        self.items = items
        self._resource_version = str((body.get("metadata") or {}).get("resourceVersion", ""))
        self.synced.set()

    def _events(self) -> Iterator[Mapping[str, Any]]:
        response = self._list_call(
            watch=True,
            resource_version=self._resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=int(WATCH_TIMEOUT_SECONDS * (1.0 + self._random_fraction())),
            _preload_content=False,
        )
        self._active_response = response
        try:
            pending = b""
            # amt=None: each HTTP chunk as it arrives (a sized read would wait for that many bytes).
            for chunk in response.stream(amt=None, decode_content=False):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            self._active_response = None
            response.release_conn()

    def watch_once(self) -> None:
        """Apply one watch request's events; raises Gone when the server says to re-list."""
        for event in self._events():
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Gone
                raise RuntimeError(f"watch error: {obj.get('message', obj)}")
            metadata = obj.get("metadata") or {}
            if kind == "BOOKMARK":
                self._resource_version = str(metadata.get("resourceVersion", self._resource_version))
                continue
            key = object_key(obj)
            updated = dict(self.items)
            if kind == "DELETED":
                updated.pop(key, None)
            else:
                record = self._slim(obj)
                if record is None:
                    updated.pop(key, None)
                else:
                    updated[key] = record
            self.items = updated
            self._resource_version = str(metadata.get("resourceVersion", self._resource_version))

    def run(self) -> None:
        needs_list = True
        while not self._stop.is_set():
            if needs_list:
                WATCH_RELISTS.labels(resource=self.name).inc()
                try:
                    self.relist()
                except Exception as error:
                    if self._stop.is_set() or self._reconnect(WatchEnd.LIST_ERROR, error, pause=True):
                        return
                    continue
                needs_list = False
            started_seconds = self._timer.monotonic()
            failure: Exception | None = None
            expired = False
            try:
                self.watch_once()
            except Gone:
                expired = needs_list = True
            except ApiException as error:
                if error.status == 410:  # refused before the stream started
                    expired = needs_list = True
                else:
                    failure = error
            except Exception as error:
                failure = error
            if self._stop.is_set():
                return
            if needs_list:
                # The server no longer has our resourceVersion: we missed events, and the items
                # may name pods that are gone. Out of step until the next list succeeds, so that
                # nobody plans from them while we wait (seen after an API server restart).
                self.synced.clear()
            lasted_seconds = self._timer.monotonic() - started_seconds
            if lasted_seconds >= MIN_WATCH_SECONDS:
                self._backoff.reset()  # a healthy watch: the next trouble starts from a short pause
            end = watch_end(failed=failure is not None, expired=expired, lasted_seconds=lasted_seconds)
            if self._reconnect(end, failure, pause=pauses_after(end, lasted_seconds=lasted_seconds)):
                return

    def _reconnect(self, end: WatchEnd, error: Exception | None, *, pause: bool) -> bool:
        """Count the reconnect and pause if told to; True when the reflector must stop."""
        WATCH_RECONNECTS.labels(resource=self.name, reason=end.value).inc()
        pause_seconds = self._backoff.next_pause_seconds() if pause else 0.0
        fields: dict[str, object] = {
            "resource": self.name,
            "reason": end.value,
            "pause_seconds": round(pause_seconds, 3),
            "resource_version": self._resource_version,
        }
        if error is not None:
            fields["error"] = f"{type(error).__name__}: {error}"[:300]
            log.warning("watch failed; reconnecting after a pause", extra=fields)
        elif pause:
            log.info("watch ended early; reconnecting after a pause", extra=fields)
        return pause and self._timer.wait(pause_seconds, self._stop)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"reflector-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        response = self._active_response
        if response is not None:
            try:
                response.shutdown()
            except Exception:  # best effort: the daemon thread dies with the process anyway
                log.debug("could not interrupt the watch", extra={"resource": self.name})
        if self._thread is not None:
            self._thread.join(timeout=5)
