"""Decide what to do with one admission request: skip, mutate, or fail open. Pure.

Input: the parsed request, the fresh signals, the configuration. Output: an outcome that
carries the patch (if any), the warnings for the user, and the reason for the decision log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Generic, TypeVar

from core.config import EcoPulseConfiguration
from core.managed import Unmanaged, subject_of, unmanaged
from core.model import (
    DECISION_ANNOTATION,
    POLICY_ANNOTATION,
    PREFERRED_REGION_ANNOTATION,
    NamespaceInfo,
    PlacementHints,
    PodDemand,
    SignalSnapshot,
)
from core.placement import NoChoice, PlacementChoice, Ranking, choose_regions, rank_regions
from core.podspec import (
    as_mapping,
    placement_hints,
    pod_demand,
    region_constraints,
    string_map,
)
from core.policy import EMPTY_POLICY_SET, NO_POLICY, PolicySet, placement_config, resolve
from core.quantity import QuantityOutOfRange
from webhook.admission.patch import Unpatchable, affinity_patch, annotation_patch
from webhook.admission.review import AdmissionRequest, PatchOperation, UnreadableObject, encode_patch
from webhook.pods import effective_annotations


class Outcome(StrEnum):
    MUTATED = "mutated"
    SKIPPED = "skipped"
    FAILED_OPEN = "failed_open"


class Reason(StrEnum):
    PLACED = "placed"
    NOT_CREATE = "not-create"
    NOT_A_POD = "not-a-pod"
    NO_OBJECT = "no-object"
    # The never-managed reasons (system-namespace, opted-out...) are core.managed.Unmanaged's.
    POLICY_OFF = "policy-off"  # an EcoPulsePolicy with mode: off selects the pod
    NODE_NAME_SET = "node-name-set"
    USER_CONSTRAINED = "user-constrained"
    ALREADY_PLACED = "already-placed"
    NO_ELIGIBLE_REGION = "no-eligible-region"
    BELOW_FLOOR = "no-region-above-floor"
    UNPATCHABLE = "unpatchable-pod"
    # fail-open reasons
    NO_SIGNALS = "no-fresh-signals"
    BASELINE_UNKNOWN = "baseline-signal-unknown"
    DEADLINE = "deadline-exceeded"
    UNREADABLE_OBJECT = "unreadable-object"
    DEMAND_OUT_OF_RANGE = "demand-out-of-range"
    INTERNAL_ERROR = "internal-error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation:
    """What a placement says about itself: the pod's annotation and the decision log's fields.

    Worked out once per memoised placement: the replicas of a scale-up share it, and building
    the log fields for every pod cost more than deciding.
    """

    annotation: str
    log_fields: Mapping[str, object]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewOutcome:
    outcome: Outcome
    reason: Reason | Unmanaged
    patch: list[PatchOperation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    region: str = ""
    decision: str = ""  # the short "why" that also goes into the pod annotation
    ranking: Ranking | None = None
    # What the decision line adds for a placement.
    log_fields: Mapping[str, object] = field(default_factory=dict)
    # The patch as the response carries it, encoded once (a memoised outcome serves many pods).
    patch_base64: str = ""
    # The ecopulse.io/ annotations ignored (unknown keys, invalid values): also worth an Event.
    annotation_problems: tuple[str, ...] = ()
    policy: str = ""  # the refs of the policies that applied (core.policy), "" for none


def skip(
    reason: Reason | Unmanaged, *warnings: str, annotation_problems: tuple[str, ...] = (), policy: str = ""
) -> ReviewOutcome:
    """Admit unchanged; once policies were resolved, ``policy`` names them on the decision line."""
    return ReviewOutcome(
        outcome=Outcome.SKIPPED,
        reason=reason,
        warnings=list(warnings),
        policy=policy,
        annotation_problems=annotation_problems,
    )


def fail_open(reason: Reason, detail: str, *, annotation_problems: tuple[str, ...] = ()) -> ReviewOutcome:
    return ReviewOutcome(
        outcome=Outcome.FAILED_OPEN,
        reason=reason,
        warnings=[
            f"eco-pulse: pod admitted unchanged ({detail})",
            *(f"eco-pulse: {problem}" for problem in annotation_problems),
        ],
        annotation_problems=annotation_problems,
    )


Placed = tuple[Ranking, PlacementChoice | NoChoice, Explanation | None]


K = TypeVar("K")
V = TypeVar("V")


class _PerSnapshot(Generic[K, V]):
    """Entries valid while the signals snapshot and the config stay the same objects; bounded.

    The one rule both memos below keep: a new snapshot (at least every second) or a new config
    forgets everything, and a full memo starts over.
    """

    def __init__(self, max_entries: int = 512) -> None:
        self._max_entries = max_entries
        self._signals: SignalSnapshot | None = None
        self._config: EcoPulseConfiguration | None = None
        self._entries: dict[K, V] = {}

    def _get(self, key: K, signals: SignalSnapshot, config: EcoPulseConfiguration) -> V | None:
        if signals is not self._signals or config is not self._config:
            self._signals, self._config, self._entries = signals, config, {}
        return self._entries.get(key)

    def _put(self, key: K, value: V) -> None:
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = value


class PlacementMemo(_PerSnapshot[tuple[PodDemand, PlacementHints, object], Placed]):
    """Remembers placements per (demand, hints) while the signals and the config stay the same.

    Replicas of one workload ask the same question; during a scale-up hundreds arrive within a
    second. The answer is a pure function of (demand, hints, signals, config), so it is reused
    until either of the last two is replaced (the snapshot at least every second).
    """

    def place(
        self,
        demand: PodDemand,
        hints: PlacementHints,
        signals: SignalSnapshot,
        config: EcoPulseConfiguration,
        effective: EcoPulseConfiguration | None = None,
    ) -> Placed:
        """``effective``: ``config`` with a policy's mode and floor (core.policy.placement_config)."""
        effective = effective or config
        key = (demand, hints, effective.placement)
        placed = self._get(key, signals, config)
        if placed is None:
            placed = place(demand, hints, signals, effective)
            self._put(key, placed)
        return placed


