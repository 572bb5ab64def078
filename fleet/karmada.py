"""Fleet mode's only edge to the Karmada API server: the watch caches it reads, and every write.

Reads are reflectors (core.kube.reflector) over the official client: member Clusters,
PropagationPolicies and ClusterPropagationPolicies, Deployments (the resource templates),
ResourceBindings (where Karmada scheduled them) and Namespaces (opt-out labels and defaults).

Writes are four, all here, none of them a delete: a JSON merge patch of a policy (its
``spec.placement`` and our ``ecopulse.io/`` annotations, conditional on the ``resourceVersion`` we
planned on, so a user's edit in between wins), a ``WorkloadRebalancer`` when a fresh schedule is
needed, and Events on the policy. Karmada then moves the replicas itself, with its graceful
eviction. A held Job's release (:meth:`KarmadaApi.release_job`, fleet.deferral) is two JSON
Patches, each ``test``-guarded: the Job's suspension lifted, then its ResourceBinding's scheduling
resumed and pinned to the chosen member. Every API answer becomes a :class:`WriteResult`; nothing
here raises on an API error, a timeout or a refused connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Any

from kubernetes import client

from core.deferral_bindings import JobBinding, binding_release_patch, slim_job_binding
from core.deferral_hints import JobFacts
from core.kube.caches import job_reflector, namespace_reflector
from core.kube.events import (
    REQUEST_TIMEOUT_SECONDS,
    EventRecorder,
    EventRequest,
    raw_write,
    trim,
)
from core.kube.reflector import Reflector
from core.model import NamespaceInfo
from fleet.deferral import FleetRelease, job_release_patch
from fleet.records import (
    CLUSTER_PROPAGATION_POLICY,
    POLICY_GROUP,
    POLICY_VERSION,
    BindingRecord,
    MemberCluster,
    PolicyRecord,
    WorkloadRecord,
    slim_binding,
    slim_cluster,
    slim_deployment,
    slim_policy,
)

log = logging.getLogger(__name__)

REPORTING_CONTROLLER = "ecopulse.io/fleet"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
# A finished WorkloadRebalancer is garbage-collected by Karmada after this long.
REBALANCER_TTL_SECONDS = 600
# Events about a ClusterPropagationPolicy (cluster-scoped) go to this namespace.
CLUSTER_EVENTS_NAMESPACE = "default"


class WriteOutcome(StrEnum):
    WRITTEN = "written"
    DRY_RUN = "dry-run"  # the server checked the request (schema, RBAC) and changed nothing
    CONFLICT = "conflict"  # 409: the object changed since we read it; the next pass decides again
    GONE = "gone"  # 404
    FORBIDDEN = "forbidden"  # 403
    INVALID = "invalid"  # 422: the server refused the body
    ERROR = "error"  # anything else, timeouts and refused connections: the outcome is unknown


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteResult:
    outcome: WriteOutcome
    status: int | None
    message: str = ""


# A refusal's status, named; any other, and no answer, is an ERROR: the outcome is unknown.
REFUSAL_OUTCOMES = {
    409: WriteOutcome.CONFLICT,
    404: WriteOutcome.GONE,
    403: WriteOutcome.FORBIDDEN,
    422: WriteOutcome.INVALID,
}


# --- reads -----------------------------------------------------------------------------------------


def _custom_lister(api_client: client.ApiClient, group: str, version: str, plural: str) -> Callable[..., Any]:
    """list (and, with watch=True, watch) one custom resource across all namespaces."""
    return partial(client.CustomObjectsApi(api_client).list_cluster_custom_object, group, version, plural)


@dataclass(frozen=True, slots=True)
class FleetCaches:
    clusters: Reflector[MemberCluster]
    policies: Reflector[PolicyRecord]
    cluster_policies: Reflector[PolicyRecord]
    deployments: Reflector[WorkloadRecord]
    bindings: Reflector[BindingRecord]
    namespaces: Reflector[NamespaceInfo]
    # Deferrable Jobs on the Karmada API server (held, or asking for a deadline) and their bindings.
    jobs: Reflector[JobFacts]
    job_bindings: Reflector[JobBinding]

    def all(self) -> tuple[Reflector[Any], ...]:
        return (
            self.clusters,
            self.policies,
            self.cluster_policies,
            self.deployments,
            self.bindings,
            self.namespaces,
            self.jobs,
            self.job_bindings,
        )

    @property
    def synced(self) -> bool:
        """The placement pass's caches: it never waits on the deferrable Jobs' (an identity
        without the Jobs' RBAC still places workloads)."""
        return all(reflector.synced.is_set() for reflector in self.all() if reflector not in self.deferral())

    def deferral(self) -> tuple[Reflector[Any], ...]:
        return (self.jobs, self.job_bindings)

    @property
    def deferral_synced(self) -> bool:
        return all(reflector.synced.is_set() for reflector in self.deferral())


def fleet_caches(api_client: client.ApiClient) -> FleetCaches:
    return FleetCaches(
        clusters=Reflector(
            name="karmada-clusters",
            list_call=_custom_lister(api_client, "cluster.karmada.io", "v1alpha1", "clusters"),
            slim=slim_cluster,
        ),
        policies=Reflector(
            name="propagationpolicies",
            list_call=_custom_lister(api_client, "policy.karmada.io", "v1alpha1", "propagationpolicies"),
            slim=slim_policy,
        ),
        cluster_policies=Reflector(
            name="clusterpropagationpolicies",
            list_call=_custom_lister(
                api_client, "policy.karmada.io", "v1alpha1", "clusterpropagationpolicies"
            ),
            slim=slim_policy,
        ),
        deployments=Reflector(
            name="deployments",
            list_call=client.AppsV1Api(api_client).list_deployment_for_all_namespaces,
            slim=slim_deployment,
        ),
        bindings=Reflector(
            name="resourcebindings",
            list_call=_custom_lister(api_client, "work.karmada.io", "v1alpha2", "resourcebindings"),
            slim=slim_binding,
        ),
        namespaces=namespace_reflector(api_client),
        jobs=job_reflector(api_client),
        job_bindings=job_binding_reflector(api_client),
    )


def job_binding_reflector(api_client: client.ApiClient) -> Reflector[JobBinding]:
    """The ResourceBindings of Jobs (the others are dropped by the slim function)."""
    return Reflector(
        name="job-resourcebindings",
        list_call=_custom_lister(api_client, "work.karmada.io", "v1alpha2", "resourcebindings"),
        slim=slim_job_binding,
    )


# --- writes ----------------------------------------------------------------------------------------


def policy_patch_body(
    policy: PolicyRecord, *, placement: Mapping[str, object] | None, annotations: Mapping[str, str | None]
) -> dict[str, object]:
    """The merge patch as sent: conditional on the resourceVersion the decision was made on."""
    metadata: dict[str, object] = {"resourceVersion": policy.resource_version}
    if annotations:
        metadata["annotations"] = dict(annotations)
    body: dict[str, object] = {"metadata": metadata}
    if placement is not None:
        body["spec"] = {"placement": dict(placement)}
    return body


def rebalancer_body(policy: PolicyRecord, workloads: tuple[str, ...]) -> dict[str, object]:
    """A WorkloadRebalancer (cluster-scoped) asking Karmada for a fresh schedule of these Deployments."""
    base = trim(f"eco-pulse-{policy.name}", 50).lower().rstrip("-.") or "eco-pulse"
    return {
        "apiVersion": "apps.karmada.io/v1alpha1",
        "kind": "WorkloadRebalancer",
        "metadata": {"generateName": f"{base}-", "labels": {"app.kubernetes.io/managed-by": "eco-pulse"}},
        "spec": {
            "workloads": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": space, "name": name}
                for space, name in (key.split("/", 1) for key in workloads)
            ],
            "ttlSecondsAfterFinished": REBALANCER_TTL_SECONDS,
        },
    }


