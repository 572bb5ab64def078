"""Benchmark /mutate against a no-op endpoint in the same server, over TLS, in one run.

The server (the real webhook: uvicorn, TLS, refresher, mock grid) runs in a child process pinned
to one core; the load generator runs here, pinned to the other, speaking HTTP/1.1 over TLS on
keep-alive connections. The server logs as in production: one JSON line per decision at INFO,
to a stdout that is a pipe, drained here as a container runtime would. Two phases per endpoint:

- latency: one connection per endpoint, requests back to back (an unloaded server), p50/p99;
  the endpoints take turns in rounds, so the machine's noisy moments fall on all of them. With
  --interval-ms, one request every so often instead (open loop); on a VM whose idle cores sleep
  that mostly measures their wake-up, so back to back is the default;
- throughput: several connections for a fixed time, reviews per second (and p50/p99 under load).

/mutate is measured twice: with the review of a ReplicaSet's pod sent again and again (replicas
of one template send byte-identical objects, so after the first the decision is remembered),
and with a different pod in every review (a new generateName and label each time: every
decision is worked out, only the placement for the same requests is remembered).

With --policies N (default 1000), N EcoPulsePolicies are in the webhook's cache, as a watch would
have them: spread over 100 namespaces, the bench pod's namespace holding its share (ten, one of
which selects the pod), plus a few ClusterEcoPulsePolicies; --policies-namespaces 1 puts them
all in the pod's namespace (the worst case: every review scans them all).

Usage: python bench/webhook.py [--seconds 8] [--connections 16] [--latency-requests 4000] [--interval-ms 0]
                               [--policies 1000] [--policies-namespaces 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

# Run as a script, this file's folder would come first on sys.path and its name would hide the
# `webhook` package: put the repository root there instead.
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from prometheus_client import REGISTRY
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.logs import configure_logging
from core.policy import Policy, PolicySet, build_policy_set, parse_policy
from tests.conftest import MOCK_CONFIG, launch_webhook

REVIEW = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "",
        "namespace": "shop",
        "operation": "CREATE",
        "userInfo": {
            "username": "system:serviceaccount:kube-system:replicaset-controller",
            "groups": [
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated",
            ],
        },
        "object": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": "web-7d4b9c-",
                "namespace": "shop",
                "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": "web-7d4b9c",
                        "uid": "1",
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                        "terminationMessagePath": "/dev/termination-log",
                        "imagePullPolicy": "IfNotPresent",
                    }
                ],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "default",
                "schedulerName": "default-scheduler",
                "tolerations": [
                    {
                        "key": "node.kubernetes.io/not-ready",
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 300,
                    }
                ],
            },
        },
        "oldObject": None,
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    },
}


def distinct_review(index: int) -> dict[str, object]:
    """The same review with another pod: its own generateName and label, as a new workload's."""
    review = json.loads(json.dumps(REVIEW))
    metadata = review["request"]["object"]["metadata"]
    metadata["generateName"] = f"web-{index:06d}-"
    metadata["labels"]["pod-template-hash"] = f"{index:06d}"
    return review  # type: ignore[no-any-return]


async def noop(request: Request) -> Response:
    await request.body()
    return Response(
        b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"x",'
        b'"allowed":true}}',
        media_type="application/json",
    )


def bench_policies(count: int, namespaces: int) -> list[Policy]:
    """``count`` policies, the first namespace being the bench pod's ("shop"); one selects its pod."""
    policies = []
    for index in range(count):
        namespace = "shop" if index % namespaces == 0 else f"team-{index % namespaces:03d}"
        app = "web" if index == 0 else f"svc-{index:04d}"
        spec: dict[str, object] = {
            "selector": {"matchLabels": {"app": app}},
            "allowedRegions": ["eu-west-1", "eu-north-1"],
            "maxLatencyMs": 200,
        }
        policies.append(
            parse_policy(
                {
                    "kind": "EcoPulsePolicy",
                    "metadata": {"name": f"p-{index:04d}", "namespace": namespace, "generation": 1},
                    "spec": spec,
                }
            )
        )
    for index in range(min(5, count)):
        policies.append(
            parse_policy(
                {
                    "kind": "ClusterEcoPulsePolicy",
                    "metadata": {"name": f"cluster-{index}"},
                    "spec": {"selector": {"matchLabels": {"tier": f"t{index}"}}, "egressGbPerHour": 0.1},
                }
            )
        )
    return policies


