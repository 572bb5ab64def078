"""Live prices on the real control plane: the webhook and the rebalancer read an Azure Retail
Prices server (tests/price_servers.py, the real wire protocol); a price change there changes the
next decisions; the server going down keeps the last good prices, then the bundled table after
pricing.maxStaleSeconds, named on every decision and on the metrics."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.signals.refresher import SNAPSHOT_REUSE_SECONDS
from tests.e2e.cluster import LocalCluster, free_port
from tests.factories import THREE_REGIONS
from tests.price_servers import AZURE_PATH, AzurePrices, OpenCostNode, azure_prices, opencost_exporter

PREFERRED = "ecopulse.io/preferred-region"
DECISION = "ecopulse.io/decision"
VM = "Standard_D2s_v5"
MAX_STALE_SECONDS = 20
# Reference VM $/h per region: eu-west-1 the cheapest at first, then eu-north-1 (each change
# within pricing.maxChangeFactor, 3).
FIRST = {"us-east-1": (0.096, 0.02), "eu-west-1": (0.08, 0.016), "eu-north-1": (0.1, 0.02)}
THEN = {"us-east-1": (0.096, 0.02), "eu-west-1": (0.2, 0.04), "eu-north-1": (0.07, 0.014)}


def config_text(base_url: str) -> str:
    # One grid intensity everywhere and no `prices:` entries: only the live prices tell the regions apart.
    return (
        "apiVersion: ecopulse.io/v1alpha1\nkind: EcoPulseConfiguration\n"
        + THREE_REGIONS
        + "carbon:\n  provider: mock\n  mock: {us-east-1: 300, eu-west-1: 300, eu-north-1: 300}\n"
        + "  refreshSeconds: 5\n  maxStaleSeconds: 600\n"
        + "economics: {horizonHours: 6, migrationCostUsd: 0.0001, restartDowntimeSeconds: 5}\n"
        + "placement: {mode: preferred}\n"
        + "rebalancer: {intervalSeconds: 3, dryRun: true, minPodAgeSeconds: 5, minNetBenefitUsd: 0.000001,"
        + " holdHours: 0, gapErrorMargin: 0}\n"
        + "pricing:\n  provider: azure\n  refreshSeconds: 5\n"
        + f"  maxStaleSeconds: {MAX_STALE_SECONDS}\n"
        + f"  azure: {{baseUrl: '{base_url}', referenceVm: {VM}}}\n"
    )


def wait_until(what: str, condition: Any, timeout_seconds: float, every: float = 0.25) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_seconds}s: {what}")
        time.sleep(every)


def price_samples(port: int) -> dict[tuple[str, str, str, str], float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:  # not serving yet
        return {}
    samples: dict[tuple[str, str, str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("ecopulse_price_usd_per_hour{"):
            labels_text, value = line[len("ecopulse_price_usd_per_hour{") :].rsplit("} ", 1)
            labels = dict(part.split("=", 1) for part in labels_text.split(","))
            key = tuple(labels[k].strip('"') for k in ("region", "capacity_type", "resource", "source"))
            samples[key] = float(value)
    return samples


def cheaper_north(port: int) -> bool:
    """Whether the app's live prices make eu-north-1 cheaper than eu-west-1 (the change arrived)."""
    samples = price_samples(port)
    north = samples.get(("eu-north-1", "on-demand", "vcpu", "azure"))
    west = samples.get(("eu-west-1", "on-demand", "vcpu", "azure"))
    return north is not None and west is not None and north < west


def sources(port: int) -> set[str]:
    return {key[3] for key in price_samples(port)}


def place(cluster: LocalCluster, namespace: str, name: str) -> tuple[str, str]:
    """Create a pod through the drill's webhook: (its preferred region, its decision annotation)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "priced"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "registry.example/x:1",
                    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
                }
            ]
        },
    }
    cluster.kubectl("create", "-f", "-", input_text=json.dumps(pod))
    annotations = cluster.get(f"/api/v1/namespaces/{namespace}/pods/{name}")["metadata"].get(
        "annotations", {}
    )
    return annotations.get(PREFERRED, ""), annotations.get(DECISION, "")


def anchor(cluster: LocalCluster, namespace: str) -> None:
    """A pod bound to an eu-west-1 node by name (no scheduler): where the rebalancer would move it
    from there is its decision, whatever the scheduler does with the other pods."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "anchor", "namespace": namespace},
        "spec": {
            "nodeName": "eu-west-1-a-0",
            "containers": [
                {
                    "name": "c",
                    "image": "registry.example/x:1",
                    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
                }
            ],
        },
    }
    cluster.kubectl("create", "-f", "-", input_text=json.dumps(pod))


