"""What a pod CREATE costs at the real kube-apiserver with our webhook registered, and without.

On the local control plane (tests/e2e/cluster.py: etcd, kube-apiserver, controller-manager,
scheduler, kwok nodes in three regions, our webhook as a local process), 10 clients create bare
pods through the API server, each on its own keep-alive HTTPS connection, as fast as answers
come back. Rounds alternate between the shipped MutatingWebhookConfiguration registered and no
webhook configuration at all, so the machine's noisy moments fall on both; each round's pods are
deleted (and gone) before the next round starts. The first round each way is a warm-up and not
counted. Reported: CREATE p50/p99 each way and the with/without ratios.

It attaches to a cluster started by `make cluster-up` when one runs (.cluster/state.json),
otherwise it brings up its own in a temporary directory and stops it at the end.

With --profile-seconds N, a CPU profile of the kube-apiserver (its --profiling endpoint,
/debug/pprof/profile) is taken during one with-webhook round and summarised with
`go tool pprof -top`, to see where the API server spends the difference.

Usage: python bench/create.py [--pods 2000] [--clients 10] [--rounds 8] [--profile-seconds 0]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from tests.e2e.cluster import DEFAULT_ROOT, LocalCluster, bin_dir

NAMESPACE = "bench-create"
WEBHOOK_CONFIGURATION = "eco-pulse"


@contextlib.contextmanager
def control_plane(*, root: Path = DEFAULT_ROOT, nodes_per_region: int = 2) -> Iterator[LocalCluster]:
    """The local cluster running at ``root`` if there is one, else our own for the length of the run."""
    if (root / "state.json").exists():
        cluster = LocalCluster(root=root).load()
        cluster.bins = bin_dir()
        cluster.check_alive()
        yield cluster
        return
    own = Path(tempfile.mkdtemp(prefix="ecopulse-bench-"))
    cluster = LocalCluster(root=own, nodes_per_region=nodes_per_region)
    print(f"starting a local control plane in {own} ...", file=sys.stderr)
    cluster.up(webhook=True, prometheus=False)
    try:
        yield cluster
    finally:
        cluster.down()
        shutil.rmtree(own, ignore_errors=True)


def pod(name: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "bench"}},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "registry.example/bench:1.0",
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    }
                ],
                "terminationGracePeriodSeconds": 0,
            },
        }
    ).encode()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    return {
        "count": len(seconds),
        "p50_ms": round(percentile(seconds, 0.50) * 1000, 2),
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(seconds) * 1000, 2),
    }


class Creator:
    """Clients on keep-alive HTTPS connections to the API server, as admin (system:masters)."""

    def __init__(self, cluster: LocalCluster, clients: int) -> None:
        self.host, self.port = "127.0.0.1", cluster.ports["apiserver"]
        self.context = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
        self.context.load_cert_chain(str(cluster.pki / "admin.crt"), str(cluster.pki / "admin.key"))
        self.clients = clients
        self.connections = [self._connect() for _ in range(clients)]

    def _connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=30)

    def _call(self, index: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        for attempt in (1, 2):
            connection = self.connections[index]
            try:
                connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
                answer = connection.getresponse()
                return answer.status, answer.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                self.connections[index] = self._connect()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def create(self, names: list[str]) -> list[float]:
        """Create every pod in ``names`` from all clients at once; each CREATE's latency."""
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()
        queue = iter(names)

        def client(index: int) -> None:
            path = f"/api/v1/namespaces/{NAMESPACE}/pods"
            while True:
                with lock:
                    name = next(queue, None)
                if name is None:
                    return
                body = pod(name)
                started = time.perf_counter()
                status, answer = self._call(index, "POST", path, body)
                elapsed = time.perf_counter() - started
                with lock:
                    if status == 201:
                        latencies.append(elapsed)
                    else:
                        failures.append(f"{name}: {status} {answer[:200]!r}")

        threads = [threading.Thread(target=client, args=(i,)) for i in range(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise RuntimeError(f"{len(failures)} CREATEs failed, first: {failures[0]}")
        return latencies

    def count_pods(self) -> tuple[int, int]:
        """(pods in the namespace, of which bound to a node)."""
        status, answer = self._call(0, "GET", f"/api/v1/namespaces/{NAMESPACE}/pods")
        if status != 200:
            raise RuntimeError(f"list pods: {status} {answer[:200]!r}")
        items = json.loads(answer)["items"]
        return len(items), sum(1 for item in items if item["spec"].get("nodeName"))

    def delete_all(self) -> None:
        status, answer = self._call(
            0, "DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods?gracePeriodSeconds=0", b""
        )
        if status != 200:
            raise RuntimeError(f"delete pods: {status} {answer[:200]!r}")

    def mutated(self) -> bool:
        """A server-side dry-run CREATE: does a webhook change the pod right now?"""
        status, answer = self._call(
            0, "POST", f"/api/v1/namespaces/{NAMESPACE}/pods?dryRun=All", pod("probe")
        )
        if status != 201:
            raise RuntimeError(f"dry-run create: {status} {answer[:200]!r}")
        annotations = json.loads(answer)["metadata"].get("annotations", {})
        return "ecopulse.io/preferred-region" in annotations


def wait_until(what: str, ready: Any, timeout_seconds: float = 120) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def set_webhook(cluster: LocalCluster, creator: Creator, *, registered: bool) -> None:
    if registered:
        cluster.register_webhook()
    else:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", WEBHOOK_CONFIGURATION, "--ignore-not-found")
    # The API server picks configurations up from an informer: wait until it acts on the change.
    wait_until(f"the webhook to be {'on' if registered else 'off'}", lambda: creator.mutated() is registered)


def profile_apiserver(cluster: LocalCluster, seconds: int, out: Path) -> None:
    """The kube-apiserver's CPU profile (its --profiling endpoint) into ``out``."""
    context = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    context.load_cert_chain(str(cluster.pki / "admin.crt"), str(cluster.pki / "admin.key"))
    connection = http.client.HTTPSConnection(
        "127.0.0.1", cluster.ports["apiserver"], context=context, timeout=seconds + 30
    )
    connection.request("GET", f"/debug/pprof/profile?seconds={seconds}")
    out.write_bytes(connection.getresponse().read())


def run(args: argparse.Namespace) -> dict[str, Any]:
    with control_plane(root=Path(args.root)) as cluster:
        with contextlib.suppress(Exception):  # already there when attached to a running cluster
            cluster.kubectl("create", "namespace", NAMESPACE)
        creator = Creator(cluster, args.clients)
        per_round = max(args.clients, args.pods // args.rounds)
        samples: dict[str, list[float]] = {"webhook": [], "none": []}
        rounds: list[dict[str, Any]] = []
        profiled = False
        # A warm-up pair first, then `rounds` rounds each way, alternating which goes first.
        plan = [("webhook", False), ("none", False)]
        for index in range(args.rounds):
            pair = ["webhook", "none"] if index % 2 == 0 else ["none", "webhook"]
            plan += [(side, True) for side in pair]
        for sequence, (side, counted) in enumerate(plan):
            set_webhook(cluster, creator, registered=side == "webhook")
            names = [f"bench-{sequence}-{i}" for i in range(per_round)]
            profiler: threading.Thread | None = None
            if args.profile_seconds and side == "webhook" and counted and not profiled:
                profiled = True
                profiler = threading.Thread(
                    target=profile_apiserver,
                    args=(cluster, args.profile_seconds, Path(args.profile_out)),
                )
                profiler.start()
            started = time.perf_counter()
            latencies = creator.create(names)
            wall = time.perf_counter() - started
            if profiler is not None:
                profiler.join()
            if counted:
                samples[side] += latencies
                rounds.append(
                    {
                        "side": side,
                        **summary_ms(latencies),
                        "creates_per_second": round(len(latencies) / wall, 1),
                    }
                )
            print(json.dumps(rounds[-1] if counted else {"warm-up": side}), file=sys.stderr)
            # Every pod bound (the scheduler and kwok have caught up), then all gone.
            wait_until("pods bound", lambda: creator.count_pods()[1] >= per_round)
            creator.delete_all()
            wait_until("pods gone", lambda: creator.count_pods()[0] == 0)
        set_webhook(cluster, creator, registered=True)  # leave it as it was started
    results = {side: summary_ms(values) for side, values in samples.items()}
    return {
        "results": {**results, "clients": args.clients, "pods_per_round": per_round, "rounds": rounds},
        "p50_ratio": round(results["webhook"]["p50_ms"] / results["none"]["p50_ms"], 3),
        "p99_ratio": round(results["webhook"]["p99_ms"] / results["none"]["p99_ms"], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=2000, help="pods per side, over all counted rounds")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=8, help="counted rounds per side")
    parser.add_argument(
        "--root", default=str(DEFAULT_ROOT), help="attach to the cluster running here, if any"
    )
    parser.add_argument("--profile-seconds", type=int, default=0)
    parser.add_argument("--profile-out", default="kube-apiserver.cpu.pprof")
    args = parser.parse_args()
    report = run(args)
    if args.profile_seconds:
        go = shutil.which("go")
        if go is not None:
            top = subprocess.run(
                [go, "tool", "pprof", "-top", "-nodecount=40", args.profile_out],
                capture_output=True,
                text=True,
                check=False,
            )
            print(top.stdout[-6000:], file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
