"""One rebalancer planning cycle over a synthetic snapshot, and the watch cache's memory for it.

100,000 pods in 1,000 workloads on 5,000 nodes in 20 regions (targets: plan < 1 s; cache
< 300 MB). The pods are built as the API server would send them (JSON with metadata, owner
references, containers, status) and reduced by the same ``slim_pod`` the pod watch uses, so the
memory figure is what the rebalancer's cache really holds.

Usage: python bench/planner.py [--pods 100000] [--nodes 5000] [--regions 20]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from core.catalog import load_price_table, load_region_zones
from core.config import parse_config_text
from core.kube.caches import NodeRecord, PodRecord, slim_node, slim_pod
from core.model import CarbonSignal, SignalSnapshot
from rebalancer.planner import plan

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def pod_json(index: int, *, node: str, workload: int) -> dict[str, object]:
    name = f"app-{workload}-{index:06d}"
    return {
        "metadata": {
            "name": name,
            "namespace": f"team-{workload % 50}",
            "uid": f"uid-{index:012d}",
            "resourceVersion": str(500000 + index),
            "creationTimestamp": "2026-11-20T06:00:00Z",
            "labels": {"app": f"app-{workload}", "pod-template-hash": "7d4b9c"},
            "annotations": {"ecopulse.io/preferred-region": "x", "kubectl.kubernetes.io/restartedAt": "now"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"app-{workload}-7d4b9c",
                    "uid": f"rs-{workload}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "app",
                    "image": f"registry.example/app-{workload}:1.0",
                    "resources": {
                        "requests": {
                            "cpu": f"{100 + (workload % 8) * 100}m",
                            "memory": f"{128 * (1 + workload % 4)}Mi",
                        }
                    },
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                }
            ],
            "volumes": [{"name": "kube-api-access", "projected": {"sources": []}}],
            "priority": 0,
        },
        "status": {
            "phase": "Running",
            "startTime": "2026-11-20T06:00:05Z",
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
            "podIP": f"10.{index // 65536}.{(index // 256) % 256}.{index % 256}",
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=5_000)
    parser.add_argument("--regions", type=int, default=20)
    args = parser.parse_args()
    rng = random.Random(7)

    zones = load_region_zones()
    regions = [name for name in load_price_table() if name in zones][: args.regions]
    intensities = {region: rng.uniform(20, 700) for region in regions}
    config = parse_config_text(
        "apiVersion: ecopulse.io/v1alpha1\nkind: EcoPulseConfiguration\nregions:\n"
        + "".join(f"  - {{name: {r}}}\n" for r in regions)
        + f"baselineRegion: {regions[0]}\ncarbon:\n  provider: mock\n  mock: {{"
        + ", ".join(f"{r}: {v:.1f}" for r, v in intensities.items())
        + "}\neconomics: {carbonPriceUsdPerTonne: 1000}\n"
        + "rebalancer: {minNetBenefitUsd: 0.0001, minPodAgeSeconds: 60}\n"
    )
    signals = SignalSnapshot(
        taken_at=NOW,
        provider="mock",
        carbon={
            r: CarbonSignal(
                region=r, zone=zones[r], carbon_g_per_kwh=v, observed_at=NOW, fetched_at=NOW, source="mock"
            )
            for r, v in intensities.items()
        },
    )
    nodes: dict[str, NodeRecord] = {}
    for index in range(args.nodes):
        region = regions[index % len(regions)]
        record = slim_node(
            {
                "metadata": {"name": f"node-{index}", "labels": {"topology.kubernetes.io/region": region}},
                "status": {
                    "allocatable": {"cpu": "64", "memory": "256Gi"},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
        assert record is not None
        nodes[record.name] = record
    node_names = list(nodes)

    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    cache: dict[str, PodRecord] = {}
    for index in range(args.pods):
        workload = index % 1000
        record = slim_pod(pod_json(index, node=node_names[rng.randrange(len(node_names))], workload=workload))
        assert record is not None
        cache[record.key] = record
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    cache_mb = (after - before) / 1e6

    timings = []
    for _ in range(3):
        started = time.perf_counter()
        result = plan(
            pods=cache.values(),
            nodes=nodes,
            namespaces={},
            signals=signals,
            config=config,
            now=NOW + timedelta(hours=1),
        )
        timings.append(time.perf_counter() - started)
    print(f"snapshot: {len(cache)} pods, {len(nodes)} nodes, {len(regions)} regions")
    print(
        f"plan: {min(timings) * 1000:.0f} ms best of 3 (target < 1000 ms); "
        f"{len(result.candidates)} candidates, {len(result.refusals)} refusals, "
        f"{result.pods_in_best_region} pods already in their best region"
    )
    print(
        f"pod cache memory: {cache_mb:.0f} MB for {len(cache)} slim records "
        f"({cache_mb * 1e6 / len(cache):.0f} bytes each; target < 300 MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
