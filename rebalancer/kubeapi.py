"""The rebalancer's only Kubernetes write edge: evictions through the Eviction API, and Events.

Evictions go through ``POST /api/v1/namespaces/{ns}/pods/{name}/eviction`` (policy/v1), never a pod
DELETE, so PodDisruptionBudgets hold. Every API answer becomes an :class:`EvictionResult`; nothing here
raises on an API error, a timeout or a refused connection.

Bodies are built as wire-shaped dicts (camelCase, exactly what goes on the wire) and validated into the
client's models with ``model_validate``. kubernetes 37.x wraps every API method in
``pydantic.validate_call``, so a dict passed as ``body`` is coerced into the same model anyway; doing it
explicitly keeps mypy honest and makes a misspelt key fail here (the models forbid extra keys).

One model pitfall remains, and it concerns Events: ``eventTime`` is a MicroTime that the API server parses
with exactly six fractional digits, while the client re-serialises the model's ``datetime`` with
``isoformat()``, which drops the fraction when the microseconds are exactly 0 (the server then answers 400).
:func:`event_time` never hands the client such a value.

Responses are read raw (``_preload_content=False``): the Eviction endpoint answers with a ``Status`` that
does not fit the generated ``V1Eviction`` response type, and nothing we need is in a decoded model.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

import urllib3
from kubernetes import client

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10
MESSAGE_LIMIT = 300
# events.k8s.io/v1 validation limits: note <= 1024 bytes; reason, action, reportingInstance <= 128.
NOTE_LIMIT_BYTES = 1024
SHORT_FIELD_LIMIT = 128
REPORTING_CONTROLLER = "ecopulse.io/rebalancer"
# Keys an ObjectReference may carry (the model rejects any other).
_REFERENCE_KEYS = ("apiVersion", "kind", "name", "namespace", "uid", "resourceVersion", "fieldPath")


class EvictionOutcome(StrEnum):
    EVICTED = "evicted"  # 2xx: the pod was deleted or marked for graceful deletion
    DRY_RUN = "dry-run"  # 2xx to a server-side dry run: the eviction would have been allowed
    BLOCKED = "blocked"  # 429: a PodDisruptionBudget forbids it now; try again later
    GONE = "gone"  # 404: the pod no longer exists
    FORBIDDEN = "forbidden"  # 403: RBAC, or a PDB in a state that forbids evictions (disruptionsAllowed < 0)
    ERROR = "error"  # anything else: 409 precondition, 500 (several PDBs), 504, timeouts, refused connections


@dataclass(frozen=True, slots=True, kw_only=True)
class EvictionRequest:
    """One pod to evict, as the Eviction API takes it."""

    namespace: str
    name: str
    uid: str | None = None  # a precondition: never evict a same-named replacement
    grace_period_seconds: int | None = None  # None: the pod's own terminationGracePeriodSeconds
    dry_run: bool = False  # the server checks everything (RBAC, PDBs) and changes nothing
    reason: str = ""  # an annotation on the Eviction, for the audit log


@dataclass(frozen=True, slots=True, kw_only=True)
class EvictionResult:
    outcome: EvictionOutcome
    status: int | None  # the HTTP status; None when no answer came (timeout, connection refused)
    message: str  # the Status body's message (and its causes), at most 300 characters; never the body


def event_time(now: datetime | None = None) -> datetime:
    """An aware UTC datetime that the client serialises as a valid MicroTime (six fractional digits).

    ``isoformat()`` omits the fraction when microseconds are 0, and the API server rejects that; one
    microsecond later is the same moment for anyone reading an Event.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.replace(microsecond=1) if moment.microsecond == 0 else moment


