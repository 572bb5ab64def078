"""Warnings for the ``ecopulse.io/`` annotations of a workload's pod template, at ``kubectl apply``. Pure.

A bare pod's misspelt key is warned to whoever created it. A Deployment's pods are created by its
controller, whose warnings nobody reads, so the person who wrote the template heard nothing. The
``/warn-templates`` webhook entry (CREATE and UPDATE of Deployments, StatefulSets, Jobs and
CronJobs) reads the template's annotations as a pod's would be read (``core.podspec``) and answers
with the same warnings: never a patch, never a denial.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.managed import subject_of, unmanaged
from core.model import ANNOTATION_PREFIX, NamespaceInfo
from core.podspec import as_mapping, placement_hints, string_map
from webhook.admission.review import AdmissionRequest

# request.kind ("group/version/Kind") -> where the pod template is in the object.
TEMPLATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "apps/v1/Deployment": ("spec", "template"),
    "apps/v1/StatefulSet": ("spec", "template"),
    "batch/v1/Job": ("spec", "template"),
    "batch/v1/CronJob": ("spec", "jobTemplate", "spec", "template"),
}
OPERATIONS = frozenset({"CREATE", "UPDATE"})


def template_warnings(
    request: AdmissionRequest,
    *,
    known_regions: frozenset[str],
    namespace_info: NamespaceInfo | None,
    own_namespace: str = "",
) -> tuple[str, ...]:
    """The warnings ``kubectl apply`` prints for the object's pod template; none when all is well.

    Raises UnreadableObject when the object's bytes do not decode (the caller answers without warnings).
    """
    path = TEMPLATE_PATHS.get(request.kind)
    if path is None or request.operation not in OPERATIONS or request.sub_resource:
        return ()
    template: Mapping[str, object] = request.object or {}
    for key in path:
        template = as_mapping(template.get(key))
    metadata = as_mapping(template.get("metadata"))
    annotations = {
        key: value
        for key, value in string_map(metadata.get("annotations")).items()
        if key.startswith(ANNOTATION_PREFIX)
    }
    if not annotations:
        return ()
    subject = subject_of({"metadata": metadata}, namespace=request.namespace, annotations=annotations)
    if unmanaged(subject, namespace=namespace_info, own_namespace=own_namespace) is not None:
        return ()  # its pods are never placed: their hints are never read
    # Worded as a pod's own warnings are (each must fit the answer's 120 characters).
    problems = placement_hints(annotations, known_regions=known_regions).warnings
    return tuple(f"eco-pulse: {problem}" for problem in problems)
