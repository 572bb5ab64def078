"""Soak: the real webhook process under steady mixed traffic for ten minutes; memory and log lines.

The server is ``python -m webhook`` as deployed (TLS, mock grid, one JSON decision line per review
at INFO on a stdout pipe that is drained here, as a container runtime would). Traffic arrives at
a steady rate (open loop) on several keep-alive connections: mostly /mutate (replicas of a few
templates, fresh pods, opted-out pods, system namespaces, malformed bodies), plus /filter and
/prioritize in NodeNames mode. Reported:

- RSS after the warm-up and at the end (target: the end within 10 % of after warm-up);
- admission decision lines read from the pipe against reviews answered, with the writer's own
  "log lines dropped" notices counted (target: nothing missing that is not counted);
- latency p50/p99 and any non-2xx/4xx answer.

Usage: python bench/soak.py [--seconds 600] [--rate 100] [--warm-up-seconds 60]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

import httpx

from tests.conftest import MOCK_CONFIG, issue_tls
from tests.e2e.cluster import free_port

CLIENTS = 4
NODE_NAMES = [f"{region}-{i}" for region in ("us-east-1", "eu-west-1", "eu-north-1") for i in range(30)]


def review(uid: str, pod: dict[str, object], namespace: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": namespace,
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": pod,
                "dryRun": False,
            },
        }
    ).encode()


def pod(
    *, name: str, template: str, cpu: str, annotations: dict[str, str] | None = None
) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{template}-",
            "name": name,
            "labels": {"app": template},
            "annotations": annotations or {},
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": f"registry.example/{template}:1",
                    "resources": {"requests": {"cpu": cpu, "memory": "256Mi"}},
                }
            ]
        },
    }


def traffic(sequence: int, chooser: random.Random) -> tuple[str, bytes]:
    """The next request: (path, body), a mix that touches every branch an operator's cluster does."""
    roll = chooser.random()
    uid = f"soak-{sequence}"
    if roll < 0.40:  # replicas of a few templates: byte-identical objects, remembered decisions
        template = f"web{sequence % 5}"
        return "/mutate", review(uid, pod(name="", template=template, cpu="250m"), "shop")
    if roll < 0.65:  # a different pod every time: every decision worked out
        return "/mutate", review(
            uid, pod(name=f"job-{sequence}", template=f"job{sequence}", cpu=f"{1 + sequence % 900}m"), "batch"
        )
    if roll < 0.70:
        return "/mutate", review(
            uid,
            pod(name="", template="quiet", cpu="100m", annotations={"ecopulse.io/opt-out": "true"}),
            "shop",
        )
    if roll < 0.73:
        return "/mutate", review(uid, pod(name="", template="dns", cpu="100m"), "kube-system")
    if roll < 0.75:
        return (
            "/mutate",
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}',
        )  # malformed: 400
    names = chooser.sample(NODE_NAMES, 20)
    args = json.dumps(
        {"Pod": pod(name=f"p{sequence}", template="web", cpu="250m"), "NodeNames": names}
    ).encode()
    return ("/filter" if roll < 0.875 else "/prioritize"), args


