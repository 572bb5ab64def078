"""Per-namespace carbon and cost accounting, run by the leader every cycle (so nothing counts twice).

The arithmetic is ``core.accounting.accrue`` (pure); this module picks the pods to account, keeps
the clock between ticks, and turns each interval's ledger into counters and one log line.

Avoided carbon and saved money are signed, and a Prometheus counter can only go up, while a gauge
would lose its running sum at every leader change. So each signed figure is a pair of counters:
``..._avoided_..._total`` takes the intervals where the region beat the baseline and
``..._added_..._total`` the intervals where it did worse; net = avoided - added. Both children
exist for every (namespace, region) ever accounted, so ``sum by (namespace)`` differences never
drop a namespace that has only one side.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC

from prometheus_client import Counter, Gauge

from core.accounting import Interval, Ledger, RunningPod, Skipped, by_namespace
from core.config import EcoPulseConfiguration
from core.managed import unmanaged
from core.metrics import BY_PLACE, AccrualMetrics
from core.model import NamespaceInfo, NodeRecord, PodRecord, SignalSnapshot
from core.policy import EMPTY_POLICY_SET, PolicySet, resolve

log = logging.getLogger("ecopulse.rebalancer")

ENERGY = Counter(
    "ecopulse_energy_kwh_total",
    "Energy of managed running pods (power model on requests, PUE included), kWh.",
    BY_PLACE,
)
EMISSIONS = Counter(
    "ecopulse_emissions_grams_total",
    "Emissions of managed running pods at their region's location-based grid intensity, gCO2eq.",
    BY_PLACE,
)
CARBON_AVOIDED = Counter(
    "ecopulse_carbon_avoided_grams_total",
    "Emissions avoided against the same pods in the baseline region, in intervals where the region "
    "was cleaner, gCO2eq. Net avoided = this - ecopulse_carbon_added_grams_total.",
    BY_PLACE,
)
CARBON_ADDED = Counter(
    "ecopulse_carbon_added_grams_total",
    "Emissions above what the same pods would have emitted in the baseline region, gCO2eq.",
    BY_PLACE,
)
COST = Counter(
    "ecopulse_cost_usd_total",
    "Compute cost of managed running pods at list prices (on-demand or spot), USD.",
    BY_PLACE,
)
COST_SAVED = Counter(
    "ecopulse_cost_saved_usd_total",
    "Compute cost saved against the same pods in the baseline region, USD. "
    "Net saved = this - ecopulse_cost_added_usd_total.",
    BY_PLACE,
)
COST_ADDED = Counter(
    "ecopulse_cost_added_usd_total",
    "Compute cost above what the same pods would have cost in the baseline region, USD.",
    BY_PLACE,
)
POD_SECONDS = Counter(
    "ecopulse_pod_seconds_total",
    "Pod-seconds accounted, by whether the region was cleaner than the baseline at the time.",
    [*BY_PLACE, "cleaner_than_baseline"],
)
SKIPPED = Counter(
    "ecopulse_accounting_skipped_pod_seconds_total",
    "Pod-seconds not accounted, by reason (unknown-region, region-signal-unknown, ...).",
    ["reason"],
)
MANAGED_PODS = Gauge(
    "ecopulse_managed_pods",
    "Running pods Eco-Pulse manages and accounted at the leader's last cycle, by namespace and region.",
    BY_PLACE,
)
for _reason in Skipped:
    SKIPPED.labels(reason=str(_reason))
ACCRUED = AccrualMetrics(
    running=MANAGED_PODS,
    emissions=EMISSIONS,
    cost=COST,
    avoided_grams=(CARBON_AVOIDED, CARBON_ADDED),
    saved_usd=(COST_SAVED, COST_ADDED),
)


def accountable(
    pods: Iterable[PodRecord],
    *,
    nodes: Mapping[str, NodeRecord],
    namespaces: Mapping[str, NamespaceInfo],
    own_namespace: str = "",
    policies: PolicySet = EMPTY_POLICY_SET,
) -> list[RunningPod]:
    """Running pods that Eco-Pulse places: not system, opted-out, mirror, static or DaemonSet pods,
    nor pods a policy with mode: off selects. Each carries the refs of the policies that apply.

    Those run where they run whatever we do (a DaemonSet pod exists in every region), and
    crediting their "avoidance" would count the cluster's shape as our saving.
    """
    selected: list[RunningPod] = []
    for pod in pods:
        if pod.phase != "Running" or not pod.node_name:
            continue
        namespace = namespaces.get(pod.namespace)
        if unmanaged(pod, namespace=namespace, own_namespace=own_namespace) is not None:
            continue
        node = nodes.get(pod.node_name)
        if node is None:
            continue  # not in the node cache yet: account it from the next tick
        resolution = resolve(policies, namespace=pod.namespace, pod_labels=pod.labels)
        if resolution.opts_out(pod.hint_annotations):
            continue
        selected.append(
            RunningPod(
                namespace=pod.namespace,
                region=node.region,
                capacity_type=node.capacity_type,
                demand=pod.demand,
                policies=tuple(policy.ref for policy in resolution.applied),
            )
        )
    return selected


class Accountant:
    """Integrates between the leader's ticks; forgets its clock when leadership is lost."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._interval = Interval(monotonic)

    def reset(self) -> None:
        """Another replica accounts while we are not leader: never count that interval again."""
        self._interval.reset()
        ACCRUED.forget()  # the leader reports pods now

    def tick(
        self,
        pods: Iterable[RunningPod],
        *,
        signals: SignalSnapshot,
        config: EcoPulseConfiguration,
    ) -> Ledger:
        ledger = self._interval.accrue(pods, signals=signals, config=config)
        record(ledger)
        return ledger


