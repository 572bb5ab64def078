"""Scheduler extender decisions: which nodes pass, how each scores. Pure.

The same ranking as the webhook (core.placement), so both paths agree on the best region. What
we do not know never removes a node: a node without a region label, a region without a fresh
signal, a pair without a known latency all pass, and score neutral.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.config import EcoPulseConfiguration, PlacementMode
from core.managed import subject_of, unmanaged
from core.model import NamespaceInfo, SignalSnapshot
from core.placement import Ineligible, Ranking, extender_scores, rank_regions
from core.podspec import (
    as_mapping,
    placement_hints,
    pod_demand,
    region_constraints,
    string_map,
)
from core.policy import EMPTY_POLICY_SET, PolicySet, Resolution, placement_config, resolve
from webhook.extender.types import MAX_PRIORITY, ExtenderArgs, HostPriority
from webhook.pods import effective_annotations

NEUTRAL_SCORE = MAX_PRIORITY // 2


class Outcome(StrEnum):
    DECIDED = "decided"
    SKIPPED = "skipped"  # opted out, system pod, user-constrained: every node, neutral scores
    FAILED_OPEN = "failed_open"  # no usable signals, deadline, internal error


class FilterReason(StrEnum):
    NOT_ALLOWED = "not-allowed"
    TOO_FAR = "too-far"
    BELOW_FLOOR = "below-floor"


# (node name, its region label or None), in the order the scheduler sent them.
NodeRegions = Sequence[tuple[str, str | None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Judgement:
    """The nodes that fail, each with a reason; a score 0..10 per region (neutral for the rest)."""

    outcome: Outcome
    reason: str
    failed: dict[str, tuple[FilterReason, str]] = field(default_factory=dict)
    # Decided per region (a handful), looked up per node (thousands).
    region_scores: dict[str, int] = field(default_factory=dict)
    policy: str = ""  # the refs of the policies that applied (core.policy)

    def score(self, region: str | None) -> int:
        return self.region_scores.get(region, NEUTRAL_SCORE) if region is not None else NEUTRAL_SCORE


def node_regions(args: ExtenderArgs, node_region: Callable[[str], str | None]) -> NodeRegions:
    """Each node's region: from the Node objects sent, or from the node watch for NodeNames."""
    if args.node_names is None:
        return args.node_regions
    return [(name, node_region(name)) for name in args.node_names]


def skip_reason(
    pod: Mapping[str, object], namespace_info: NamespaceInfo | None, resolution: Resolution | None = None
) -> str | None:
    namespace = str(as_mapping(pod.get("metadata")).get("namespace") or "")
    annotations = effective_annotations(pod, namespace_info)
    exempt = unmanaged(
        subject_of(pod, namespace=namespace, annotations=annotations), namespace=namespace_info
    )
    if exempt is not None:
        return str(exempt)
    if resolution is not None and resolution.opts_out(annotations):
        return "policy-off"
    if region_constraints(as_mapping(pod.get("spec"))):
        return "user-constrained"
    return None


def pod_resolution(pod: Mapping[str, object], policies: PolicySet) -> Resolution:
    metadata = as_mapping(pod.get("metadata"))
    namespace = str(metadata.get("namespace") or "")
    return resolve(policies, namespace=namespace, pod_labels=string_map(metadata.get("labels")))


