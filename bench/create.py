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
/debug/pprof/profile) is taken during the first counted round each way, and the difference summarised with
`go tool pprof -top`, to see where the API server spends the difference.

Usage: python bench/create.py [--pods 2000] [--clients 10] [--rounds 8] [--profile-seconds 0]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
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

from tests.e2e.cluster import DEFAULT_ROOT, LocalCluster, bin_dir, free_port

NAMESPACE = "bench-create"
DECISION = "ecopulse.io/decision"
CONTROL_MARK = " (control)"  # how a dry-run tells the control's patch from ours
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


def pod(name: str, *, namespace: str = NAMESPACE, scheduler_name: str = "default-scheduler") -> bytes:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
            "spec": {
                "schedulerName": scheduler_name,
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

    def __init__(self, cluster: LocalCluster, clients: int, *, namespace: str = NAMESPACE) -> None:
        self.namespace = namespace
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

    def create(
        self, names: list[str], *, rate_per_second: float = 0.0, scheduler_name: str = "default-scheduler"
    ) -> list[float]:
        """Create every pod in ``names`` from all clients; each CREATE's latency.

        Closed loop (rate 0): each client sends its next CREATE when the last one is answered,
        so on a saturated machine latency is set by throughput. Open loop: the n-th CREATE is due
        at n / rate, and its latency counts from then (a late start is the server's delay too).
        """
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()
        queue = iter(enumerate(names))
        start = time.perf_counter() + 0.05

        def client(index: int) -> None:
            path = f"/api/v1/namespaces/{self.namespace}/pods"
            while True:
                with lock:
                    item = next(queue, None)
                if item is None:
                    return
                sequence, name = item
                body = pod(name, namespace=self.namespace, scheduler_name=scheduler_name)
                if rate_per_second > 0:
                    started = start + sequence / rate_per_second
                    time.sleep(max(0.0, started - time.perf_counter()))
                else:
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
        status, answer = self._call(0, "GET", f"/api/v1/namespaces/{self.namespace}/pods")
        if status != 200:
            raise RuntimeError(f"list pods: {status} {answer[:200]!r}")
        items = json.loads(answer)["items"]
        return len(items), sum(1 for item in items if item["spec"].get("nodeName"))

    def delete_all(self) -> None:
        status, answer = self._call(
            0, "DELETE", f"/api/v1/namespaces/{self.namespace}/pods?gracePeriodSeconds=0", b""
        )
        if status != 200:
            raise RuntimeError(f"delete pods: {status} {answer[:200]!r}")

    def mutated_by(self) -> str:
        """A server-side dry-run CREATE: which webhook changes the pod right now, if any?"""
        status, answer = self._call(
            0, "POST", f"/api/v1/namespaces/{NAMESPACE}/pods?dryRun=All", pod("probe")
        )
        if status != 201:
            raise RuntimeError(f"dry-run create: {status} {answer[:200]!r}")
        decision = json.loads(answer)["metadata"].get("annotations", {}).get(DECISION)
        if decision is None:
            return "none"
        return "control" if decision.endswith(CONTROL_MARK) else "webhook"

    def our_patch(self, cluster: LocalCluster) -> list[dict[str, Any]]:
        """The JSON patch our webhook answers for a bench pod, asked directly."""
        context = ssl.create_default_context(cafile=str(cluster.webhook_tls / "ca.crt"))
        connection = http.client.HTTPSConnection(
            "127.0.0.1", cluster.ports["webhook"], context=context, timeout=10
        )
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "bench-control",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": NAMESPACE,
                "operation": "CREATE",
                "userInfo": {"username": "admin"},
                "object": json.loads(pod("probe")),
            },
        }
        connection.request(
            "POST", "/mutate", body=json.dumps(review), headers={"Content-Type": "application/json"}
        )
        answer = json.loads(connection.getresponse().read())
        patch: list[dict[str, Any]] = json.loads(base64.b64decode(answer["response"]["patch"]))
        return patch


def wait_until(what: str, ready: Any, timeout_seconds: float = 120) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def set_side(cluster: LocalCluster, creator: Creator, side: str, control_url: str) -> None:
    """Register our webhook, the Go control, or no webhook configuration at all."""
    if side == "webhook":
        cluster.register_webhook()
    elif side == "control":
        cluster.register_webhook(control_url)
    else:
        cluster.kubectl("delete", "mutatingwebhookconfiguration", WEBHOOK_CONFIGURATION, "--ignore-not-found")
    # The API server picks configurations up from an informer: wait until it acts on the change.
    wait_until(f"the API server to call {side}", lambda: creator.mutated_by() == side)


