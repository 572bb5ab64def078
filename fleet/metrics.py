"""Fleet mode's metrics: base units, the ``ecopulse_fleet_`` prefix, bounded labels.

Namespaces come from the Karmada API server's objects, so they pass through a
``BoundedLabelValues`` (past the cap: ``other``); outcomes, reasons and results are enums.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from core.managed import Unmanaged
from core.metrics import (
    BY_PLACE,
    LOOP_DURATION_BUCKETS,
    LOOP_OUTCOMES,
    AccrualMetrics,
    BoundedLabelValues,
    LoopMetrics,
)
from fleet.planner import Outcome, Reason

MAX_NAMESPACE_LABELS = 200
namespace_label = BoundedLabelValues(cap=MAX_NAMESPACE_LABELS)

PASSES = Counter(
    "ecopulse_fleet_passes_total",
    f"Fleet planning passes by outcome ({', '.join(LOOP_OUTCOMES)}).",
    ["outcome"],
)
PASS_DURATION = Histogram(
    "ecopulse_fleet_pass_duration_seconds",
    "Time one fleet pass took (planning and writes).",
    buckets=LOOP_DURATION_BUCKETS,
)
LAST_PASS = Gauge(
    "ecopulse_fleet_last_pass_timestamp_seconds",
    "Unix time the last fleet pass finished (completed or not).",
)
PASS = LoopMetrics(runs=PASSES, duration=PASS_DURATION, last_finished=LAST_PASS)
DECISIONS = Counter(
    "ecopulse_fleet_decisions_total",
    "Per-policy decisions of each pass by outcome (place, keep, move, refuse) and reason.",
    ["outcome", "reason"],
)
WRITES = Counter(
    "ecopulse_fleet_writes_total",
    "Placement writes (policy patches, WorkloadRebalancers) by kind, result and namespace; "
    "result dry-run is what a dry run would have changed.",
    ["kind", "result", "namespace"],
)
MOVES = Counter(
    "ecopulse_fleet_moves_total",
    "Moves of a policy's replicas to another member cluster by result (written, dry-run, ...) and namespace.",
    ["result", "namespace"],
)
PENDING_CHANGES = Gauge(
    "ecopulse_fleet_pending_changes",
    "Policies whose placement the last pass would change (in dry run: changes not made).",
)
MOVE_NET_BENEFIT = Counter(
    "ecopulse_fleet_move_net_benefit_usd_total",
    "Predicted net benefit of the moves written, over their horizon, by namespace (USD).",
    ["namespace"],
)
REPLICAS = Gauge(
    "ecopulse_fleet_replicas",
    "Replicas of managed workloads by namespace and member cluster region, as Karmada scheduled them.",
    BY_PLACE,
)
AVOIDED = Counter(
    "ecopulse_fleet_carbon_avoided_grams_total",
    "Emissions avoided by managed fleet workloads against the baseline region (intervals where cleaner), "
    "gCO2eq. Net avoided = this - ecopulse_fleet_carbon_added_grams_total.",
    BY_PLACE,
)
ADDED = Counter(
    "ecopulse_fleet_carbon_added_grams_total",
    "Emissions above the baseline region for managed fleet workloads, gCO2eq.",
    BY_PLACE,
)
EMISSIONS = Counter(
    "ecopulse_fleet_emissions_grams_total",
    "Emissions of managed fleet workloads at their member cluster's grid intensity, gCO2eq.",
    BY_PLACE,
)
COST = Counter(
    "ecopulse_fleet_cost_usd_total",
    "Compute cost of managed fleet workloads at list prices, USD.",
    BY_PLACE,
)
SAVED = Counter(
    "ecopulse_fleet_cost_saved_usd_total",
    "Compute cost saved against the baseline region, USD. Net = this - ecopulse_fleet_cost_added_usd_total.",
    BY_PLACE,
)
COST_ADDED = Counter(
    "ecopulse_fleet_cost_added_usd_total",
    "Compute cost above the baseline region, USD.",
    BY_PLACE,
)
LEADER = Gauge(
    "ecopulse_fleet_leader",
    "1 while this process holds the fleet-mode leader Lease and may write placements, else 0.",
)
ACCRUED = AccrualMetrics(
    running=REPLICAS,
    emissions=EMISSIONS,
    cost=COST,
    avoided_grams=(AVOIDED, ADDED),
    saved_usd=(SAVED, COST_ADDED),
)

for _decision in Outcome:
    for _reason in (*Unmanaged, *Reason):
        DECISIONS.labels(outcome=_decision.value, reason=_reason.value)

# Deferrable Jobs on the Karmada API server (fleet.deferral_loop).
HELD_JOBS = Gauge(
    "ecopulse_fleet_deferral_held_jobs",
    "Jobs on the Karmada API server held for a better (member, hour), as the last pass saw them.",
)
OVERDUE_HOLDS = Gauge(
    "ecopulse_fleet_deferral_overdue_holds",
    "Held Jobs on the Karmada API server past their release-by, as the last pass saw them.",
)
RELEASES = Counter(
    "ecopulse_fleet_deferral_releases_total",
    "Held Jobs released, by reason and whether pinned to one member (pinned: true, false).",
    ["reason", "pinned"],
)
RELEASE_FAILURES = Counter(
    "ecopulse_fleet_deferral_release_failures_total",
    "Release writes refused or unanswered, by object (job, binding) and result.",
    ["object", "result"],
)
AVOIDED_BY_WAITING = Counter(
    "ecopulse_fleet_deferral_carbon_avoided_grams_total",
    "Emissions the last plan that waited expected to avoid, counted at a green-hour release, by namespace.",
    ["namespace"],
)