def serve(directory: str, log_pipe: str, pipe: Connection, policy_count: int, namespaces: int) -> None:
    os.sched_setaffinity(0, {0})
    os.dup2(os.open(log_pipe, os.O_WRONLY), sys.stdout.fileno())
    configure_logging("INFO")
    policies = bench_policies(policy_count, namespaces)
    built: dict[frozenset[str], PolicySet] = {}

    def policy_set(known_regions: frozenset[str]) -> PolicySet:
        # What core.kube.caches.PolicyCache does: built once, returned while nothing changes.
        found = built.get(known_regions)
        if found is None:
            found = built[known_regions] = build_policy_set(policies, known_regions=known_regions)
        return found

    webhook = launch_webhook(
        Path(directory),
        MOCK_CONFIG,
        extra_routes=[Route("/noop", noop, methods=["POST"])],
        policies=policy_set,
    )
    webhook.wait_ready()
    pipe.send((webhook.running.port, str(webhook.ca_file)))
    pipe.recv()  # until told to stop
    count = REGISTRY.get_sample_value("ecopulse_admission_duration_seconds_count") or 0.0
    total = REGISTRY.get_sample_value("ecopulse_admission_duration_seconds_sum") or 0.0
    pipe.send(total / count if count else 0.0)
    webhook.running.stop()


def drain(log_pipe: str, lines: list[int]) -> None:
    """Read the server's stdout as the container runtime would, counting the lines."""
    with Path(log_pipe).open("rb") as stream:
        while chunk := stream.read1(1 << 16):
            lines[0] += chunk.count(b"\n")


