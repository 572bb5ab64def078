"""Warnings for the ``ecopulse.io/`` annotations of a workload's pod template, at ``kubectl apply``. Pure.

A bare pod's misspelt key is warned to whoever created it. A Deployment's pods are created by its
controller, whose warnings nobody reads, so the person who wrote the template heard nothing. The
``/warn-templates`` webhook entry (CREATE and UPDATE of Deployments, StatefulSets, Jobs and
CronJobs) reads the template's annotations as a pod's would be read (``core.podspec``) and answers
with the same warnings: never a patch, never a denial.

On the Karmada API server (fleet mode's webhook) a CronJob with deferral annotations is also warned
that no Job of it will be held: Karmada runs no CronJob controller, the members' controllers create
its Jobs there, out of our sight (docs/fleet.md, "CronJobs").
"""

from __future__ import annotations

from collections.abc import Mapping

from core.managed import subject_of, unmanaged
from core.model import ANNOTATION_PREFIX, DEADLINE_ANNOTATION, FINISH_WITHIN_ANNOTATION, NamespaceInfo
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
CRONJOB_KIND = "batch/v1/CronJob"
FLEET_CRONJOB_WARNING = (
    "eco-pulse: fleet mode never holds a CronJob's Jobs: each member creates them (docs/fleet.md, CronJobs)"
)


def template_warnings(
    request: AdmissionRequest,
    *,
    known_regions: frozenset[str],
    namespace_info: NamespaceInfo | None,
    own_namespace: str = "",
    on_karmada: bool = False,
) -> tuple[str, ...]:
    """The warnings ``kubectl apply`` prints for the object's pod template; none when all is well.
    ``on_karmada``: the webhook serves the Karmada API server (a CronJob's deferral is warned).

    Raises UnreadableObject when the object's bytes do not decode (the caller answers without warnings).
    """
    path = TEMPLATE_PATHS.get(request.kind)
    if path is None or request.operation not in OPERATIONS or request.sub_resource:
        return ()
    template: Mapping[str, object] = request.object or {}
    fleet_cron = on_karmada and request.kind == CRONJOB_KIND and _asks_deferral(template)
    for key in path:
        template = as_mapping(template.get(key))
    metadata = as_mapping(template.get("metadata"))
    annotations = {
        key: value
        for key, value in string_map(metadata.get("annotations")).items()
        if key.startswith(ANNOTATION_PREFIX)
    }
    if not annotations:
        return (FLEET_CRONJOB_WARNING,) if fleet_cron else ()
    subject = subject_of({"metadata": metadata}, namespace=request.namespace, annotations=annotations)
    if unmanaged(subject, namespace=namespace_info, own_namespace=own_namespace) is not None:
        return ()  # its pods are never placed: their hints are never read
    # Worded as a pod's own warnings are (each must fit the answer's 120 characters).
    problems = placement_hints(annotations, known_regions=known_regions).warnings
    found = tuple(f"eco-pulse: {problem}" for problem in problems)
    return (FLEET_CRONJOB_WARNING, *found) if fleet_cron else found


def _asks_deferral(cron: Mapping[str, object]) -> bool:
    """The CronJob's jobTemplate (what its Jobs are made of) names a deadline."""
    metadata = as_mapping(as_mapping(as_mapping(cron.get("spec")).get("jobTemplate")).get("metadata"))
    annotations = string_map(metadata.get("annotations"))
    return FINISH_WITHIN_ANNOTATION in annotations or DEADLINE_ANNOTATION in annotations
