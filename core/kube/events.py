"""Events (events.k8s.io/v1) on the objects an app acts on, and how every app reads a write's answer.

Shared by every app that writes: the rebalancer on pods and their owners, fleet mode on policies,
the webhook on pods whose annotations it ignored. :func:`raw_write` is the one reading of a raw
write's answer (refused, unanswered, accepted); each app maps a :class:`WriteAnswer` to its own
outcomes.

``eventTime`` is a MicroTime: :func:`event_time` gives the client one it cannot spoil (core.kube.microtime).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import urllib3
from kubernetes import client

from core.kube.microtime import model_micro_time

log = logging.getLogger(__name__)

T = TypeVar("T")

REQUEST_TIMEOUT_SECONDS = 10
MESSAGE_LIMIT = 300
# events.k8s.io/v1 validation limits: note <= 1024 bytes; reason, action, reportingInstance <= 128.
NOTE_LIMIT_BYTES = 1024
SHORT_FIELD_LIMIT = 128
# Keys an ObjectReference may carry (the model rejects any other).
REFERENCE_KEYS = ("apiVersion", "kind", "name", "namespace", "uid", "resourceVersion", "fieldPath")


def event_time(now: datetime | None = None) -> datetime:
    """Now (or ``now``) as the Event's MicroTime, through the client's models."""
    return model_micro_time(now or datetime.now(UTC))


def trim(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def trim_bytes(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes (the server counts bytes), never splitting a character."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode(errors="ignore") + "…"


def name_prefix(name: str) -> str:
    """A base for generateName from the involved object's name: lowercase, DNS-subdomain characters."""
    base = re.sub(r"[^a-z0-9.-]+", "-", name.lower())[:50].strip(".-")
    return base or "eco-pulse"


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRequest:
    """One Event to record, as every app asks for it; the recorder adds who reports it and when."""

    namespace: str  # the Event's namespace; the object's own for a namespaced one
    involved: Mapping[str, str]  # an ObjectReference: apiVersion, kind, name[, namespace, uid]
    reason: str  # CamelCase, why the app acted (CarbonRebalance, FleetMoved, AnnotationIgnored)
    message: str  # the note: what was done and why, for ``kubectl describe``
    event_type: str = "Normal"  # or "Warning"
    action: str = "Evict"  # what the app did (Evict, Place, Admit)


