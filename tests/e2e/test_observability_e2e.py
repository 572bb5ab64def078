"""Savings you can audit, on the real control plane and a real Prometheus.

The webhook places a test namespace's pods in the greenest region, the rebalancer's leader accounts
for them, Prometheus (Debian's, started with the cluster) scrapes both. Then:

- the net avoided CO2 the namespace dashboard shows for the namespace equals an independent
  calculation from the scenario's inputs (pod requests, the CCF coefficients, the mock grid),
  written out here rather than imported from our code;
- after a grid flip makes the rebalancer evict, every panel query of every dashboard returns data.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.contract.dashboards import load_dashboards, panel_queries, render_query
from tests.e2e.cluster import SCRAPE_INTERVAL_SECONDS, LocalCluster
from tests.e2e.test_rebalancer_e2e import EU_GREEN, ON_DEMAND, US_GREEN, set_grid
from tests.e2e.test_webhook_e2e import deployment, wait_for_decision_region, wait_scheduled

NAMESPACE = "obs-savings"
REPLICAS = 3
# The scenario's inputs, independent of our code: PLAIN_DEPLOYMENT's requests (250m, 256Mi),
# the CCF defaults (0.74-3.5 W per vCPU at 50 %, 0.392 W per GiB, PUE 1.135) and the mock grid.
CPU_CORES, MEMORY_GIB = 0.25, 0.25
WATTS_AT_WALL = (CPU_CORES * (0.74 + 0.5 * (3.5 - 0.74)) + MEMORY_GIB * 0.392) * 1.135
NET_AVOIDED_PANEL = "Net CO2 avoided by namespace"
GRID = {"us-east-1": 450.0, "eu-west-1": 300.0, "eu-north-1": 30.0}  # EU_GREEN; baseline us-east-1


def query(cluster: LocalCluster, expr: str, at: float | None = None) -> list[dict[str, object]]:
    return cluster.prometheus_query(expr, at=at)


def value(sample: dict[str, object]) -> float:
    pair = sample["value"]
    assert isinstance(pair, list)
    return float(pair[1])


def wait_until(what: str, check: object, timeout_seconds: float) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_seconds}s waiting for {what}")


@dataclass(frozen=True)
class Scenario:
    cluster: LocalCluster
    started_at: float  # wall clock before the deployment was applied
    phase_one_at: float  # the Prometheus sample time that closes the steady, single-grid phase


@pytest.fixture(scope="module")
def scenario(cluster: LocalCluster) -> Iterator[Scenario]:
    original = cluster.config_file.read_text()
    cluster.start_rebalancer("rebalancer-obs")
    cluster.kubectl("create", "namespace", NAMESPACE)
    try:
        started = time.time()
        cluster.kubectl(
            "apply",
            "-f",
            "-",
            input_text=deployment("saver", NAMESPACE, replicas=REPLICAS, node_selector=ON_DEMAND),
        )
        wait_scheduled(cluster, NAMESPACE, "saver", REPLICAS)

        # Phase one: a steady grid. Let the leader account a handful of cycles.
        def accounted_long_enough() -> bool:
            result = query(cluster, f'sum(ecopulse_pod_seconds_total{{namespace="{NAMESPACE}"}})')
            return bool(result) and value(result[0]) >= REPLICAS * 30

        wait_until("30 s of accounting for every replica", accounted_long_enough, 120)
        time.sleep(2 * SCRAPE_INTERVAL_SECONDS)
        stamp = query(cluster, f'max(timestamp(ecopulse_pod_seconds_total{{namespace="{NAMESPACE}"}}))')
        phase_one_at = value(stamp[0])

        # Phase two: the grid flips, the rebalancer evicts, so every operations panel has data.
        set_grid(cluster, US_GREEN)

        def evicted() -> bool:
            result = query(cluster, 'sum(ecopulse_rebalancer_evictions_total{result="evicted"})')
            return bool(result) and value(result[0]) >= 1

        wait_until("an eviction after the grid flip", evicted, 120)
        time.sleep(3 * SCRAPE_INTERVAL_SECONDS)
        yield Scenario(cluster=cluster, started_at=started, phase_one_at=phase_one_at)
    finally:
        cluster.stop("rebalancer-obs")
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false")
        cluster.config_file.write_text(original)
        set_grid(cluster, EU_GREEN)
        wait_for_decision_region(cluster, "eu-north-1")


def test_the_dashboard_avoided_co2_matches_an_independent_calculation(scenario: Scenario) -> None:
    cluster, at = scenario.cluster, scenario.phase_one_at
    range_seconds = math.ceil(at - scenario.started_at) + 60  # the whole of phase one, and some
    # Pod-seconds per region, as Prometheus saw them over the same range the dashboard uses.
    pod_seconds = {
        str(sample["metric"]["region"]): value(sample)  # type: ignore[index]
        for sample in query(
            cluster,
            f'sum by (region) (increase(ecopulse_pod_seconds_total{{namespace="{NAMESPACE}"}}'
            f"[{range_seconds}s]))",
            at=at,
        )
    }
    assert pod_seconds, "no pod-seconds accounted for the test namespace"
    # Accounting covers the pods' lifetime, to within a few cycles and scrapes.
    lifetime = REPLICAS * (at - scenario.started_at)
    assert 0.5 * lifetime <= sum(pod_seconds.values()) <= lifetime * 1.05
    expected_grams = sum(
        seconds * WATTS_AT_WALL / 1000 / 3600 * (GRID["us-east-1"] - GRID[region])
        for region, seconds in pod_seconds.items()
    )
    assert expected_grams > 0

    expr, grams_per_unit = net_avoided_panel()
    rendered = render_query(expr.replace("$namespace", NAMESPACE), range_seconds=range_seconds)
    rows = query(cluster, rendered, at=at)
    figures = [
        value(row) * grams_per_unit
        for row in rows
        if row["metric"].get("namespace", NAMESPACE) == NAMESPACE  # type: ignore[attr-defined]
    ]
    assert len(figures) == 1, f"{rendered} -> {rows}"
    assert figures[0] == pytest.approx(expected_grams, rel=0.01)


def net_avoided_panel() -> tuple[str, float]:
    """The namespace dashboard's net avoided CO2 query, and grams per unit of what it returns."""
    dashboard = load_dashboards()["namespaces.json"]
    for panel in dashboard["panels"]:
        if panel.get("title") == NET_AVOIDED_PANEL:
            unit = panel["fieldConfig"]["defaults"]["unit"]
            grams_per_unit = {"massg": 1.0, "masskg": 1000.0, "masst": 1_000_000.0}[unit]
            [target] = panel["targets"]
            return str(target["expr"]), grams_per_unit
    raise AssertionError(f"the namespaces dashboard has no panel {NET_AVOIDED_PANEL!r}")