OutcomeKey = tuple[bytes, str, str, str, str]


class OutcomeMemo(_PerSnapshot[OutcomeKey, tuple[NamespaceInfo | None, PolicySet, ReviewOutcome]]):
    """Remembers whole outcomes per identical request while the signals and the config stay the same.

    The replicas of a ReplicaSet or a Job come from one template and are named after admission,
    so their reviews carry byte-identical objects: the first one's outcome serves the rest of a
    scale-up without reading the pod again. The key is everything decide() reads from the
    request; the namespace's labels and annotations must also be equal, and the policy set the
    same object (it is rebuilt whenever a policy changes).
    """

    # Bigger objects are rare and would make the memo hold megabytes.
    MAX_OBJECT_BYTES = 16 * 1024

    def outcome(
        self,
        request: AdmissionRequest,
        *,
        signals: SignalSnapshot,
        config: EcoPulseConfiguration,
        namespace_info: NamespaceInfo | None,
        decide: Callable[[], ReviewOutcome],
        policies: PolicySet = EMPTY_POLICY_SET,
    ) -> ReviewOutcome:
        if len(request.object_json) > self.MAX_OBJECT_BYTES:
            return decide()
        key = (request.object_json, request.namespace, request.operation, request.kind, request.sub_resource)
        remembered = self._get(key, signals, config)
        if remembered is not None and remembered[0] == namespace_info and remembered[1] is policies:
            return remembered[2]
        outcome = decide()
        self._put(key, (namespace_info, policies, outcome))
        return outcome