def event_body(
    request: EventRequest,
    *,
    reporting_controller: str,
    reporting_instance: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The events.k8s.io/v1 Event as handed to the client (eventTime as a datetime, see module doc)."""
    namespace, involved = request.namespace, request.involved
    regarding = {key: involved[key] for key in REFERENCE_KEYS if involved.get(key)}
    regarding.setdefault("namespace", namespace)  # the server requires it to match the Event's
    base = name_prefix(regarding.get("name", ""))
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        # generateName: the server appends five random characters, so names never collide. It must be
        # a DNS-subdomain prefix: a trailing "-" is allowed, a trailing "." is not (422).
        "metadata": {"generateName": f"{base}-", "namespace": namespace},
        "eventTime": event_time(now),
        "regarding": regarding,
        "reason": trim(request.reason, SHORT_FIELD_LIMIT),
        "note": trim_bytes(request.message, NOTE_LIMIT_BYTES),
        "action": trim(request.action, SHORT_FIELD_LIMIT),
        "type": request.event_type,
        "reportingController": reporting_controller,
        "reportingInstance": trim(reporting_instance, SHORT_FIELD_LIMIT),
    }


def status_message(body: str | bytes | None, fallback: str) -> str:
    """The ``message`` of a ``Status`` body, with its ``details.causes`` messages; `fallback` otherwise."""
    status: Any = None
    if body:
        try:
            status = json.loads(body)
        except ValueError:
            status = None
    if not isinstance(status, dict) or not isinstance(status.get("message"), str):
        return trim(fallback, MESSAGE_LIMIT)
    message: str = status["message"]
    details = status.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    if isinstance(causes, list):
        extra = [
            cause["message"]
            for cause in causes
            if isinstance(cause, dict) and isinstance(cause.get("message"), str) and cause["message"]
        ]
        if extra:
            message = f"{message} ({'; '.join(extra)})"
    return trim(message, MESSAGE_LIMIT)


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteAnswer:
    """What the API server said to one write; each app maps it to its own outcomes."""

    accepted: bool  # a 2xx answer
    status: int | None  # the HTTP status; None when no answer came (timeout, refused connection)
    message: str = ""  # a refusal's Status message (and causes), or the transport error; at most 300

    def outcome(self, *, accepted: T, refusals: Mapping[int, T], unknown: T) -> T:
        """``accepted`` for a 2xx, the refusal's status looked up in ``refusals``, else ``unknown``:
        no answer, or a status the app has no name for, may have changed something."""
        if self.accepted:
            return accepted
        return refusals.get(self.status, unknown) if self.status is not None else unknown

    def log(
        self, logger: logging.Logger, message: str, *args: object, fields: Mapping[str, object], dry_run: bool
    ) -> None:
        """The write's one log line: INFO when accepted, WARNING otherwise, with status and detail."""
        extra = {**fields, "status": self.status, "detail": self.message, "dry_run": dry_run}
        logger.log(logging.INFO if self.accepted else logging.WARNING, message, *args, extra=extra)


def raw_write(call: Callable[[], object]) -> WriteAnswer:
    """Make one raw API write (``_preload_content=False``) and read its answer; the connection goes back
    to the pool. Never raises on a refusal, a timeout, a refused connection or a value the client's
    models reject (pydantic's ValueError)."""
    try:
        response = cast(urllib3.BaseHTTPResponse, call())
    except client.ApiException as error:
        return WriteAnswer(
            accepted=False,
            status=int(error.status) if error.status else None,
            message=status_message(error.body, f"HTTP {error.status} {error.reason or ''}"),
        )
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
        return WriteAnswer(accepted=False, status=None, message=trim(f"{error}", MESSAGE_LIMIT))
    status = int(response.status)
    response.drain_conn()  # an unread body would keep the connection out of the pool
    response.release_conn()
    return WriteAnswer(accepted=True, status=status)


def call_quietly(failure: str, fields: Mapping[str, object], call: Callable[[], object]) -> bool:
    """Make one raw API write (see :func:`raw_write`) and drop its answer; never raise.

    A refusal or a transport error is logged as ``failure`` with ``fields`` and the server's message,
    and reported as False: a write that is only a record (an Event, a status) must not stop the app.
    """
    try:
        answer = raw_write(call)
    except Exception as error:  # anything else the client raises: a record is not worth a crash
        log.warning(failure, extra={**fields, "detail": trim(repr(error), MESSAGE_LIMIT)})
        return False
    if not answer.accepted:
        log.warning(failure, extra={**fields, "status": answer.status, "detail": answer.message})
    return answer.accepted


class EventRecorder:
    """Posts Events as one reporting controller and instance. Thread-safe as far as ApiClient is."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        reporting_controller: str,
        reporting_instance: str,
        request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self._events = client.EventsV1Api(api_client)
        self.reporting_controller = reporting_controller
        self.reporting_instance = trim(reporting_instance, SHORT_FIELD_LIMIT)
        self._timeout_seconds = request_timeout_seconds

    def event_body(self, request: EventRequest, *, now: datetime | None = None) -> dict[str, Any]:
        return event_body(
            request,
            reporting_controller=self.reporting_controller,
            reporting_instance=self.reporting_instance,
            now=now,
        )

    def post(self, request: EventRequest) -> bool:
        """Record an Event (shown by ``kubectl get events`` and ``kubectl describe``). Never raises."""

        def create() -> object:
            body = client.EventsV1Event.model_validate(self.event_body(request))
            return self._events.create_namespaced_event(
                request.namespace, body, _preload_content=False, _request_timeout=self._timeout_seconds
            )

        fields = {"namespace": request.namespace, "reason": request.reason}
        return call_quietly("event not recorded", fields, create)
