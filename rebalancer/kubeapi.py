"""The rebalancer's only Kubernetes write edge: evictions through the Eviction API, and Events.

Evictions go through ``POST /api/v1/namespaces/{ns}/pods/{name}/eviction`` (policy/v1), never a pod
DELETE, so PodDisruptionBudgets hold. Every API answer becomes an :class:`EvictionResult`; nothing here
raises on an API error, a timeout or a refused connection.

Bodies are built as wire-shaped dicts (camelCase, exactly what goes on the wire) and validated into the
client's models with ``model_validate``. kubernetes 37.x wraps every API method in
``pydantic.validate_call``, so a dict passed as ``body`` is coerced into the same model anyway; doing it
explicitly keeps mypy honest and makes a misspelt key fail here (the models forbid extra keys).

Events are posted by core.kube.events (shared with fleet mode), which also avoids the MicroTime pitfall.

Responses are read raw (``_preload_content=False``): the Eviction endpoint answers with a ``Status`` that
does not fit the generated ``V1Eviction`` response type, and nothing we need is in a decoded model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kubernetes import client

from core.kube.caches import PLURALS, POLICY_GROUP, POLICY_VERSION
from core.kube.events import (
    REQUEST_TIMEOUT_SECONDS,
    EventRecorder,
    EventRequest,
    call_quietly,
    raw_write,
)

log = logging.getLogger(__name__)

REPORTING_CONTROLLER = "ecopulse.io/rebalancer"


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


# A refusal's status, named; any other (409 precondition, 500 several PDBs, 504) is an ERROR.
REFUSAL_OUTCOMES = {
    429: EvictionOutcome.BLOCKED,
    404: EvictionOutcome.GONE,
    403: EvictionOutcome.FORBIDDEN,
}


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
        self._recorder = EventRecorder(
            api_client, reporting_controller=REPORTING_CONTROLLER, reporting_instance=reporting_instance
        )
        self._custom = client.CustomObjectsApi(api_client)
        self.component = component
        self.reporting_instance = self._recorder.reporting_instance

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

        def create() -> object:
            # The query dryRun must match deleteOptions.dryRun or the server answers 400; both say All.
            return self._core.create_namespaced_pod_eviction(
                name,
                namespace,
                client.V1Eviction.model_validate(body),
                dry_run="All" if dry_run else None,
                _preload_content=False,  # the raw urllib3 response, see the module doc
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )

        answer = raw_write(create)
        result = EvictionResult(
            outcome=answer.outcome(
                accepted=EvictionOutcome.DRY_RUN if dry_run else EvictionOutcome.EVICTED,
                refusals=REFUSAL_OUTCOMES,
                unknown=EvictionOutcome.ERROR,
            ),
            status=answer.status,
            message=answer.message,
        )
        answer.log(
            log,
            "eviction %s",
            result.outcome.value,
            fields={"namespace": namespace, "pod": name},
            dry_run=dry_run,
        )
        return result

    # --- events ------------------------------------------------------------------------------------
    def post_event(self, request: EventRequest) -> bool:
        """Record an Event (shown by ``kubectl get events`` and ``kubectl describe``). Never raises."""
        return self._recorder.post(request)

    # --- policy status -----------------------------------------------------------------------------
    def write_policy_status(self, *, kind: str, namespace: str, name: str, status: Mapping[str, Any]) -> bool:
        """Merge-patch an EcoPulsePolicy's (or ClusterEcoPulsePolicy's) status subresource. Never raises."""
        plural = PLURALS.get(kind)
        if plural is None:
            return False
        body = {"status": dict(status)}

        def patch() -> object:
            if namespace:
                return self._custom.patch_namespaced_custom_object_status(
                    POLICY_GROUP,
                    POLICY_VERSION,
                    namespace,
                    plural,
                    name,
                    body,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT_SECONDS,
                )
            return self._custom.patch_cluster_custom_object_status(
                POLICY_GROUP,
                POLICY_VERSION,
                plural,
                name,
                body,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )

        return call_quietly("policy status not written", {"namespace": namespace, "policy": name}, patch)