def start_control(cluster: LocalCluster, creator: Creator) -> str:
    """Build and start bench/controlwebhook; it answers with the patch ours gives the bench's pods."""
    build = Path(tempfile.mkdtemp(prefix="ecopulse-control-"))
    subprocess.run(
        ["go", "build", "-o", str(build / "controlwebhook"), "."],
        cwd=HERE / "controlwebhook",
        check=True,
        env={**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"},
    )
    patch = creator.our_patch(cluster)
    for operation in patch:
        if operation["path"] == "/metadata/annotations":
            operation["value"][DECISION] += CONTROL_MARK
    (build / "patch.json").write_text(json.dumps(patch, separators=(",", ":")))
    port = free_port()
    cluster._spawn(
        "control-webhook",
        [
            str(build / "controlwebhook"),
            "-listen",
            f"127.0.0.1:{port}",
            "-cert",
            str(cluster.webhook_tls / "tls.crt"),
            "-key",
            str(cluster.webhook_tls / "tls.key"),
            "-patch",
            str(build / "patch.json"),
        ],
    )
    return f"https://127.0.0.1:{port}/mutate"


def profile_apiserver(cluster: LocalCluster, seconds: int, out: Path) -> None:
    """The kube-apiserver's CPU profile (its --profiling endpoint) into ``out``."""
    context = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    context.load_cert_chain(str(cluster.pki / "admin.crt"), str(cluster.pki / "admin.key"))
    connection = http.client.HTTPSConnection(
        "127.0.0.1", cluster.ports["apiserver"], context=context, timeout=seconds + 30
    )
    connection.request("GET", f"/debug/pprof/profile?seconds={seconds}")
    out.write_bytes(connection.getresponse().read())


def cpu_seconds(cluster: LocalCluster) -> dict[str, float]:
    """CPU time (user + system, all threads) each component has used so far, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for process in cluster.processes:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[process.name] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def run(args: argparse.Namespace) -> dict[str, Any]:
    sides = ["webhook", "none", *(["control"] if args.control else [])]
    with control_plane(root=Path(args.root)) as cluster:
        with contextlib.suppress(Exception):  # already there when attached to a running cluster
            cluster.kubectl("create", "namespace", NAMESPACE)
        creator = Creator(cluster, args.clients)
        control_url = start_control(cluster, creator) if args.control else ""
        per_round = max(args.clients, args.pods // args.rounds)
        samples: dict[str, list[float]] = {side: [] for side in sides}
        # Where the time goes: each component's CPU per CREATE, during the CREATE phases only.
        cpu: dict[str, dict[str, float]] = {side: {} for side in sides}
        rounds: list[dict[str, Any]] = []
        profiled: dict[str, Path] = {}
        # A warm-up round each way first, then `rounds` rounds each way, the order rotating.
        plan = [(side, False) for side in sides]
        for index in range(args.rounds):
            turn = sides[index % len(sides) :] + sides[: index % len(sides)]
            plan += [(side, True) for side in (turn if index % 2 == 0 else reversed(turn))]
        try:
            for sequence, (side, counted) in enumerate(plan):
                set_side(cluster, creator, side, control_url)
                names = [f"bench-{sequence}-{i}" for i in range(per_round)]
                profiler: threading.Thread | None = None
                if args.profile_seconds and counted and side not in profiled:
                    profiled[side] = Path(f"{args.profile_out}.{side}.pprof")
                    profiler = threading.Thread(
                        target=profile_apiserver, args=(cluster, args.profile_seconds, profiled[side])
                    )
                    profiler.start()
                cpu_before = cpu_seconds(cluster)
                started = time.perf_counter()
                latencies = creator.create(names, rate_per_second=args.rate)
                wall = time.perf_counter() - started
                cpu_after = cpu_seconds(cluster)
                if profiler is not None:
                    profiler.join()
                if counted:
                    samples[side] += latencies
                    for name, after in cpu_after.items():
                        spent = after - cpu_before.get(name, after)
                        cpu[side][name] = cpu[side].get(name, 0.0) + spent
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
        finally:
            set_side(cluster, creator, "webhook", control_url)  # leave it as it was started
            if args.control:
                cluster.stop("control-webhook")
    results: dict[str, Any] = {side: summary_ms(values) for side, values in samples.items()}
    for side, used in cpu.items():
        results[side]["cpu_ms_per_create"] = {
            name: round(seconds * 1000 / max(1, len(samples[side])), 3)
            for name, seconds in sorted(used.items())
        }
    ratios = {
        f"{side}_p{q}_ratio": round(results[side][f"p{q}_ms"] / results["none"][f"p{q}_ms"], 3)
        for side in sides
        if side != "none"
        for q in (50, 99)
    }
    return {
        "results": {
            **results,
            **ratios,
            "clients": args.clients,
            "rate_per_second": args.rate or "closed-loop",
            "pods_per_round": per_round,
            "rounds": rounds,
        },
        "p50_ratio": ratios["webhook_p50_ratio"],
        "p99_ratio": ratios["webhook_p99_ratio"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=2000, help="pods per side, over all counted rounds")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=8, help="counted rounds per side")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="CREATEs per second, open loop (0: closed loop, as fast as answered)",
    )
    parser.add_argument(
        "--root", default=str(DEFAULT_ROOT), help="attach to the cluster running here, if any"
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="a third side: bench/controlwebhook (Go, same patch), to tell any hop's cost from ours",
    )
    parser.add_argument("--profile-seconds", type=int, default=0)
    parser.add_argument("--profile-out", default="kube-apiserver.cpu", help="<this>.<side>.pprof")
    args = parser.parse_args()
    report = run(args)
    if args.profile_seconds:
        go = shutil.which("go")
        if go is not None:
            # What the API server does more, in CPU samples, with the webhook than without.
            top = subprocess.run(
                [
                    go,
                    "tool",
                    "pprof",
                    "-top",
                    "-cum",
                    "-nodecount=60",
                    f"-diff_base={args.profile_out}.none.pprof",
                    f"{args.profile_out}.webhook.pprof",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            print(top.stdout[-6000:], file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
