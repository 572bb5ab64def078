"""A watch-fed cache of slim records: list, then watch from that resourceVersion, re-list on 410 Gone.

Objects are read as raw JSON (no client model classes) and reduced at once by ``slim`` to the
few fields we keep, so memory is proportional to what we keep, not to full API objects. Readers
get the current mapping with one attribute load; the watch thread replaces it copy-on-write.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
# How long one watch request lasts before we re-open it from the last resourceVersion.
WATCH_TIMEOUT_SECONDS = 300
MAX_BACKOFF_SECONDS = 30.0


class Gone(Exception):
    """The resourceVersion we watch from is too old (HTTP 410): list again."""


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
    ) -> None:
        self.name = name
        self._list_call = list_call
        self._slim = slim
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
            timeout_seconds=WATCH_TIMEOUT_SECONDS,
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
        backoff = 1.0
        needs_list = True
        while not self._stop.is_set():
            try:
                if needs_list:
                    self.relist()
                    needs_list = False
                self.watch_once()
                backoff = 1.0
            except Gone:
                needs_list = True
            except Exception as error:
                if self._stop.is_set():
                    return
                log.warning(
                    "watch failed; listing again after a pause",
                    extra={
                        "resource": self.name,
                        "reason": f"{type(error).__name__}: {error}"[:300],
                        "backoff_seconds": backoff,
                    },
                )
                needs_list = True
                self._stop.wait(backoff)
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)

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