class KarmadaApi:
    """Every write fleet mode makes to the Karmada API server. Thread-safe as far as ApiClient is."""

    def __init__(self, api_client: client.ApiClient, *, reporting_instance: str) -> None:
        self._custom = client.CustomObjectsApi(api_client)
        self._batch = client.BatchV1Api(api_client)
        self._recorder = EventRecorder(
            api_client, reporting_controller=REPORTING_CONTROLLER, reporting_instance=reporting_instance
        )

    def write_policy(
        self,
        policy: PolicyRecord,
        *,
        placement: Mapping[str, object] | None,
        annotations: Mapping[str, str | None],
        dry_run: bool,
    ) -> WriteResult:
        """Merge-patch the policy; in dry run the server validates it and changes nothing."""
        body = policy_patch_body(policy, placement=placement, annotations=annotations)
        options: dict[str, Any] = {
            "_content_type": MERGE_PATCH,
            "_preload_content": False,
            "_request_timeout": REQUEST_TIMEOUT_SECONDS,
        }
        if dry_run:
            options["dry_run"] = "All"
        if policy.kind == CLUSTER_PROPAGATION_POLICY:
            call = partial(
                self._custom.patch_cluster_custom_object,
                "policy.karmada.io",
                "v1alpha1",
                "clusterpropagationpolicies",
                policy.name,
                body,
                **options,
            )
        else:
            call = partial(
                self._custom.patch_namespaced_custom_object,
                "policy.karmada.io",
                "v1alpha1",
                policy.namespace,
                "propagationpolicies",
                policy.name,
                body,
                **options,
            )
        return self._answer(call, what="policy patch", policy=policy, dry_run=dry_run)

    def request_fresh_schedule(
        self, policy: PolicyRecord, workloads: tuple[str, ...], *, dry_run: bool
    ) -> WriteResult:
        body = rebalancer_body(policy, workloads)
        options: dict[str, Any] = {"_preload_content": False, "_request_timeout": REQUEST_TIMEOUT_SECONDS}
        if dry_run:
            options["dry_run"] = "All"
        call = partial(
            self._custom.create_cluster_custom_object,
            "apps.karmada.io",
            "v1alpha1",
            "workloadrebalancers",
            body,
            **options,
        )
        return self._answer(call, what="workload rebalancer", policy=policy, dry_run=dry_run)

    def release_job(self, release: FleetRelease, *, now: datetime) -> tuple[WriteResult, WriteResult | None]:
        """A held Job's release, in this order: the Job, then its binding (None: not attempted; the
        Job's write failed, or Karmada has not made the binding). Always live, dry run or not: it
        only ever undoes our own hold. A Job already released (the binding write failed before)
        gets the binding write only."""
        job = release.job
        job_result = WriteResult(outcome=WriteOutcome.WRITTEN, status=None)
        if job.held:
            patch = job_release_patch(release, now=now)
            job_call: Callable[[], object] = partial(
                self._batch.patch_namespaced_job,
                job.name,
                job.namespace,
                patch,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
            job_result = self._write(
                job_call, what="job release", fields={"job": f"{job.namespace}/{job.name}"}
            )
        binding = release.binding
        if (
            job_result.outcome is not WriteOutcome.WRITTEN
            or binding is None
            or not binding.scheduling_suspended
        ):
            return job_result, None
        binding_call: Callable[[], object] = partial(
            self._custom.patch_namespaced_custom_object,
            "work.karmada.io",
            "v1alpha2",
            binding.namespace,
            "resourcebindings",
            binding.name,
            binding_release_patch(binding, member=release.member),
            _content_type=JSON_PATCH,
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT_SECONDS,
        )
        fields = {"binding": f"{binding.namespace}/{binding.name}", "member": release.member}
        return job_result, self._write(binding_call, what="binding release", fields=fields)

    def post_job_event(self, job: JobFacts, *, reason: str, message: str, action: str) -> bool:
        return self._recorder.post(
            EventRequest(
                namespace=job.namespace,
                involved={
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job.name,
                    "namespace": job.namespace,
                    "uid": job.uid,
                },
                reason=reason,
                message=message,
                action=action,
            )
        )

    def post_event(
        self, policy: PolicyRecord, *, reason: str, message: str, event_type: str = "Normal"
    ) -> bool:
        involved = {
            "apiVersion": f"{POLICY_GROUP}/{POLICY_VERSION}",
            "kind": policy.kind,
            "name": policy.name,
            "uid": policy.uid,
        }
        if policy.namespace:
            involved["namespace"] = policy.namespace
        return self._recorder.post(
            EventRequest(
                namespace=policy.namespace or CLUSTER_EVENTS_NAMESPACE,
                involved=involved,
                reason=reason,
                message=message,
                event_type=event_type,
                action="Place",
            )
        )

    def _write(self, call: Callable[[], object], *, what: str, fields: Mapping[str, str]) -> WriteResult:
        answer = raw_write(call)
        result = WriteResult(
            outcome=answer.outcome(
                accepted=WriteOutcome.WRITTEN, refusals=REFUSAL_OUTCOMES, unknown=WriteOutcome.ERROR
            ),
            status=answer.status,
            message=answer.message,
        )
        answer.log(log, "%s %s", what, result.outcome.value, fields=dict(fields), dry_run=False)
        return result

    def _answer(
        self, call: Callable[[], object], *, what: str, policy: PolicyRecord, dry_run: bool
    ) -> WriteResult:
        answer = raw_write(call)
        result = WriteResult(
            outcome=answer.outcome(
                accepted=WriteOutcome.DRY_RUN if dry_run else WriteOutcome.WRITTEN,
                refusals=REFUSAL_OUTCOMES,
                unknown=WriteOutcome.ERROR,
            ),
            status=answer.status,
            message=answer.message,
        )
        fields = {"policy": policy.key, "kind": policy.kind}
        answer.log(log, "%s %s", what, result.outcome.value, fields=fields, dry_run=dry_run)
        return result
