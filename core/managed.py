"""The never-managed rule: which objects Eco-Pulse neither places nor moves, and why. Pure.

One rule for every app. The webhook and the extender ask it of a pod being admitted or scheduled,
the rebalancer of a running pod (and leaves the same pods out of its accounting), fleet mode of a
workload: each builds a ``core.model.Subject`` at its edge. The reasons are the names every
decision log line and metric label uses (the table in docs/reasons.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from core.model import (
    MIRROR_ANNOTATION,
    OPT_OUT_ANNOTATION,
    OPT_OUT_LABEL,
    STATIC_SOURCE_ANNOTATION,
    SYSTEM_NAMESPACES,
    NamespaceInfo,
    Subject,
    SubjectView,
)
from core.podspec import as_mapping, owner_kinds, read_annotations


class Unmanaged(StrEnum):
    SYSTEM_NAMESPACE = "system-namespace"  # the control plane's namespaces, and our own
    NAMESPACE_OPTED_OUT = "namespace-opted-out"  # the namespace's label ecopulse.io/opt-out=true
    OPTED_OUT = "opted-out"  # the object's label or annotation, or its namespace's annotation
    MIRROR_POD = "mirror-pod"
    STATIC_POD = "static-pod"
    DAEMONSET_POD = "daemonset-pod"  # one in every node's region whatever we do


def says_opt_out(value: str | None) -> bool:
    """The one reading of an ecopulse.io/opt-out label or annotation value."""
    return value is not None and value.strip().lower() == "true"


def is_mirror(annotations: Mapping[str, str]) -> bool:
    return MIRROR_ANNOTATION in annotations


def is_static(annotations: Mapping[str, str]) -> bool:
    source = annotations.get(STATIC_SOURCE_ANNOTATION)
    return source is not None and source != "api"


_NO_LABELS: Mapping[str, str] = {}


def subject_of(
    obj: Mapping[str, object], *, namespace: str, annotations: Mapping[str, str] | None = None
) -> Subject:
    """An object as JSON (as the API server sends it) as the rule reads it.

    ``annotations`` when the caller has read them already (the webhook merges in its namespace's).
    """
    metadata = as_mapping(obj.get("metadata"))
    if annotations is None:
        annotations = read_annotations(obj)
    # Of the labels, only the opt-out: a pod can carry dozens, and this runs on every admission.
    label = as_mapping(metadata.get("labels")).get(OPT_OUT_LABEL)
    return Subject(
        namespace=namespace,
        labels={OPT_OUT_LABEL: label} if isinstance(label, str) else _NO_LABELS,
        annotations=annotations,
        owner_kinds=owner_kinds(obj),
        mirror=is_mirror(annotations),
        static=is_static(annotations),
    )


def unmanaged(
    subject: SubjectView, *, namespace: NamespaceInfo | None, own_namespace: str = ""
) -> Unmanaged | None:
    """Why Eco-Pulse never places nor moves this object, or None if it may."""
    if subject.namespace in SYSTEM_NAMESPACES or (own_namespace and subject.namespace == own_namespace):
        return Unmanaged.SYSTEM_NAMESPACE
    if namespace is not None and namespace.opted_out:
        return Unmanaged.NAMESPACE_OPTED_OUT
    # The object's own annotation wins over its namespace's default, as for every hint.
    annotation = subject.annotations.get(OPT_OUT_ANNOTATION)
    if annotation is None and namespace is not None:
        annotation = namespace.hint_annotations.get(OPT_OUT_ANNOTATION)
    label = subject.labels.get(OPT_OUT_LABEL)
    # Most objects carry neither: only a value present is read (this runs for every pod a cycle).
    if (label is not None and says_opt_out(label)) or (annotation is not None and says_opt_out(annotation)):
        return Unmanaged.OPTED_OUT
    if subject.mirror:
        return Unmanaged.MIRROR_POD
    if subject.static:
        return Unmanaged.STATIC_POD
    if "DaemonSet" in subject.owner_kinds:
        return Unmanaged.DAEMONSET_POD
    return None
