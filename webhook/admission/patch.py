"""From a pod and a placement choice to the smallest JSON Patch that applies cleanly. Pure.

Rules (RFC 6902 as the API server applies it; a patch that fails to apply rejects the pod
even under failurePolicy Ignore): only ``add``; only under parents that exist; never replace
an existing member (affinity, podAffinity, annotations); required regions are ANDed into every
existing required term so the user's constraints are never widened.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.model import REGION_LABEL
from core.placement import PlacementChoice
from core.podspec import as_list, as_mapping
from webhook.admission.review import PatchOperation

NODE_AFFINITY = "nodeAffinity"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


class Unpatchable(ValueError):
    """The pod's shape leaves no safe place for our patch (the API server would reject it anyway)."""


def escape(token: str) -> str:
    """RFC 6901: '~' then '/' (order matters)."""
    return token.replace("~", "~0").replace("/", "~1")


def region_requirement(regions: tuple[str, ...]) -> dict[str, object]:
    return {"key": REGION_LABEL, "operator": "In", "values": list(regions)}


def _preferred_terms(choice: PlacementChoice) -> list[dict[str, object]]:
    return [
        {"weight": weight, "preference": {"matchExpressions": [region_requirement((region,))]}}
        for region, weight in choice.preferred
    ]


def _present(container: Mapping[str, object], key: str) -> bool:
    """A member that exists with a non-null value (``add`` onto null simply replaces the null)."""
    return container.get(key) is not None


def affinity_patch(pod: Mapping[str, object], choice: PlacementChoice) -> list[PatchOperation]:
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        raise Unpatchable("pod has no spec")
    preferred = _preferred_terms(choice)
    required: dict[str, object] | None = None
    if choice.required_regions is not None:
        required = {
            "nodeSelectorTerms": [{"matchExpressions": [region_requirement(choice.required_regions)]}]
        }

    node_affinity: dict[str, object] = {}
    if preferred:
        node_affinity[PREFERRED] = preferred
    if required is not None:
        node_affinity[REQUIRED] = required

    if not _present(spec, "affinity"):
        return [{"op": "add", "path": "/spec/affinity", "value": {NODE_AFFINITY: node_affinity}}]
    affinity = spec["affinity"]
    if not isinstance(affinity, Mapping):
        raise Unpatchable("spec.affinity is not an object")
    if not _present(affinity, NODE_AFFINITY):
        return [{"op": "add", "path": f"/spec/affinity/{NODE_AFFINITY}", "value": node_affinity}]
    existing = affinity[NODE_AFFINITY]
    if not isinstance(existing, Mapping):
        raise Unpatchable("spec.affinity.nodeAffinity is not an object")

    base = f"/spec/affinity/{NODE_AFFINITY}"
    ops: list[PatchOperation] = []
    if preferred:
        if _present(existing, PREFERRED):
            if not isinstance(existing[PREFERRED], list):
                raise Unpatchable("preferred node affinity is not a list")
            ops.extend({"op": "add", "path": f"{base}/{PREFERRED}/-", "value": term} for term in preferred)
        else:
            ops.append({"op": "add", "path": f"{base}/{PREFERRED}", "value": preferred})
    if choice.required_regions is not None:
        ops.extend(_and_into_required(existing, base, choice.required_regions, required))
    return ops


def _and_into_required(
    node_affinity: Mapping[str, object], base: str, regions: tuple[str, ...], fresh: dict[str, object] | None
) -> list[PatchOperation]:
    if not _present(node_affinity, REQUIRED):
        return [{"op": "add", "path": f"{base}/{REQUIRED}", "value": fresh}]
    selector = as_mapping(node_affinity[REQUIRED])
    terms = selector.get("nodeSelectorTerms")
    if not isinstance(terms, list) or not terms:
        raise Unpatchable("required node affinity has no nodeSelectorTerms")
    ops: list[PatchOperation] = []
    requirement = region_requirement(regions)
    for index, term in enumerate(terms):
        if not isinstance(term, Mapping):
            raise Unpatchable(f"nodeSelectorTerms[{index}] is not an object")
        path = f"{base}/{REQUIRED}/nodeSelectorTerms/{index}/matchExpressions"
        if _present(term, "matchExpressions"):
            if not isinstance(term["matchExpressions"], list):
                raise Unpatchable(f"nodeSelectorTerms[{index}].matchExpressions is not a list")
            ops.append({"op": "add", "path": f"{path}/-", "value": requirement})
        else:
            ops.append({"op": "add", "path": path, "value": [requirement]})
    return ops


def annotation_patch(pod: Mapping[str, object], wanted: Mapping[str, str]) -> list[PatchOperation]:
    """Add our annotations that are not there yet; never overwrite one that is."""
    metadata = pod.get("metadata")
    if not isinstance(metadata, Mapping):
        raise Unpatchable("pod has no metadata")
    if not _present(metadata, "annotations"):
        return [{"op": "add", "path": "/metadata/annotations", "value": dict(wanted)}]
    existing = metadata["annotations"]
    if not isinstance(existing, Mapping):
        raise Unpatchable("metadata.annotations is not an object")
    return [
        {"op": "add", "path": f"/metadata/annotations/{escape(key)}", "value": value}
        for key, value in wanted.items()
        if key not in existing
    ]


def count_terms(pod: Mapping[str, object]) -> int:
    """How many preferred node-affinity terms the pod has (for tests and logs)."""
    node_affinity = as_mapping(as_mapping(as_mapping(pod.get("spec")).get("affinity")).get(NODE_AFFINITY))
    return len(as_list(node_affinity.get(PREFERRED)))
