"""Fleet mode's metrics: base units, the ``ecopulse_fleet_`` prefix, bounded labels.

Namespaces come from the Karmada API server's objects, so they pass through a
``BoundedLabelValues`` (past the cap: ``other``); outcomes, reasons and results are enums.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from core.managed import Unmanaged
from core.metrics import BoundedLabelValues
from fleet.planner import Outcome, Reason

MAX_NAMESPACE_LABELS = 200
namespace_label = BoundedLabelValues(cap=MAX_NAMESPACE_LABELS)

PASSES = Counter(
    "ecopulse_fleet_passes_total",
    "Fleet planning passes by outcome (completed, leadership-lost, not-leader, not-synced, error).",
    ["outcome"],
)
PASS_DURATION = Histogram(
    "ecopulse_fleet_pass_duration_seconds",
    "Time one fleet pass took (planning and writes).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
LAST_PASS = Gauge(
    "ecopulse_fleet_last_pass_timestamp_seconds",
    "Unix time the last fleet pass finished (completed or not).",
)
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
    ["namespace", "region"],
)
AVOIDED = Counter(
    "ecopulse_fleet_carbon_avoided_grams_total",
    "Emissions avoided by managed fleet workloads against the baseline region (intervals where cleaner), "
    "gCO2eq. Net avoided = this - ecopulse_fleet_carbon_added_grams_total.",
    ["namespace", "region"],
)
ADDED = Counter(
    "ecopulse_fleet_carbon_added_grams_total",
    "Emissions above the baseline region for managed fleet workloads, gCO2eq.",
    ["namespace", "region"],
)
EMISSIONS = Counter(
    "ecopulse_fleet_emissions_grams_total",
    "Emissions of managed fleet workloads at their member cluster's grid intensity, gCO2eq.",
    ["namespace", "region"],
)
COST = Counter(
    "ecopulse_fleet_cost_usd_total",
    "Compute cost of managed fleet workloads at list prices, USD.",
    ["namespace", "region"],
)
SAVED = Counter(
    "ecopulse_fleet_cost_saved_usd_total",
    "Compute cost saved against the baseline region, USD. Net = this - ecopulse_fleet_cost_added_usd_total.",
    ["namespace", "region"],
)
COST_ADDED = Counter(
    "ecopulse_fleet_cost_added_usd_total",
    "Compute cost above the baseline region, USD.",
    ["namespace", "region"],
)
LEADER = Gauge(
    "ecopulse_fleet_leader",
    "1 while this process holds the fleet-mode leader Lease and may write placements, else 0.",
)

for _outcome in ("completed", "leadership-lost", "not-leader", "not-synced", "error"):
    PASSES.labels(outcome=_outcome)
for _decision in Outcome:
    for _reason in (*Unmanaged, *Reason):
        DECISIONS.labels(outcome=_decision.value, reason=_reason.value)