class Drain:
    """Reads the webhook's stdout as a container runtime would, counting decision lines and drops."""

    def __init__(self, stream: object) -> None:
        self.decisions = 0
        self.dropped = 0
        self.other = 0
        self._stream = stream
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for raw in self._stream:  # type: ignore[attr-defined]
            try:
                line = json.loads(raw)
            except ValueError:
                self.other += 1
                continue
            message = line.get("msg")
            if message == "admission decision":
                self.decisions += 1
            elif message == "log lines dropped: writer too slow":
                self.dropped += int(line.get("dropped", 0))
            else:
                self.other += 1


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=600, help="length of the run after the warm-up")
    parser.add_argument("--rate", type=float, default=100, help="requests per second, all endpoints")
    parser.add_argument("--warm-up-seconds", type=float, default=60)
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="ecopulse-soak-"))
    ca_file = issue_tls(directory / "tls")
    (directory / "config.yaml").write_text(MOCK_CONFIG)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "webhook"],
        env={
            **os.environ,
            "ECOPULSE_CONFIG": str(directory / "config.yaml"),
            "ECOPULSE_TLS_DIR": str(directory / "tls"),
            "ECOPULSE_BIND_ADDRESS": "127.0.0.1",
            "ECOPULSE_WEBHOOK_PORT": str(port),
            "ECOPULSE_METRICS_BIND_ADDRESS": "127.0.0.1",
            "ECOPULSE_METRICS_PORT": str(free_port()),
            "ECOPULSE_WATCH_CLUSTER": "false",
            "PYTHONPATH": str(HERE.parent),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=directory,
    )
    drain = Drain(server.stdout)
    context = ssl.create_default_context(cafile=str(ca_file))
    clients = [
        httpx.Client(base_url=f"https://localhost:{port}", verify=context, timeout=10) for _ in range(CLIENTS)
    ]
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if clients[0].get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the webhook did not become ready")
            time.sleep(0.1)

        lock = threading.Lock()
        counter = itertools.count()
        statuses: dict[int, int] = {}
        answered_reviews = 0
        latencies: list[float] = []
        start = time.perf_counter() + 0.1
        warm_up_ends = start + args.warm_up_seconds
        ends = warm_up_ends + args.seconds
        samples: list[tuple[float, int]] = []
        rss_after_warm_up = 0

        def client(index: int) -> None:
            nonlocal answered_reviews
            chooser = random.Random(index)
            while True:
                sequence = next(counter)
                due = start + sequence / args.rate
                if due >= ends:
                    return
                path, body = traffic(sequence, chooser)
                time.sleep(max(0.0, due - time.perf_counter()))
                answer = clients[index].post(path, content=body, headers={"Content-Type": "application/json"})
                latency = time.perf_counter() - due
                with lock:
                    statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                    if path == "/mutate" and answer.status_code == 200:
                        answered_reviews += 1
                    if due >= warm_up_ends:
                        latencies.append(latency)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            now = time.perf_counter()
            if not rss_after_warm_up and now >= warm_up_ends:
                rss_after_warm_up = rss_bytes(server.pid)
            samples.append((now - start, rss_bytes(server.pid)))
            if len(samples) % 30 == 0:
                print(
                    json.dumps({"t_s": round(now - start), "rss_mib": round(samples[-1][1] / 2**20, 1)}),
                    file=sys.stderr,
                )
            time.sleep(1)
        rss_end = rss_bytes(server.pid)
        time.sleep(2)  # the writer flushes every interval: let the last lines out
    finally:
        for http in clients:
            http.close()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        drain.thread.join(5)
    missing = answered_reviews - drain.decisions - drain.dropped
    ordered = sorted(latencies)
    results = {
        "seconds": args.seconds,
        "warm_up_seconds": args.warm_up_seconds,
        "rate_per_second": args.rate,
        "statuses": statuses,
        "server_errors": sum(n for code, n in statuses.items() if code >= 500),
        "rss_after_warm_up_mib": round(rss_after_warm_up / 2**20, 1),
        "rss_end_mib": round(rss_end / 2**20, 1),
        "rss_peak_mib": round(max(r for _, r in samples) / 2**20, 1),
        "reviews_answered": answered_reviews,
        "decision_lines": drain.decisions,
        "decision_lines_dropped_and_counted": drain.dropped,
        "decision_lines_missing": missing,
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 2) if ordered else None,
        "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 2) if ordered else None,
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else None,
    }
    print(
        json.dumps(
            {
                "results": results,
                "rss_end_over_warm_up": round(rss_end / rss_after_warm_up, 3) if rss_after_warm_up else None,
                "decision_lines_missing": missing,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
