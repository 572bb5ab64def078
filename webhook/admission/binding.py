"""/mutate-binding's decision, on the Karmada API server: a held Job's ResourceBinding gets its
scheduling suspended at CREATE, and a binding fleet mode pinned keeps its pin at UPDATE. Pure.

At CREATE the Job the binding is for is read once by the edge (webhook.binding_route) and given
here: only a Job our hold is on (``ecopulse.io/held-at`` and still suspended), the very one (uid),
gets the suspension. Anything else, and anything unknown, is admitted unchanged: Karmada then
propagates it exactly as it would without us (docs/fleet.md, "Deferrable Jobs").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from core.deferral_bindings import hold_ops, repin_ops, slim_job_binding
from core.deferral_hints import job_facts
from webhook.admission.review import AdmissionRequest, PatchOperation, UnreadableObject, encode_patch

BINDING_KIND = "work.karmada.io/v1alpha2/ResourceBinding"


class BindingSkip(StrEnum):
    NOT_A_BINDING = "not-a-binding"
    NO_OBJECT = "no-object"
    NOT_A_JOB = "not-a-job-binding"
    JOB_UNKNOWN = "job-unknown"  # the Job could not be read: admitted unchanged
    NOT_HELD = "job-not-held"
    HELD = "scheduling-suspended"
    PIN_HOLDS = "pin-holds"
    REPINNED = "repinned"


@dataclass(frozen=True, slots=True, kw_only=True)
class BindingOutcome:
    reason: BindingSkip
    patch_base64: str = ""

    @property
    def patched(self) -> bool:
        return bool(self.patch_base64)


def wants_job(review: AdmissionRequest) -> tuple[str, str] | None:
    """The (namespace, name) of the Job to read for this review, if a decision needs it."""
    if review.kind != BINDING_KIND or review.operation != "CREATE":
        return None
    try:
        obj = review.object
    except UnreadableObject:
        return None
    record = slim_job_binding(obj) if obj is not None else None
    return (record.namespace, record.job_name) if record is not None else None


def decide_binding(review: AdmissionRequest, *, job: Mapping[str, object] | None) -> BindingOutcome:
    """``job``: the Job as the API server has it (CREATE of a Job's binding), None if unread."""
    if review.kind != BINDING_KIND:
        return BindingOutcome(reason=BindingSkip.NOT_A_BINDING)
    try:
        obj = review.object
    except UnreadableObject:
        obj = None
    if obj is None:
        return BindingOutcome(reason=BindingSkip.NO_OBJECT)
    if review.operation == "UPDATE":
        ops = repin_ops(obj)
        if not ops:
            return BindingOutcome(reason=BindingSkip.PIN_HOLDS)
        return BindingOutcome(reason=BindingSkip.REPINNED, patch_base64=_encoded(ops))
    record = slim_job_binding(obj)
    if review.operation != "CREATE" or record is None:
        return BindingOutcome(reason=BindingSkip.NOT_A_JOB)
    if job is None:
        return BindingOutcome(reason=BindingSkip.JOB_UNKNOWN)
    facts = job_facts(job)
    if not facts.held or (record.job_uid and facts.uid != record.job_uid):
        return BindingOutcome(reason=BindingSkip.NOT_HELD)
    return BindingOutcome(reason=BindingSkip.HELD, patch_base64=_encoded(hold_ops(obj)))


def _encoded(ops: list[dict[str, object]]) -> str:
    patch: list[PatchOperation] = [
        {"op": str(op["op"]), "path": str(op["path"]), "value": op["value"]}
        if "value" in op
        else {"op": str(op["op"]), "path": str(op["path"])}
        for op in ops
    ]
    return encode_patch(patch)
