"""One rebalancing cycle: snapshot -> plan -> evict within limits -> report."""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from core.accounting import Ledger
from core.config import EcoPulseConfiguration
from core.history import IntensityHistory
from core.managed import Unmanaged
from core.metrics import LOOP_DURATION_BUCKETS, LOOP_OUTCOMES, LoopMetrics
from core.model import NamespaceInfo, NodeRecord, PodRecord, SignalSnapshot
from core.policy import EMPTY_POLICY_SET, PolicySet
from rebalancer.accounting import Accountant, accountable
from rebalancer.evictor import EvictionApi, Evictor, Limit
from rebalancer.explain import explain_refusal, figure_fields
from rebalancer.kubeapi import EvictionOutcome
from rebalancer.planner import (
    BELOW_MIN_BENEFIT,
    HISTORY_SHORT,
    NO_ROOM,
    NO_SIGNAL,
    NOT_ROBUST,
    POLICY_NEVER,
    WORKLOAD_MOVING,
    plan,
)
from rebalancer.policy_status import PolicyStatusWriter
from rebalancer.protections import Protected
from rebalancer.refusals import RefusalEvents
from rebalancer.release_loop import ReleaseLoop

log = logging.getLogger("ecopulse.rebalancer")

CYCLES = Counter(
    "ecopulse_rebalancer_cycles_total",
    f"Rebalancing cycles by outcome ({', '.join(LOOP_OUTCOMES)}).",
    ["outcome"],
)
CYCLE_DURATION = Histogram(
    "ecopulse_rebalancer_cycle_duration_seconds",
    "Time one rebalancing cycle took (plan and evictions).",
    buckets=LOOP_DURATION_BUCKETS,
)
CANDIDATES = Gauge(
    "ecopulse_rebalancer_candidates",
    "Moves that passed every check in the last cycle, before the eviction limits.",
)
REFUSALS = Counter(
    "ecopulse_rebalancer_refusals_total",
    "Moves a pod's best region asked for but that were refused, by reason (protections, benefit, room...).",
    ["reason"],
)
LAST_CYCLE = Gauge(
    "ecopulse_rebalancer_last_cycle_timestamp_seconds",
    "Unix time the last cycle finished (completed or not), for the not-cycling alert.",
)
CYCLE = LoopMetrics(runs=CYCLES, duration=CYCLE_DURATION, last_finished=LAST_CYCLE)
for _reason in (
    *Unmanaged,
    *Protected,
    NO_SIGNAL,
    BELOW_MIN_BENEFIT,
    NOT_ROBUST,
    HISTORY_SHORT,
    NO_ROOM,
    WORKLOAD_MOVING,
    POLICY_NEVER,
):
    REFUSALS.labels(reason=str(_reason))
# A cycle logs at most this many refused moves one per line; the rest are counted and summed up.
MAX_REFUSAL_LINES = 200


@dataclass(slots=True)
class CycleReport:
    outcome: str
    candidates: int = 0
    results: Tally[str] = field(default_factory=Tally)
    refusals: Tally[str] = field(default_factory=Tally)


@dataclass(frozen=True, slots=True, kw_only=True)
class CycleInputs:
    """Where a cycle reads from: all in memory, no I/O but the evictions."""

    config: Callable[[], EcoPulseConfiguration]
    signals: Callable[[], SignalSnapshot]
    pods: Callable[[], Mapping[str, PodRecord]]
    nodes: Callable[[], Mapping[str, NodeRecord]]
    namespaces: Callable[[], Mapping[str, NamespaceInfo]]
    synced: Callable[[], bool]
    is_leader: Callable[[], bool]
    clock: Callable[[], datetime]
    api: EvictionApi
    own_namespace: str = ""
    accountant: Accountant | None = None
    # The policies from a watch (core.kube.caches.PolicyCache), for the configured regions.
    policies: Callable[[frozenset[str]], PolicySet] = lambda _: EMPTY_POLICY_SET
    status_writer: PolicyStatusWriter | None = None
    # The grid's recent hours, for the planner's robust rule; every replica keeps it, so a new
    # leader starts with a warm one.
    history: IntensityHistory | None = None
    # Held Jobs' release (docs/deferral.md); None: this rebalancer releases nothing.
    releases: ReleaseLoop | None = None
    # What refusals were told in Events, across cycles (rebalancer.refusals); None: no Events.
    refusal_events: RefusalEvents | None = None


def run_cycle(inputs: CycleInputs) -> CycleReport:
    # A failed cycle is logged and counted; the scheduler runs the next one as usual.
    return CYCLE.run(
        lambda: _cycle(inputs),
        failed=lambda: CycleReport(outcome="error"),
        log=log,
        message="rebalancing cycle failed",
    )


