"""The demos' tables (`make demo`, `make fleet-demo`): where each pod runs now, and the latest decision.

Pure: they read the objects as ``kubectl get -o json`` gives them. A pod's admission-time text
(its ``ecopulse.io/decision`` annotation) is only one decision: the rebalancer may have refused a
move since, or moved a sibling, and fleet mode may have moved the workload. So the newest of them
is shown, with its time, beside where the pod runs now and that region's grid now, in units.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DECISION_ANNOTATION = "ecopulse.io/decision"
REGION_LABEL = "topology.kubernetes.io/region"
OURS = "ecopulse.io/"  # the reportingController of every Event we post


@dataclass(frozen=True, slots=True)
class Decision:
    at: str  # RFC 3339, as the API gives it (an Event's with microseconds, an object's without)
    text: str

    @property
    def when(self) -> datetime:
        try:
            return datetime.fromisoformat(self.at)
        except ValueError:
            return datetime.min.replace(tzinfo=UTC)


def shown_time(at: str) -> str:
    """To the second: Events carry microseconds, objects do not."""
    return at.split(".", 1)[0].removesuffix("Z") + "Z" if at[:1].isdigit() else at


def grid_text(grid: Mapping[str, float], region: str) -> str:
    value = grid.get(region)
    return f"{value:.0f} gCO2/kWh" if value is not None else "?"


def admission_text(annotation: str | None) -> str:
    """The pod's ``ecopulse.io/decision``, condensed to one line: the choice and its best figure."""
    if not annotation:
        return "admission: left alone (no ecopulse.io/decision)"
    lines = annotation.splitlines()
    choice = lines[0].removesuffix(" (chosen at admission)")
    if len(lines) < 3:  # an older, one-line annotation
        return f"admission: {annotation}"
    return f"admission: {choice}; {lines[2]} ({lines[1].rstrip(':')})"


def _event_time(event: Mapping[str, Any]) -> str:
    time = event.get("eventTime") or event.get("deprecatedLastTimestamp") or ""
    return str(time or event.get("metadata", {}).get("creationTimestamp", ""))


def _ours(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in events if str(e.get("reportingController", "")).startswith(OURS)]


def latest_pod_decision(
    pod: Mapping[str, Any], events: Iterable[Mapping[str, Any]], *, region: str = ""
) -> Decision:
    """The newest of: the pod's placement at admission, and the rebalancer's Events about it (on the
    pod, or on its controller naming it, or a refusal for the workload's replicas in ``region``,
    where the pod runs now)."""
    metadata = pod["metadata"]
    name = metadata["name"]
    owners = {
        (ref.get("kind"), ref.get("name"))
        for ref in metadata.get("ownerReferences", [])
        if ref.get("controller")
    }
    candidates = [
        Decision(
            at=str(metadata.get("creationTimestamp", "")),
            text=admission_text(metadata.get("annotations", {}).get(DECISION_ANNOTATION)),
        )
    ]
    for event in _ours(events):
        regarding = event.get("regarding", {})
        note = str(event.get("note", ""))
        about_pod = regarding.get("kind") == "Pod" and regarding.get("name") == name
        workload_refusal = event.get("reason") == "CarbonRebalanceRefused" and f"stays in {region} " in note
        about_owner = (regarding.get("kind"), regarding.get("name")) in owners and (
            f"pod {name}" in note or workload_refusal
        )
        if (about_pod or about_owner) and event.get("reason") != "RegionPlaced":
            candidates.append(Decision(at=_event_time(event), text=f"{event.get('reason')}: {note}"))
    return max(candidates, key=lambda d: d.when)


def pods_table(
    pods: Iterable[Mapping[str, Any]],
    nodes: Iterable[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
    grid: Mapping[str, float],
) -> str:
    """One row per pod: where it runs now, that region's grid now, and the latest decision about it."""
    region_of = {n["metadata"]["name"]: n["metadata"].get("labels", {}).get(REGION_LABEL, "?") for n in nodes}
    events = list(events)
    rows = [
        f"{'POD':<28} {'NODE':<16} {'REGION NOW':<11} {'GRID NOW':<14} {'DECIDED AT':<21} LATEST DECISION"
    ]
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        node = pod.get("spec", {}).get("nodeName") or "-"
        region = region_of.get(node, "-")
        grid_now = grid_text(grid, region) if region != "-" else "-"
        state = " (terminating)" if pod["metadata"].get("deletionTimestamp") else ""
        latest = latest_pod_decision(pod, events, region=region)
        rows.append(
            f"{pod['metadata']['name'] + state:<28} {node:<16} {region:<11} {grid_now:<14} "
            f"{shown_time(latest.at):<21} {latest.text}"
        )
    return "\n".join(rows)


def fleet_decision_text(annotation: str | None) -> str:
    """Fleet mode's ``ecopulse.io/decision`` (JSON on the policy) as a sentence with units."""
    if not annotation:
        return "karmada default (no decision yet)"
    try:
        body = json.loads(annotation)
    except ValueError:
        return annotation
    text = f"{body.get('decision', '?')} ({body.get('reason', '?')})"
    if body.get("from") or body.get("to"):
        text += f": {','.join(body.get('from', [])) or 'nowhere yet'} -> {body.get('to', '-')}"
    if "netBenefitUsd" in body:
        text += f"; net benefit {body['netBenefitUsd']:+.4f} USD"
    if "avoidedGrams" in body:
        text += f", avoids {body['avoidedGrams']:.1f} gCO2eq"
    if body.get("clusters"):
        text += f"; ranked {', '.join(body['clusters'])}"
    return text


def latest_policy_decision(policy: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> Decision:
    """The newest fleet Event on the policy, else its decision annotation."""
    name = policy["metadata"]["name"]
    annotation = policy["metadata"].get("annotations", {}).get(DECISION_ANNOTATION)
    candidates = [
        Decision(at=_event_time(e), text=f"{e.get('reason')}: {e.get('note', '')}")
        for e in _ours(events)
        if str(e.get("regarding", {}).get("kind", "")).endswith("PropagationPolicy")
        and e["regarding"].get("name") == name
    ]
    if candidates:
        return max(candidates, key=lambda d: d.when)
    return Decision(at="-", text=fleet_decision_text(annotation))