def place(
    demand: PodDemand, hints: PlacementHints, signals: SignalSnapshot, config: EcoPulseConfiguration
) -> Placed:
    ranking = rank_regions(demand=demand, hints=hints, signals=signals, config=config)
    choice = choose_regions(ranking, config)
    if not isinstance(choice, PlacementChoice):
        return ranking, choice, None
    return (
        ranking,
        choice,
        Explanation(
            annotation=describe(ranking, choice, signals), log_fields=log_fields(ranking, choice, signals)
        ),
    )


def decide(
    request: AdmissionRequest,
    *,
    signals: SignalSnapshot,
    config: EcoPulseConfiguration,
    own_namespace: str = "",
    memo: PlacementMemo | None = None,
    namespace_info: NamespaceInfo | None = None,
    policies: PolicySet = EMPTY_POLICY_SET,
) -> ReviewOutcome:
    if request.operation != "CREATE":
        return skip(Reason.NOT_CREATE)
    if not request.is_pod:
        return skip(Reason.NOT_A_POD)
    try:
        pod = request.object
    except UnreadableObject as error:
        return fail_open(Reason.UNREADABLE_OBJECT, f"object unreadable: {error}")
    if pod is None:
        return skip(Reason.NO_OBJECT)
    namespace = request.namespace or str(as_mapping(pod.get("metadata")).get("namespace") or "")
    pod_annotations = effective_annotations(pod, namespace_info)
    subject = subject_of(pod, namespace=namespace, annotations=pod_annotations)
    exempt = unmanaged(subject, namespace=namespace_info, own_namespace=own_namespace)
    if exempt is not None:
        return skip(exempt)
    # Without policies (most clusters), the pod's labels need not even be read.
    resolution = NO_POLICY
    if not policies.selects_nothing:
        labels = string_map(as_mapping(pod.get("metadata")).get("labels"))
        resolution = resolve(policies, namespace=namespace, pod_labels=labels)
    if resolution.opts_out(pod_annotations):
        return skip(Reason.POLICY_OFF, policy=resolution.refs)
    spec = as_mapping(pod.get("spec"))
    if spec.get("nodeName"):
        return skip(Reason.NODE_NAME_SET, policy=resolution.refs)
    if PREFERRED_REGION_ANNOTATION in pod_annotations:
        return skip(Reason.ALREADY_PLACED, policy=resolution.refs)
    constraints = region_constraints(spec)
    if constraints:
        return skip(
            Reason.USER_CONSTRAINED,
            f"eco-pulse: region left to you ({', '.join(constraints)}); no region affinity added",
            policy=resolution.refs,
        )

    # Read before anything can fail open: a misspelt key is named even when we cannot decide.
    hints = placement_hints(resolution.annotations(pod_annotations), known_regions=config.known_regions)
    warnings = [f"eco-pulse: {w}" for w in hints.warnings]
    if not signals.carbon:
        return fail_open(Reason.NO_SIGNALS, "no fresh carbon signals", annotation_problems=hints.warnings)
    try:
        demand = pod_demand(pod, strict=True)
    except QuantityOutOfRange as error:
        return fail_open(
            Reason.DEMAND_OUT_OF_RANGE,
            f"resource requests out of range: {error}",
            annotation_problems=hints.warnings,
        )
    effective = placement_config(config, resolution)
    if memo is not None:
        ranking, choice, explanation = memo.place(demand, hints.hints, signals, config, effective)
    else:
        ranking, choice, explanation = place(demand, hints.hints, signals, effective)
    if choice is NoChoice.BASELINE_UNKNOWN:
        return fail_open(
            Reason.BASELINE_UNKNOWN,
            f"no fresh signal for baseline {config.baseline_region}",
            annotation_problems=hints.warnings,
        )
    if choice is NoChoice.NO_ELIGIBLE_REGION:
        return skip(
            Reason.NO_ELIGIBLE_REGION,
            *warnings,
            "eco-pulse: no region fits this pod's constraints",
            annotation_problems=hints.warnings,
            policy=resolution.refs,
        )
    if choice is NoChoice.BELOW_FLOOR:
        return skip(Reason.BELOW_FLOOR, *warnings, annotation_problems=hints.warnings, policy=resolution.refs)
    assert isinstance(choice, PlacementChoice) and explanation is not None
    written = {PREFERRED_REGION_ANNOTATION: choice.best_region, DECISION_ANNOTATION: explanation.annotation}
    if resolution.refs:
        written[POLICY_ANNOTATION] = resolution.refs
    try:
        patch = affinity_patch(pod, choice)
        patch += annotation_patch(pod, written)
    except Unpatchable as error:
        return skip(
            Reason.UNPATCHABLE,
            *warnings,
            f"eco-pulse: {error}; no region affinity added",
            annotation_problems=hints.warnings,
            policy=resolution.refs,
        )
    return ReviewOutcome(
        outcome=Outcome.MUTATED,
        reason=Reason.PLACED,
        patch=patch,
        warnings=warnings,
        patch_base64=encode_patch(patch),
        region=choice.best_region,
        decision=explanation.annotation,
        ranking=ranking,
        log_fields=explanation.log_fields,
        annotation_problems=hints.warnings,
        policy=resolution.refs,
    )


