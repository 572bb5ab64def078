"""A Karmada ResourceBinding of a held Job: what holding (the webhook, at its CREATE), releasing
(fleet mode, fleet.deferral) and re-pinning (the webhook, at its UPDATE) read and write of it. Pure.

A held Job's binding has ``spec.suspension.scheduling: true`` (Karmada's scheduler skips it: no
cluster is chosen, nothing is dispatched); its release resumes scheduling with the placement
pinned to one member and the pin label, which the webhook keeps in place when Karmada's detector
rewrites the placement from the policy (docs/fleet.md, "Deferrable Jobs"). The pin is the first of
ordered ``clusterAffinities`` terms, the user's own placement after it: Karmada's scheduler uses the
first term that can schedule, so the Job runs in the chosen member only, and should that member
fail after the release, Karmada's failover still has the user's placement to go to, as without us.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core.podspec import as_list, as_mapping, string_map

# On a released Job: the member it was released into ("" never written: unpinned releases omit it).
FLEET_MEMBER_ANNOTATION = "ecopulse.io/fleet-member"
# On a ResourceBinding we pinned: the member. /mutate-binding re-pins a binding carrying it when
# the detector rewrites the placement from the policy (objectSelector on this label).
PINNED_CLUSTER_LABEL = "ecopulse.io/pinned-cluster"
# The binding's ordered placement terms once released (Karmada tries ``clusterAffinities`` in order
# and moves to the next term when one cannot schedule): the chosen member, then the user's own.
CHOSEN_AFFINITY = "ecopulse.io/chosen-member"
POLICY_AFFINITY = "ecopulse.io/policy-placement"  # the policy's single clusterAffinity (or none), as a term
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
    has_affinity: bool = False  # placement.clusterAffinity exists (exclusive with clusterAffinities)
    # The user's placement as ordered terms (policy_terms): what follows our pin.
    policy_terms: tuple[Mapping[str, object], ...] = field(default=(), compare=False)

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
    placement = as_mapping(spec.get("placement"))
    terms = policy_terms(placement)
    names = _named_clusters(terms)
    clusters = tuple(
        c for c in (as_mapping(t).get("name") for t in as_list(spec.get("clusters"))) if isinstance(c, str)
    )
    return JobBinding(
        namespace=namespace,
        name=name,
        job_name=job_name,
        job_uid=uid if isinstance(uid, str) else "",
        scheduling_suspended=suspension.get("scheduling") is True,
        allowed_clusters=names,
        clusters=clusters,
        pinned=string_map(metadata.get("labels")).get(PINNED_CLUSTER_LABEL, ""),
        has_labels=isinstance(metadata.get("labels"), Mapping),
        has_affinity=placement.get("clusterAffinity") is not None,
        policy_terms=terms,
    )


def policy_terms(placement: Mapping[str, object]) -> tuple[Mapping[str, object], ...]:
    """The user's placement as ordered ``clusterAffinities`` terms, our pin left out: their own
    terms as they are, else their single ``clusterAffinity`` as one term (none: a term that matches
    every member, as Karmada reads an empty affinity)."""
    listed = [as_mapping(t) for t in as_list(placement.get("clusterAffinities"))]
    if listed:
        return tuple(t for t in listed if t.get("affinityName") != CHOSEN_AFFINITY)
    single = as_mapping(placement.get("clusterAffinity"))
    return ({"affinityName": POLICY_AFFINITY, **single},)


def _named_clusters(terms: tuple[Mapping[str, object], ...]) -> frozenset[str] | None:
    """The members the user's terms allow when every term names them; None: not by name alone
    (a term with no names, or selectors too, is for Karmada to evaluate)."""
    allowed: set[str] = set()
    for term in terms:
        names = [n for n in as_list(term.get("clusterNames")) if isinstance(n, str)]
        if not names or term.get("labelSelector") is not None or term.get("fieldSelector") is not None:
            return None
        allowed.update(names)
    excluded = {n for t in terms for n in as_list(t.get("exclude")) if isinstance(n, str)}
    return frozenset(allowed - excluded) or None


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


def pinned_terms(binding: JobBinding, *, member: str) -> list[Mapping[str, object]]:
    """The pinned placement's ordered terms: the chosen member, then the user's own."""
    return [{"affinityName": CHOSEN_AFFINITY, "clusterNames": [member]}, *binding.policy_terms]


def pin_ops(binding: JobBinding, *, member: str) -> list[dict[str, object]]:
    """The binding's placement pinned to one member (``pinned_terms``; the single
    ``clusterAffinity``, exclusive with the terms in Karmada, removed) and the pin label; the rest
    of the placement (the user's tolerations, replica scheduling) stays."""
    ops: list[dict[str, object]] = []
    if binding.has_affinity:
        ops.append({"op": "remove", "path": "/spec/placement/clusterAffinity"})
    ops.append(
        {
            "op": "add",
            "path": "/spec/placement/clusterAffinities",
            "value": pinned_terms(binding, member=member),
        }
    )
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
    terms = [as_mapping(t) for t in as_list(placement.get("clusterAffinities"))]
    if not record.has_affinity and terms == pinned_terms(record, member=record.pinned):
        return []
    return pin_ops(record, member=record.pinned)[:-1]  # the label is there already