def request_bytes(path: str, body: bytes) -> bytes:
    return (
        f"POST {path}?timeout=2s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length)
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
    return body


async def connect(port: int, context: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def latency_rounds(
    port: int,
    context: ssl.SSLContext,
    phases: dict[str, list[bytes]],
    *,
    count: int,
    rounds: int,
    interval_seconds: float = 0.0,
) -> dict[str, list[float]]:
    """``count`` requests per endpoint, one connection each, in ``rounds`` that take turns.

    Taking turns, a noisy moment of a shared machine falls on every endpoint alike, and the
    ratio compares like with like. A request every ``interval_seconds`` (open loop), or back to
    back if 0.
    """
    # Each connection opened just before its first request, as HTTP clients do: the server drops
    # a connection that sends no request within its header timeout (5 s).
    connections: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
    samples: dict[str, list[float]] = {name: [] for name in phases}
    sent = dict.fromkeys(phases, 0)

    async def run(name: str, requests: int, keep: bool) -> None:
        if name not in connections:
            connections[name] = await connect(port, context)
        reader, writer = connections[name]
        payloads = phases[name]
        send_at = time.perf_counter()
        for _ in range(requests):
            payload = payloads[sent[name] % len(payloads)]
            sent[name] += 1
            send_at += interval_seconds
            if (delay := send_at - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            started = time.perf_counter()
            writer.write(payload)
            await read_response(reader)
            if keep:
                samples[name].append(time.perf_counter() - started)

    for name in phases:
        await run(name, 300, keep=False)  # warm up
    for _ in range(rounds):
        for name in phases:
            await run(name, count // rounds, keep=True)
    for _, writer in connections.values():
        writer.close()
    return samples


async def throughput_phase(
    port: int, context: ssl.SSLContext, payloads: list[bytes], *, connections: int, seconds: float
) -> tuple[int, list[float]]:
    stop_at = time.perf_counter() + seconds
    samples: list[float] = []

    async def worker(offset: int) -> None:
        reader, writer = await connect(port, context)
        index = offset
        while time.perf_counter() < stop_at:
            payload = payloads[index % len(payloads)]
            index += connections
            started = time.perf_counter()
            writer.write(payload)
            await read_response(reader)
            samples.append(time.perf_counter() - started)
        writer.close()

    await asyncio.gather(*(worker(offset) for offset in range(connections)))
    return len(samples), samples


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--latency-requests", type=int, default=4000)
    parser.add_argument("--interval-ms", type=float, default=0.0, help="between latency-phase requests")
    parser.add_argument("--rounds", type=int, default=20, help="latency-phase turns per endpoint")
    parser.add_argument("--policies", type=int, default=1000, help="EcoPulsePolicies in the cache")
    parser.add_argument("--policies-namespaces", type=int, default=100, help="namespaces they spread over")
    args = parser.parse_args()
    if os.cpu_count() is None or (os.cpu_count() or 1) < 2:
        print("needs two cores: one for the server, one for the load", file=sys.stderr)
        return 2

    ours, theirs = multiprocessing.Pipe()
    with tempfile.TemporaryDirectory() as directory:
        log_pipe = str(Path(directory) / "stdout")
        os.mkfifo(log_pipe)
        log_lines = [0]
        drainer = threading.Thread(target=drain, args=(log_pipe, log_lines), daemon=True)
        drainer.start()
        child = multiprocessing.get_context("spawn").Process(
            target=serve,
            args=(directory, log_pipe, theirs, args.policies, max(1, args.policies_namespaces)),
            daemon=True,
        )
        child.start()
        port, ca_file = ours.recv()
        os.sched_setaffinity(0, {1})
        context = ssl.create_default_context(cafile=ca_file)
        body = json.dumps(REVIEW).encode()
        distinct = [request_bytes("/mutate", json.dumps(distinct_review(i)).encode()) for i in range(20_000)]
        phases = {
            "noop": [request_bytes("/noop", body)],
            "mutate": [request_bytes("/mutate", body)],
            "distinct": distinct,
        }
        latencies = asyncio.run(
            latency_rounds(
                port,
                context,
                phases,
                count=args.latency_requests,
                rounds=args.rounds,
                interval_seconds=args.interval_ms / 1000,
            )
        )
        results: dict[str, dict[str, float]] = {}
        for name, payloads in phases.items():
            latency = latencies[name]
            count, loaded = asyncio.run(
                throughput_phase(port, context, payloads, connections=args.connections, seconds=args.seconds)
            )
            results[name] = {
                "p50_ms": statistics.median(latency) * 1000,
                "p99_ms": percentile(latency, 0.99) * 1000,
                "reviews_per_second": count / args.seconds,
                "loaded_p50_ms": statistics.median(loaded) * 1000,
                "loaded_p99_ms": percentile(loaded, 0.99) * 1000,
            }
        ours.send("stop")
        server_mean_seconds = ours.recv()
        child.join(timeout=15)
        drainer.join(timeout=15)

    print(
        f"{'endpoint':<8} {'p50 ms':>8} {'p99 ms':>8} {'reviews/s':>10} {'loaded p50':>11} {'loaded p99':>11}"
    )
    for name, row in results.items():
        print(
            f"{name:<8} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} {row['reviews_per_second']:>10.0f} "
            f"{row['loaded_p50_ms']:>11.3f} {row['loaded_p99_ms']:>11.3f}"
        )
    ratio = results["mutate"]["p99_ms"] / results["noop"]["p99_ms"]
    distinct_ratio = results["distinct"]["p99_ms"] / results["noop"]["p99_ms"]
    rate = results["mutate"]["reviews_per_second"]
    print(f"\npolicies in the cache: {args.policies} over {args.policies_namespaces} namespaces")
    print(f"server log lines written to its stdout pipe: {log_lines[0]}")
    print(f"mutate handler time inside the server (mean): {server_mean_seconds * 1e6:.0f} us")
    pacing = f"one every {args.interval_ms:g} ms" if args.interval_ms > 0 else "back to back"
    print(f"p99 mutate / no-op (unloaded, {pacing}): {ratio:.2f}x (target <= 1.5x)")
    print(f"p99 mutate with a different pod each time / no-op (unloaded): {distinct_ratio:.2f}x")
    print(f"mutate throughput on one server core: {rate:.0f} reviews/s (target >= 1500)")
    print(json.dumps({"results": results, "p99_ratio": ratio, "distinct_p99_ratio": distinct_ratio}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
