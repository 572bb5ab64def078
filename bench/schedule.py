"""Pods bound per second by the real kube-scheduler on 500 kwok nodes, with our extender and without.

On the local control plane (tests/e2e/cluster.py) with 500 kwok nodes in three regions, two
kube-schedulers run side by side: the cluster's own, configured with the shipped
KubeSchedulerConfiguration (our extender, NodeNames mode: nodeCacheCapable), and a second one
with no extender under its own schedulerName. Rounds alternate between them: the round's
scheduler is paused (SIGSTOP), a batch of pods naming it is created, then it is resumed and the
time until every pod is bound is taken. Pods bound per second each way, and the ratio
(with / without). The admission webhook is registered in both, as shipped, so both schedule
the same mutated pods.

It attaches to a cluster started by `make cluster-up` when one runs (.cluster/state.json,
whatever its node count), otherwise it brings up its own with 500 nodes and stops it at the end.

Usage: python bench/schedule.py [--nodes 500] [--pods 500] [--rounds 4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from bench.create import Creator, control_plane, cpu_seconds, wait_until
from tests.e2e.cluster import DEFAULT_ROOT, REGIONS, LocalCluster

NAMESPACE = "bench-schedule"
WITH_EXTENDER = "default-scheduler"  # the cluster's own scheduler, shipped config
WITHOUT_EXTENDER = "no-extender"
SCHEDULERS = {WITH_EXTENDER: "kube-scheduler", WITHOUT_EXTENDER: "kube-scheduler-no-extender"}


def start_plain_scheduler(cluster: LocalCluster) -> None:
    """A second kube-scheduler, no extender, serving pods that name WITHOUT_EXTENDER."""
    config = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(cluster.kubeconfig)},
        "leaderElection": {"leaderElect": False},
        "profiles": [{"schedulerName": WITHOUT_EXTENDER}],
    }
    path = cluster.root / "kube-scheduler-no-extender.yaml"
    path.write_text(yaml.safe_dump(config))
    cluster._spawn(
        SCHEDULERS[WITHOUT_EXTENDER],
        [
            cluster.binary("kube-scheduler"),
            "--config",
            str(path),
            "--authentication-kubeconfig",
            str(cluster.kubeconfig),
            "--authorization-kubeconfig",
            str(cluster.kubeconfig),
            "--secure-port",
            "0",
        ],
    )


def pending(creator: Creator) -> int:
    total, bound = creator.count_pods()
    return total - bound


def run(args: argparse.Namespace) -> dict[str, Any]:
    per_region = -(-args.nodes // len(REGIONS))
    with control_plane(root=Path(args.root), nodes_per_region=per_region) as cluster:
        with contextlib.suppress(Exception):  # already there when attached to a running cluster
            cluster.kubectl("create", "namespace", NAMESPACE)
        nodes = len(cluster.get("/api/v1/nodes?labelSelector=type%3Dkwok")["items"])
        start_plain_scheduler(cluster)
        creator = Creator(cluster, args.clients, namespace=NAMESPACE)
        rates: dict[str, list[float]] = {WITH_EXTENDER: [], WITHOUT_EXTENDER: []}
        cpu: dict[str, dict[str, float]] = {WITH_EXTENDER: {}, WITHOUT_EXTENDER: {}}
        rounds: list[dict[str, Any]] = []
        plan = [(WITH_EXTENDER, False), (WITHOUT_EXTENDER, False)]
        for index in range(args.rounds):
            pair = [WITH_EXTENDER, WITHOUT_EXTENDER]
            plan += [(side, True) for side in (pair if index % 2 == 0 else reversed(pair))]
        try:
            time.sleep(3)  # the second scheduler's informers synced
            for sequence, (side, counted) in enumerate(plan):
                process = SCHEDULERS[side]
                cluster.pause(process)
                try:
                    creator.create([f"s{sequence}-{i}" for i in range(args.pods)], scheduler_name=side)
                finally:
                    cluster.resume(process)
                before = cpu_seconds(cluster)
                started = time.perf_counter()
                wait_until(
                    f"{args.pods} pods bound by {side}", lambda: pending(creator) == 0, timeout_seconds=600
                )
                elapsed = time.perf_counter() - started
                after = cpu_seconds(cluster)
                rate = args.pods / elapsed
                if counted:
                    rates[side].append(rate)
                    for name, value in after.items():
                        cpu[side][name] = cpu[side].get(name, 0.0) + value - before.get(name, value)
                    rounds.append({"scheduler": side, "pods": args.pods, "seconds": round(elapsed, 2)})
                print(
                    json.dumps({"scheduler": side, "counted": counted, "pods_per_second": round(rate, 1)}),
                    file=sys.stderr,
                )
                creator.delete_all()
                wait_until("pods gone", lambda: creator.count_pods()[0] == 0)
        finally:
            cluster.stop(SCHEDULERS[WITHOUT_EXTENDER])
    bound = {side: args.pods * len(values) for side, values in rates.items()}
    results: dict[str, Any] = {
        side: {
            "pods_per_second_median": round(statistics.median(values), 1),
            "pods_per_second_each_round": [round(v, 1) for v in values],
            "cpu_ms_per_pod": {
                name: round(seconds * 1000 / max(1, bound[side]), 3) for name, seconds in sorted(used.items())
            },
        }
        for side, (values, used) in ((s, (rates[s], cpu[s])) for s in rates)
    }
    with_rate = results[WITH_EXTENDER]["pods_per_second_median"]
    without_rate = results[WITHOUT_EXTENDER]["pods_per_second_median"]
    return {
        "results": {
            "with_extender": results[WITH_EXTENDER],
            "without_extender": results[WITHOUT_EXTENDER],
            "nodes": nodes,
            "pods_per_round": args.pods,
            "rounds": rounds,
        },
        "throughput_ratio": round(with_rate / without_rate, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=500, help="kwok nodes, when it starts its own cluster")
    parser.add_argument("--pods", type=int, default=500, help="pods per round")
    parser.add_argument("--rounds", type=int, default=4, help="counted rounds per scheduler")
    parser.add_argument("--clients", type=int, default=10, help="clients creating each round's pods")
    parser.add_argument(
        "--root", default=str(DEFAULT_ROOT), help="attach to the cluster running here, if any"
    )
    args = parser.parse_args()
    print(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
