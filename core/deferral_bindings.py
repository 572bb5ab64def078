"""A Karmada ResourceBinding of a held Job: what holding (the webhook, at its CREATE), releasing
(fleet mode, fleet.deferral) and re-pinning (the webhook, at its UPDATE) read and write of it. Pure.

A held Job's binding has ``spec.suspension.scheduling: true`` (Karmada's scheduler skips it: no
cluster is chosen, nothing is dispatched); its release resumes scheduling with the placement
pinned to one member (``clusterAffinity.clusterNames: [member]``) and the pin label, which the
webhook keeps in place when Karmada's detector rewrites the placement from the policy
(docs/fleet.md, "Deferrable Jobs").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.podspec import as_list, as_mapping, string_map

# On a released Job: the member it was released into ("" never written: unpinned releases omit it).
FLEET_MEMBER_ANNOTATION = "ecopulse.io/fleet-member"
# On a ResourceBinding we pinned: the member. /mutate-binding re-pins a binding carrying it when
# the detector rewrites the placement from the policy (objectSelector on this label).
PINNED_CLUSTER_LABEL = "ecopulse.io/pinned-cluster"
JOB_KIND = "Job"
JOB_API_VERSION = "batch/v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobBinding:
    """The ResourceBinding Karmada made for one Job, as a release reads it."""

    namespace: str
    name: str  # the binding's own name (Karmada: <job>-job)
    job_name: str
    job_uid: str
    scheduling_suspended: bool
    # The clusters its placement names (clusterAffinity.clusterNames); None: any member.
    allowed_clusters: frozenset[str] | None
    clusters: tuple[str, ...]  # where Karmada scheduled it (empty while held)
    pinned: str  # our pin label's member, "" if none
    has_labels: bool = False  # metadata.labels exists (a JSON Patch adds into it, or makes it)
    has_affinities: bool = False  # placement.clusterAffinities exists (exclusive with a pin)

    @property
    def job_key(self) -> tuple[str, str]:
        return (self.namespace, self.job_name)


def slim_job_binding(obj: Mapping[str, object]) -> JobBinding | None:
    """A ResourceBinding of a batch/v1 Job, else None (odd values never raise)."""
    metadata = as_mapping(obj.get("metadata"))
    spec = as_mapping(obj.get("spec"))
    resource = as_mapping(spec.get("resource"))
    if resource.get("kind") != JOB_KIND or resource.get("apiVersion") != JOB_API_VERSION:
        return None
    name, job_name = metadata.get("name"), resource.get("name")
    namespace = resource.get("namespace") or metadata.get("namespace")
    if not isinstance(name, str) or not isinstance(job_name, str) or not isinstance(namespace, str):
        return None
    uid = resource.get("uid")
    suspension = as_mapping(spec.get("suspension"))
    affinity = as_mapping(as_mapping(spec.get("placement")).get("clusterAffinity"))
    names = [n for n in as_list(affinity.get("clusterNames")) if isinstance(n, str)]
    clusters = tuple(
        c for c in (as_mapping(t).get("name") for t in as_list(spec.get("clusters"))) if isinstance(c, str)
    )
    return JobBinding(
        namespace=namespace,
        name=name,
        job_name=job_name,
        job_uid=uid if isinstance(uid, str) else "",
        scheduling_suspended=suspension.get("scheduling") is True,
        allowed_clusters=frozenset(names) if names else None,
        clusters=clusters,
        pinned=string_map(metadata.get("labels")).get(PINNED_CLUSTER_LABEL, ""),
        has_labels=isinstance(metadata.get("labels"), Mapping),
        has_affinities="clusterAffinities" in as_mapping(spec.get("placement")),
    )


def escape(token: str) -> str:
    """A JSON Pointer token."""
    return token.replace("~", "~0").replace("/", "~1")


def binding_release_patch(binding: JobBinding, *, member: str) -> list[dict[str, object]]:
    """The second write: the binding's scheduling resumed while still suspended by us (``test``),
    pinned to ``member`` (Karmada's scheduler then picks that cluster only); ``member`` "" leaves
    the user's placement as it is."""
    ops: list[dict[str, object]] = [
        {"op": "test", "path": "/spec/suspension/scheduling", "value": True},
        {"op": "replace", "path": "/spec/suspension/scheduling", "value": False},
    ]
    if member:
        ops.extend(pin_ops(binding, member=member))
    return ops


def pin_ops(binding: JobBinding, *, member: str) -> list[dict[str, object]]:
    """The binding's placement pinned to one member: ``clusterAffinity`` naming it alone, the
    ``clusterAffinities`` terms (exclusive with it in Karmada) removed, the pin label; the rest of
    the placement (the user's tolerations, replica scheduling) stays."""
    ops: list[dict[str, object]] = [
        {"op": "add", "path": "/spec/placement/clusterAffinity", "value": {"clusterNames": [member]}},
    ]
    if binding.has_affinities:
        ops.append({"op": "remove", "path": "/spec/placement/clusterAffinities"})
    if binding.has_labels:
        ops.append({"op": "add", "path": f"/metadata/labels/{escape(PINNED_CLUSTER_LABEL)}", "value": member})
    else:
        ops.append({"op": "add", "path": "/metadata/labels", "value": {PINNED_CLUSTER_LABEL: member}})
    return ops


def hold_ops(binding: Mapping[str, object]) -> list[dict[str, object]]:
    """At a held Job's binding CREATE: its scheduling suspended (the policy's own dispatching
    suspension, if any, kept)."""
    spec = as_mapping(binding.get("spec"))
    if isinstance(spec.get("suspension"), Mapping):
        return [{"op": "add", "path": "/spec/suspension/scheduling", "value": True}]
    return [{"op": "add", "path": "/spec/suspension", "value": {"scheduling": True}}]


def repin_ops(binding: Mapping[str, object]) -> list[dict[str, object]]:
    """At an UPDATE of a binding we pinned: the pin put back where the placement lost it (Karmada's
    detector copies the policy's placement over the binding's); nothing when it holds."""
    record = slim_job_binding(binding)
    if record is None or not record.pinned:
        return []
    placement = as_mapping(binding.get("spec")).get("placement")
    if not isinstance(placement, Mapping):
        return []  # no placement at all: not Karmada's binding as we know it
    affinity = as_mapping(placement.get("clusterAffinity"))
    pinned = list(affinity) == ["clusterNames"] and affinity.get("clusterNames") == [record.pinned]
    if pinned and not record.has_affinities:
        return []
    return pin_ops(record, member=record.pinned)[:-1]  # the label is there already