def record(ledger: Ledger) -> None:
    """The ledger into counters, and one log line that says which signals it used."""
    ACCRUED.record(ledger)
    for (namespace, region), accrual in ledger.accruals.items():
        ENERGY.labels(namespace, region).inc(accrual.energy_kwh)
        cleaner = region in ledger.cleaner_than_baseline
        POD_SECONDS.labels(namespace, region, "true" if cleaner else "false").inc(accrual.pod_seconds)
        POD_SECONDS.labels(namespace, region, "false" if cleaner else "true")
    for reason, seconds in ledger.skipped_pod_seconds.items():
        SKIPPED.labels(reason=str(reason)).inc(seconds)
    if ledger.elapsed_seconds <= 0:
        return
    total = ledger.total()
    log.info(
        "accounting",
        extra={
            "decision": "accounting",
            "elapsed_seconds": round(ledger.elapsed_seconds, 3),
            "baseline_region": ledger.baseline_region,
            "pods": total.pods,
            "energy_kwh": round(total.energy_kwh, 9),
            "emissions_grams": round(total.emissions_grams, 6),
            "carbon_avoided_grams": round(total.avoided_grams, 6),
            "cost_usd": round(total.cost_usd, 9),
            "cost_saved_usd": round(total.saved_usd, 9),
            "skipped_pod_seconds": {str(k): round(v, 3) for k, v in ledger.skipped_pod_seconds.items()},
            "signals": {
                region: {
                    "carbon_g_per_kwh": used.carbon_g_per_kwh,
                    "observed_at": used.observed_at.astimezone(UTC).isoformat(),
                    "source": used.source,
                }
                for region, used in ledger.intensities.items()
            },
            "namespaces": {
                namespace: {
                    "carbon_avoided_grams": round(accrual.avoided_grams, 6),
                    "cost_saved_usd": round(accrual.saved_usd, 9),
                }
                for namespace, accrual in sorted(by_namespace(ledger).items())[:MAX_LOGGED_NAMESPACES]
            },
        },
    )


# One accounting line stays readable: the counters have every namespace, the log the first ones.
MAX_LOGGED_NAMESPACES = 100