def judge(
    args: ExtenderArgs,
    *,
    nodes: NodeRegions,
    signals: SignalSnapshot,
    config: EcoPulseConfiguration,
    namespace_info: NamespaceInfo | None = None,
    policies: PolicySet = EMPTY_POLICY_SET,
) -> Judgement:
    resolution = pod_resolution(args.pod, policies)
    reason = skip_reason(args.pod, namespace_info, resolution)
    if reason is not None:
        return Judgement(outcome=Outcome.SKIPPED, reason=reason, policy=resolution.refs)
    annotations = resolution.annotations(effective_annotations(args.pod, namespace_info))
    hints = placement_hints(annotations, known_regions=config.known_regions).hints
    config = placement_config(config, resolution)
    ranking = rank_regions(demand=pod_demand(args.pod), hints=hints, signals=signals, config=config)
    failed = _failures(nodes, ranking, config)
    if not ranking.baseline_known or not ranking.eligible:
        # Hard constraints the pod itself asked for still hold; carbon has no say.
        return Judgement(
            outcome=Outcome.FAILED_OPEN, reason="no-usable-signals", failed=failed, policy=resolution.refs
        )
    ranked = extender_scores(ranking, max_score=MAX_PRIORITY)
    region_scores = {
        a.region: NEUTRAL_SCORE
        if a.ineligible in (Ineligible.NO_SIGNAL, Ineligible.LATENCY_UNKNOWN)
        else ranked.get(a.region, 0)
        for a in ranking.assessments
    }
    return Judgement(
        outcome=Outcome.DECIDED,
        reason="ranked",
        failed=failed,
        region_scores=region_scores,
        policy=resolution.refs,
    )


def _failures(
    nodes: NodeRegions, ranking: Ranking, config: EcoPulseConfiguration
) -> dict[str, tuple[FilterReason, str]]:
    hard: dict[str, tuple[FilterReason, str]] = {}
    floor: dict[str, tuple[FilterReason, str]] = {}
    for a in ranking.assessments:
        if a.ineligible is Ineligible.NOT_ALLOWED:
            hard[a.region] = (
                FilterReason.NOT_ALLOWED,
                f"region {a.region} is not in ecopulse.io/allowed-regions (or the policy's allowedRegions)",
            )
        elif a.ineligible is Ineligible.TOO_FAR:
            hard[a.region] = (
                FilterReason.TOO_FAR,
                f"region {a.region} is beyond ecopulse.io/max-latency-ms (or the policy's maxLatencyMs)",
            )
        elif (
            config.placement.mode is PlacementMode.REQUIRED
            and ranking.baseline_known
            and a.net_benefit_usd is not None
            and a.net_benefit_usd < config.placement.min_net_benefit_usd
        ):
            floor[a.region] = (
                FilterReason.BELOW_FLOOR,
                f"region {a.region} net benefit {a.net_benefit_usd:+.4f} USD is below the floor "
                f"{config.placement.min_net_benefit_usd:g}",
            )
    if not hard and not floor:
        return {}
    failed: dict[str, tuple[FilterReason, str]] = {}
    floor_failed: dict[str, tuple[FilterReason, str]] = {}
    for name, region in nodes:
        if region is None:
            continue
        if region in hard:
            failed[name] = hard[region]
        elif region in floor:
            floor_failed[name] = floor[region]
    # The floor is our preference, not the pod's: it never empties the list on its own.
    if len(failed) + len(floor_failed) < len(nodes):
        failed.update(floor_failed)
    return failed


def as_filter_result(args: ExtenderArgs, judgement: Judgement) -> dict[str, Any]:
    failed = {name: message for name, (_, message) in judgement.failed.items()}
    if args.node_names is not None:
        passing_names = [name for name in args.node_names if name not in failed]
        return {
            "Nodes": None,
            "NodeNames": passing_names,
            "FailedNodes": {},
            "FailedAndUnresolvableNodes": failed,
            "Error": "",
        }
    kept = args.nodes_except(failed)
    nodes: object = kept if not isinstance(kept, list) else {"metadata": {}, "items": kept}
    return {
        "Nodes": nodes,
        "NodeNames": None,
        "FailedNodes": {},
        "FailedAndUnresolvableNodes": failed,
        "Error": "",
    }


def as_priorities(nodes: NodeRegions, judgement: Judgement) -> list[HostPriority]:
    score = judgement.score
    return [HostPriority(name, score(region)) for name, region in nodes]


def all_pass(args: ExtenderArgs) -> dict[str, Any]:
    return as_filter_result(args, Judgement(outcome=Outcome.FAILED_OPEN, reason=""))


def all_neutral(args: ExtenderArgs) -> list[HostPriority]:
    return [HostPriority(name, NEUTRAL_SCORE) for name in args.names]