def _cycle(inputs: CycleInputs) -> CycleReport:
    observed = inputs.signals() if inputs.history is not None or inputs.releases is not None else None
    if inputs.history is not None and observed is not None:
        inputs.history.record(observed)
    forecasts = None
    if inputs.releases is not None and observed is not None:
        # Every replica measures the forecasts' error, so a new leader plans with it at once.
        forecasts = inputs.releases.forecasts(observed, history=inputs.history, now=inputs.clock())
    if not inputs.is_leader():
        if inputs.accountant is not None:
            inputs.accountant.reset()
        if inputs.status_writer is not None:
            inputs.status_writer.reset()
        if inputs.releases is not None:
            inputs.releases.lost_leadership()
        if inputs.refusal_events is not None:
            inputs.refusal_events.reset()
        return CycleReport(outcome="not-leader")
    if not inputs.synced():
        log.warning("caches not synced yet; skipping this cycle")
        return CycleReport(outcome="not-synced")
    config = inputs.config()
    signals = observed if observed is not None else inputs.signals()  # one snapshot a cycle
    policies = inputs.policies(config.known_regions)
    if inputs.releases is not None and forecasts is not None:
        # Before any eviction: a release-by is a promise, an eviction only an improvement.
        inputs.releases.run(
            forecasts=forecasts,
            config=config,
            namespaces=inputs.namespaces(),
            policies=policies,
            now=inputs.clock(),
            is_leader=inputs.is_leader,
            prices=signals.price_table(),
        )
    ledger = None
    if inputs.accountant is not None:
        ledger = _account(inputs, inputs.accountant, signals=signals, config=config, policies=policies)
    result = plan(
        pods=inputs.pods().values(),
        nodes=inputs.nodes(),  # cluster-scoped: keyed by name
        namespaces=inputs.namespaces(),
        signals=signals,
        config=config,
        now=inputs.clock(),
        own_namespace=inputs.own_namespace,
        policies=policies,
        history=inputs.history,
    )
    report = CycleReport(outcome="completed", candidates=len(result.candidates))
    CANDIDATES.set(len(result.candidates))
    evictor = Evictor(api=inputs.api, settings=config.rebalancer)
    for index, candidate in enumerate(result.candidates):
        # The lease can lapse mid-cycle (an eviction and its Events can take many seconds): check the
        # elector's local view, no API call, before each eviction and stop at the first loss.
        if not inputs.is_leader():
            log.warning(
                "leadership lost mid-cycle; the remaining moves are not made",
                extra={"not_attempted": len(result.candidates) - index},
            )
            report.outcome = "leadership-lost"
            break
        attempt = evictor.evict(candidate)
        report.results[attempt.result] += 1
        if attempt.result == str(EvictionOutcome.EVICTED) and inputs.status_writer is not None:
            inputs.status_writer.moved(candidate.policy, at=inputs.clock())
        if attempt.result == str(Limit.CYCLE):
            break  # nothing more will pass this cycle
    for index, refusal in enumerate(result.refusals):
        REFUSALS.labels(reason=refusal.reason).inc()
        report.refusals[refusal.reason] += 1
        if index < MAX_REFUSAL_LINES:
            log.info(
                "rebalancer decision",
                extra={
                    "namespace": refusal.pod.namespace,
                    "pod": refusal.pod.name,
                    "decision": "refused",
                    "reason": refusal.reason,
                    "source_region": refusal.source_region,
                    "target_region": refusal.target_region,
                    "net_benefit_usd": None
                    if refusal.net_benefit_usd is None
                    else round(refusal.net_benefit_usd, 6),
                    **figure_fields(refusal.figures),
                    "explanation": explain_refusal(refusal),
                    "policy": refusal.policy,
                    "prices": result.prices,
                },
            )
    if inputs.refusal_events is not None and inputs.is_leader():
        inputs.refusal_events.post(
            result.refusals,
            post=inputs.api.post_event,
            now=inputs.clock(),
            cooldown_seconds=config.rebalancer.min_pod_age_seconds,
            prices=result.prices,
        )
    log.info(
        "rebalancing cycle",
        extra={
            "decision": "cycle",
            "pods": result.pods_considered,
            "in_best_region": result.pods_in_best_region,
            "candidates": report.candidates,
            "results": dict(report.results),
            "refusals": dict(report.refusals),
            "dry_run": config.rebalancer.dry_run,
        },
    )
    if inputs.status_writer is not None and inputs.is_leader():
        _write_statuses(inputs, inputs.status_writer, policies=policies, ledger=ledger)
    return report


def _write_statuses(
    inputs: CycleInputs, writer: PolicyStatusWriter, *, policies: PolicySet, ledger: Ledger | None
) -> None:
    """After the cycle's evictions; a failure is logged and never fails the cycle."""
    try:
        writer.write(
            policies=policies,
            pods=inputs.pods().values(),
            namespaces=inputs.namespaces(),
            accrued=ledger.by_policy if ledger is not None else {},
            now=inputs.clock(),
            own_namespace=inputs.own_namespace,
        )
    except Exception:
        log.exception("policy status not written")


def _account(
    inputs: CycleInputs,
    accountant: Accountant,
    *,
    signals: SignalSnapshot,
    config: EcoPulseConfiguration,
    policies: PolicySet,
) -> Ledger | None:
    """Before any eviction: the interval just ended ran on the placement as it was.

    A failure here is logged and never stops the cycle's evictions.
    """
    try:
        return accountant.tick(
            accountable(
                inputs.pods().values(),
                nodes=inputs.nodes(),
                namespaces=inputs.namespaces(),
                own_namespace=inputs.own_namespace,
                policies=policies,
            ),
            signals=signals,
            config=config,
        )
    except Exception:
        log.exception("accounting failed; the interval is not counted")
        accountant.reset()
        return None