def _trim(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _trim_bytes(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes (the server counts bytes), never splitting a character."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode(errors="ignore") + "…"


def _name_prefix(name: str) -> str:
    """A base for generateName from the involved object's name: lowercase, DNS-subdomain characters."""
    base = re.sub(r"[^a-z0-9.-]+", "-", name.lower())[:50].strip(".-")
    return base or "eco-pulse"


def status_message(body: str | bytes | None, fallback: str) -> str:
    """The ``message`` of a ``Status`` body, with its ``details.causes`` messages; `fallback` otherwise."""
    status: Any = None
    if body:
        try:
            status = json.loads(body)
        except ValueError:
            status = None
    if not isinstance(status, dict) or not isinstance(status.get("message"), str):
        return _trim(fallback, MESSAGE_LIMIT)
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
    return _trim(message, MESSAGE_LIMIT)


def _outcome_for_error(status: int) -> EvictionOutcome:
    if status == 429:
        return EvictionOutcome.BLOCKED
    if status == 404:
        return EvictionOutcome.GONE
    if status == 403:
        return EvictionOutcome.FORBIDDEN
    return EvictionOutcome.ERROR


class KubeApi:
    """Writes to the Kubernetes API on the rebalancer's behalf. Thread-safe as far as ApiClient is."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        component: str = "eco-pulse-rebalancer",
        reporting_instance: str,
    ) -> None:
        self._core = client.CoreV1Api(api_client)
        self._events = client.EventsV1Api(api_client)
        self.component = component
        self.reporting_instance = _trim(reporting_instance, SHORT_FIELD_LIMIT)

    # --- evictions ---------------------------------------------------------------------------------
    def eviction_body(self, request: EvictionRequest) -> dict[str, Any]:
        """The policy/v1 Eviction exactly as sent."""
        annotations = {"requested-by": self.component}
        if request.reason:
            annotations["reason"] = request.reason
        body: dict[str, Any] = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": request.name, "namespace": request.namespace, "annotations": annotations},
        }
        delete_options: dict[str, Any] = {}
        if request.grace_period_seconds is not None:
            delete_options["gracePeriodSeconds"] = request.grace_period_seconds
        if request.uid:
            # Never evict a same-named replacement (StatefulSet pods keep their names).
            delete_options["preconditions"] = {"uid": request.uid}
        if request.dry_run:
            delete_options["dryRun"] = ["All"]
        if delete_options:
            body["deleteOptions"] = delete_options
        return body

    def evict(self, request: EvictionRequest) -> EvictionResult:
        """Ask the API server to evict one pod. PDBs are enforced server-side; never raises on API errors."""
        body = self.eviction_body(request)
        namespace, name, dry_run = request.namespace, request.name, request.dry_run
        try:
            # The query dryRun must match deleteOptions.dryRun or the server answers 400; both say All.
            response = cast(
                urllib3.BaseHTTPResponse,
                self._core.create_namespaced_pod_eviction(
                    name,
                    namespace,
                    client.V1Eviction.model_validate(body),
                    dry_run="All" if dry_run else None,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT_SECONDS,
                ),
            )  # _preload_content=False: the raw urllib3 response, see the module doc
        except client.ApiException as error:
            status = int(error.status) if error.status else None
            result = EvictionResult(
                outcome=_outcome_for_error(status) if status else EvictionOutcome.ERROR,
                status=status,
                message=status_message(error.body, f"HTTP {error.status} {error.reason or ''}".strip()),
            )
        # Timeouts and refused connections; ValueError: a value the client's models reject (pydantic).
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            result = EvictionResult(
                outcome=EvictionOutcome.ERROR, status=None, message=_trim(f"{error}", MESSAGE_LIMIT)
            )
        else:
            status = int(response.status)
            response.drain_conn()  # an unread body would keep the connection out of the pool
            response.release_conn()
            result = EvictionResult(
                outcome=EvictionOutcome.DRY_RUN if dry_run else EvictionOutcome.EVICTED,
                status=status,
                message="",
            )
        log.log(
            logging.INFO
            if result.outcome in (EvictionOutcome.EVICTED, EvictionOutcome.DRY_RUN)
            else logging.WARNING,
            "eviction %s",
            result.outcome.value,
            extra={
                "namespace": namespace,
                "pod": name,
                "status": result.status,
                "detail": result.message,
                "dry_run": dry_run,
            },
        )
        return result

    # --- events ------------------------------------------------------------------------------------
    def event_body(
        self,
        *,
        namespace: str,
        involved: Mapping[str, str],
        reason: str,
        message: str,
        event_type: str = "Normal",
        action: str = "Evict",
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """The events.k8s.io/v1 Event as handed to the client (eventTime as a datetime, see module doc)."""
        regarding = {key: involved[key] for key in _REFERENCE_KEYS if involved.get(key)}
        regarding.setdefault("namespace", namespace)  # the server requires it to match the Event's
        base = _name_prefix(regarding.get("name", ""))
        return {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            # generateName: the server appends five random characters, so names never collide. It must be
            # a DNS-subdomain prefix: a trailing "-" is allowed, a trailing "." is not (422).
            "metadata": {"generateName": f"{base}-", "namespace": namespace},
            "eventTime": event_time(now),
            "regarding": regarding,
            "reason": _trim(reason, SHORT_FIELD_LIMIT),
            "note": _trim_bytes(message, NOTE_LIMIT_BYTES),
            "action": _trim(action, SHORT_FIELD_LIMIT),
            "type": event_type,
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": self.reporting_instance,
        }

    def post_event(
        self,
        *,
        namespace: str,
        involved: Mapping[str, str],
        reason: str,
        message: str,
        event_type: str = "Normal",
        action: str = "Evict",
    ) -> bool:
        """Record an Event (shown by ``kubectl get events`` and ``kubectl describe``). Never raises."""
        try:
            body = client.EventsV1Event.model_validate(
                self.event_body(
                    namespace=namespace,
                    involved=involved,
                    reason=reason,
                    message=message,
                    event_type=event_type,
                    action=action,
                )
            )
            response = cast(
                urllib3.BaseHTTPResponse,
                self._events.create_namespaced_event(
                    namespace, body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT_SECONDS
                ),
            )
            response.drain_conn()
            response.release_conn()
        except client.ApiException as error:
            log.warning(
                "event not recorded",
                extra={
                    "namespace": namespace,
                    "reason": reason,
                    "status": error.status,
                    "detail": status_message(error.body, f"HTTP {error.status} {error.reason or ''}"),
                },
            )
            return False
        except Exception as error:  # timeouts, refused connections, a value the model rejects
            log.warning(
                "event not recorded",
                extra={"namespace": namespace, "reason": reason, "detail": _trim(repr(error), MESSAGE_LIMIT)},
            )
            return False
        return True