def decision_lines(cluster: LocalCluster, name: str, namespace: str) -> list[dict[str, Any]]:
    lines = []
    for raw in (cluster.logs / f"{name}.log").read_text(errors="replace").splitlines():
        if raw.startswith("{") and '"rebalancer decision"' in raw and f'"namespace":"{namespace}"' in raw:
            lines.append(json.loads(raw))
    return lines


@pytest.fixture
def namespace(cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "prices-" + request.node.name.replace("_", "-")[5:30].strip("-").lower()
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def server() -> Iterator[AzurePrices]:
    with azure_prices({(region, VM): prices for region, prices in FIRST.items()}) as state:
        yield state


def test_live_prices_drive_the_next_decisions_then_fall_back_when_the_source_is_gone(
    cluster: LocalCluster, namespace: str, server: AzurePrices
) -> None:
    config: Path = cluster.root / "config-prices.yaml"
    config.write_text(config_text(server.url + AZURE_PATH))
    env = {"ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS": "true"}
    webhook, port, webhook_metrics = "webhook-prices", free_port(), free_port()
    rebalancer, rebalancer_metrics = "rebalancer-prices", free_port()
    cluster.start_webhook(webhook, port=port, metrics_port=webhook_metrics, config_file=config, env=env)
    cluster.register_webhook(f"https://127.0.0.1:{port}/mutate")
    cluster.start_rebalancer(rebalancer, metrics_port=rebalancer_metrics, config_file=config, env=env)
    try:
        wait_until("both apps priced from azure", lambda: "azure" in sources(webhook_metrics), 30)
        wait_until("the rebalancer priced from azure", lambda: "azure" in sources(rebalancer_metrics), 120)
        assert {key[0] for key in price_samples(webhook_metrics) if key[3] == "azure"} == set(FIRST)

        # eu-west-1 is the cheapest: the decisions say so and name their prices.
        region, decision = place(cluster, namespace, "first")
        assert region == "eu-west-1", decision
        assert "prices: azure, at most" in decision
        anchor(cluster, namespace)
        cycles = len(cycle_lines(cluster, rebalancer))
        wait_until(
            "two rebalancer cycles with the anchor",
            lambda: len(cycle_lines(cluster, rebalancer)) > cycles + 1,
            30,
        )
        assert not [
            line for line in decision_lines(cluster, rebalancer, namespace) if line.get("pod") == "anchor"
        ], "the anchor is in the cheapest region: nothing to decide"

        # The price changes at the source: the next decisions follow within a refresh.
        for key, prices in THEN.items():
            server.vms[(key, VM)] = prices
        changed_at = time.monotonic()
        wait_until("the new prices in the webhook", lambda: cheaper_north(webhook_metrics), 30)
        time.sleep(SNAPSHOT_REUSE_SECONDS + 0.5)  # a review reuses a snapshot up to a second old
        region, decision = place(cluster, namespace, "second")
        assert region == "eu-north-1", decision
        # The rebalancer, with the same live prices, now wants the anchor in eu-north-1 (a bare pod:
        # refused, with the target and the prices it decided with).
        wait_until(
            "the rebalancer targets the newly cheapest region for the anchor",
            lambda: any(
                line.get("pod") == "anchor"
                and line.get("target_region") == "eu-north-1"
                and str(line.get("prices", "")).startswith("prices azure age<=")
                for line in decision_lines(cluster, rebalancer, namespace)
            ),
            60,
        )
        assert time.monotonic() - changed_at < 60

        # The source goes down: the last good prices hold until maxStaleSeconds...
        server_gone_at = time.monotonic()
        server.stop()
        region, decision = place(cluster, namespace, "third")
        assert time.monotonic() - server_gone_at < MAX_STALE_SECONDS - 5, "the drill ran too slowly"
        assert region == "eu-north-1" and "prices: azure" in decision, decision
        # ... then every region falls back to the bundled table, counted and named.
        wait_until(
            "the webhook falls back to the bundled table",
            lambda: sources(webhook_metrics) == {"static(fallback)"},
            MAX_STALE_SECONDS + 20,
        )
        wait_until(
            "the rebalancer falls back too",
            lambda: sources(rebalancer_metrics) == {"static(fallback)"},
            30,
        )
        time.sleep(SNAPSHOT_REUSE_SECONDS + 0.5)
        _, decision = place(cluster, namespace, "fourth")
        assert "prices: static(fallback), at most 0 s old" in decision, decision
        with urllib.request.urlopen(f"http://127.0.0.1:{webhook_metrics}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        assert 'ecopulse_price_fresh{provider="azure",region="eu-north-1"} 0.0' in text
        assert 'ecopulse_price_fallbacks_total{region="eu-north-1",source="azure"} 1.0' in text
    finally:
        cluster.register_webhook()
        cluster.stop(webhook)
        cluster.stop(rebalancer)


def cycle_lines(cluster: LocalCluster, name: str) -> list[str]:
    return [
        raw
        for raw in (cluster.logs / f"{name}.log").read_text(errors="replace").splitlines()
        if '"rebalancing cycle"' in raw
    ]


def opencost_config_text(prometheus_url: str) -> str:
    return (
        "apiVersion: ecopulse.io/v1alpha1\nkind: EcoPulseConfiguration\n"
        + THREE_REGIONS
        + "carbon:\n  provider: mock\n  mock: {us-east-1: 300, eu-west-1: 300, eu-north-1: 300}\n"
        + "economics: {horizonHours: 6}\nplacement: {mode: preferred}\n"
        + "pricing:\n  provider: opencost\n  refreshSeconds: 5\n  maxStaleSeconds: 600\n"
        + f"  opencost: {{prometheusUrl: '{prometheus_url}'}}\n"
    )


def test_opencost_node_prices_through_the_clusters_prometheus_decide(
    cluster: LocalCluster, namespace: str
) -> None:
    """OpenCost's series, served as OpenCost names and labels them, scraped by the cluster's real
    Prometheus; the webhook reads them there and prices its decisions with them."""
    nodes = [
        OpenCostNode(name="n-us", region="us-east-1", cpu_hour_usd=0.05, ram_gib_hour_usd=0.006, spot=False),
        OpenCostNode(
            name="n-west", region="eu-west-1", cpu_hour_usd=0.01, ram_gib_hour_usd=0.0015, spot=False
        ),
        OpenCostNode(
            name="n-north", region="eu-north-1", cpu_hour_usd=0.04, ram_gib_hour_usd=0.005, spot=False
        ),
    ]
    config: Path = cluster.root / "config-opencost.yaml"
    config.write_text(opencost_config_text(cluster.prometheus_url))
    webhook, port, webhook_metrics = "webhook-opencost", free_port(), free_port()
    with opencost_exporter(nodes) as exporter:
        cluster.metrics_targets["opencost"] = int(exporter.url.rsplit(":", 1)[1])
        cluster._write_scrape_targets()
        cluster.start_webhook(
            webhook,
            port=port,
            metrics_port=webhook_metrics,
            config_file=config,
            env={"ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS": "true"},
        )
        cluster.register_webhook(f"https://127.0.0.1:{port}/mutate")
        try:
            wait_until(
                "the webhook priced every region from opencost",
                lambda: {k[0] for k in price_samples(webhook_metrics) if k[3] == "opencost"} == set(FIRST),
                90,
                every=1.0,
            )
            samples = price_samples(webhook_metrics)
            assert samples[("eu-west-1", "on-demand", "vcpu", "opencost")] == 0.01
            time.sleep(SNAPSHOT_REUSE_SECONDS + 0.5)
            region, decision = place(cluster, namespace, "opencost-priced")
            assert region == "eu-west-1", decision
            assert "prices: opencost, at most" in decision
        finally:
            cluster.register_webhook()
            cluster.stop(webhook)
            cluster.metrics_targets.pop("opencost", None)
            cluster._write_scrape_targets()