# kubectl describe cuts each line of an annotation at 138 characters ("..."); ours stay under.
DECISION_LINE_MAX_CHARS = 120
DECISION_REGIONS = 4


def describe(ranking: Ranking, choice: PlacementChoice, signals: SignalSnapshot) -> str:
    """The ``ecopulse.io/decision`` annotation: why this region, in short lines with their units.

    One line each (kubectl describe prints a long annotation line by line): the choice, the basis,
    the net benefit and intensity of the best regions, the signals' source and age.
    """
    mode = "required" if choice.required_regions is not None else "preferred"
    lines = [
        f"{mode} {choice.best_region} (chosen at admission)",
        f"net benefit vs {ranking.baseline_region} over {ranking.hours:g} h:",
    ]
    for assessment in ranking.eligible[:DECISION_REGIONS]:
        cost = assessment.cost
        intensity = f"{cost.carbon_g_per_kwh:.0f} gCO2/kWh" if cost is not None else "intensity unknown"
        lines.append(f"{assessment.region}: {assessment.net_benefit_usd or 0.0:+.4f} USD at {intensity}")
    lines.append(f"signals: {signals.provider}, at most {signals.max_age_seconds():.0f} s old")
    # Which prices decided, as the carbon provider is named (core.signals.prices).
    lines.append(
        f"prices: {signals.price_sources() or 'config'}, at most {signals.max_price_age_seconds():.0f} s old"
    )
    return "\n".join(_short_line(line) for line in lines)


def _short_line(line: str) -> str:
    """At most DECISION_LINE_MAX_CHARS, cut at a space (names are bounded; this is a backstop)."""
    if len(line) <= DECISION_LINE_MAX_CHARS:
        return line
    return line[: DECISION_LINE_MAX_CHARS - 1].rsplit(" ", 1)[0] + "…"


def log_fields(ranking: Ranking, choice: PlacementChoice, signals: SignalSnapshot) -> Mapping[str, object]:
    """The decision line's evidence: the projected benefit of the best region, every signal used and
    the prices' sources and age."""
    fields: dict[str, object] = {
        "prices": {
            "source": signals.price_sources() or "config",
            "age_seconds": round(signals.max_price_age_seconds(), 1),
        }
    }
    best = ranking.assessment(choice.best_region)
    if best is not None and best.versus_baseline is not None:
        fields["net_benefit_usd"] = round(best.versus_baseline.net_usd, 6)
        fields["avoided_grams"] = round(best.versus_baseline.avoided_grams, 3)
    fields["signals"] = {
        a.region: {
            "carbon_g_per_kwh": round(a.cost.carbon_g_per_kwh, 2),
            "age_seconds": round(a.signal_age_seconds or 0.0, 1),
            "observed_at": a.signal_observed_at.isoformat() if a.signal_observed_at else None,
        }
        for a in ranking.assessments
        if a.cost is not None
    }
    return MappingProxyType(fields)