FLEET_DASHBOARD = "fleet.json"


def test_every_dashboard_panel_returns_data(scenario: Scenario) -> None:
    cluster = scenario.cluster
    range_seconds = math.ceil(time.time() - scenario.started_at) + 60
    empty: list[str] = []
    for name, dashboard in sorted(load_dashboards().items()):
        if name == FLEET_DASHBOARD:
            continue  # fleet mode runs against a Karmada fleet, not in this one-cluster scenario
        for title, expr in panel_queries(dashboard):
            rendered = render_query(expr, range_seconds=range_seconds)
            if not query(cluster, rendered):
                empty.append(f"{name} / {title}: {rendered}")
    assert not empty, "panels with no data:\n" + "\n".join(empty)


def test_the_alert_rules_load_into_prometheus(scenario: Scenario) -> None:
    with urllib.request.urlopen(f"{scenario.cluster.prometheus_url}/api/v1/rules", timeout=10) as answer:
        groups = json.loads(answer.read())["data"]["groups"]
    alerts = {rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"}
    assert {
        "EcoPulseSignalsStale",
        "EcoPulseFailOpenRising",
        "EcoPulseRebalancerNotCycling",
        "EcoPulseWebhookLatencyHigh",
    } <= alerts
    unhealthy = [rule["name"] for group in groups for rule in group["rules"] if rule.get("health") == "err"]
    assert not unhealthy
