"""Chaos drills on the real control plane: what breaks, and what Eco-Pulse does about it.

Each drill is bounded in time and puts the session cluster back as it found it (the webhook
running with its first certificate's CA, no rebalancer), so the other e2e modules never see it.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml
from cryptography import x509

from certs.issue import issue_serving_cert, load_ca, write_bundle
from tests.e2e.cluster import REPO, LocalCluster, free_port
from tests.e2e.test_rebalancer_e2e import EU_GREEN, set_grid, start_in_us, wait_regions

WEBHOOK_TIMEOUT_SECONDS = 2  # manifests/base/mutatingwebhookconfiguration.yaml, timeoutSeconds
PREFERRED = "ecopulse.io/preferred-region"


def wait_until(what: str, condition: Callable[[], bool], timeout_seconds: float, every: float = 0.2) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_seconds:
            raise AssertionError(f"not within {timeout_seconds}s: {what}")
        time.sleep(every)
    return time.monotonic() - started


@dataclass
class Creates:
    """Bare pods created through the API server from several clients at once."""

    cluster: LocalCluster
    namespace: str
    clients: int = 10
    latencies_seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def _connection(self) -> http.client.HTTPSConnection:
        context = ssl.create_default_context(cafile=str(self.cluster.pki / "ca.crt"))
        context.load_cert_chain(str(self.cluster.pki / "admin.crt"), str(self.cluster.pki / "admin.key"))
        return http.client.HTTPSConnection(
            "127.0.0.1", self.cluster.ports["apiserver"], context=context, timeout=30
        )

    def run(self, names: list[str], *, pause_seconds: float = 0.0) -> None:
        lock = threading.Lock()
        queue = iter(names)

        def client() -> None:
            connection = self._connection()
            while True:
                with lock:
                    name = next(queue, None)
                if name is None:
                    connection.close()
                    return
                body = json.dumps(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": name, "namespace": self.namespace, "labels": {"app": "chaos"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "c",
                                    "image": "registry.example/chaos:1",
                                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                                }
                            ],
                            "terminationGracePeriodSeconds": 0,
                        },
                    }
                )
                started = time.monotonic()
                try:
                    connection.request(
                        "POST",
                        f"/api/v1/namespaces/{self.namespace}/pods",
                        body=body,
                        headers={"Content-Type": "application/json"},
                    )
                    answer = connection.getresponse()
                    text = answer.read()
                    status = answer.status
                except (OSError, http.client.HTTPException) as error:
                    connection.close()
                    connection = self._connection()
                    status, text = 0, str(error).encode()
                with lock:
                    if status == 201:
                        self.latencies_seconds.append(time.monotonic() - started)
                    else:
                        self.failures.append(f"{name}: {status} {text[:200]!r}")
                time.sleep(pause_seconds)

        threads = [threading.Thread(target=client) for _ in range(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def namespace_pods(cluster: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
    return items


def webhook_call_buckets(cluster: LocalCluster) -> dict[str, float]:
    """The API server's own histogram of its calls to our webhook: upper bound -> count."""
    context = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    context.load_cert_chain(str(cluster.pki / "admin.crt"), str(cluster.pki / "admin.key"))
    with urllib.request.urlopen(f"{cluster.server}/metrics", context=context, timeout=10) as answer:
        text = answer.read().decode()
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("apiserver_admission_webhook_admission_duration_seconds_bucket{") and (
            'name="region-affinity.ecopulse.io"' in line
        ):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


@pytest.fixture
def namespace(cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "chaos-" + request.node.name.replace("_", "-")[5:30].strip("-").lower()
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


# --- the webhook flaps during a burst -------------------------------------------------------------

BURST_PODS = 300


def test_a_burst_survives_the_webhook_being_killed_and_restarted(
    cluster: LocalCluster, namespace: str
) -> None:
    """Every pod is created and scheduled; no call to the webhook outlasts its timeout."""
    before = webhook_call_buckets(cluster)
    creates = Creates(cluster, namespace)
    # Paced, so the burst lasts at least BURST_PODS / clients * pause (12 s) however fast the
    # machine is: long enough for several kill-and-restart rounds (about 4 s each).
    burst = threading.Thread(
        target=creates.run,
        args=([f"burst-{i}" for i in range(BURST_PODS)],),
        kwargs={"pause_seconds": 0.4},
    )
    kills = 0
    burst.start()
    try:
        while burst.is_alive():
            time.sleep(1.0)
            cluster.kill("webhook")  # a crash: no graceful shutdown, connections reset
            kills += 1
            time.sleep(1.0)  # pods created meanwhile are admitted unchanged (failurePolicy Ignore)
            cluster.start_webhook()  # waits until it is ready again
    finally:
        burst.join()
        if not any(p.name == "webhook" for p in cluster.processes):
            cluster.start_webhook()
    assert kills >= 2, "the burst ended before the webhook was killed twice: make it longer"
    assert not creates.failures, creates.failures[:5]
    assert len(creates.latencies_seconds) == BURST_PODS

    wait_until(
        "every burst pod scheduled",
        lambda: sum(1 for p in namespace_pods(cluster, namespace) if p["spec"].get("nodeName")) == BURST_PODS,
        timeout_seconds=120,
        every=1.0,
    )
    placed = [
        p for p in namespace_pods(cluster, namespace) if PREFERRED in p["metadata"].get("annotations", {})
    ]
    assert placed, "no pod was placed by the webhook while it was up"

    # The API server bounds every call to us by timeoutSeconds; its own histogram says whether
    # any call took longer than the bucket just above it.
    after = webhook_call_buckets(cluster)
    calls = after["+Inf"] - before.get("+Inf", 0.0)
    within = after["2.5"] - before.get("2.5", 0.0)
    assert calls > 0
    assert within == calls, f"{calls - within} webhook calls took longer than 2.5 s"


# --- the serving certificate is renewed on disk ---------------------------------------------------


def presented_serial(cluster: LocalCluster) -> int:
    context = ssl.create_default_context(cafile=str(cluster.webhook_tls / "ca.crt"))
    with context.wrap_socket(
        socket.create_connection(("127.0.0.1", cluster.ports["webhook"]), timeout=5),
        server_hostname="localhost",
    ) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_a_renewed_certificate_is_served_without_restart_or_failed_admission(
    cluster: LocalCluster, namespace: str
) -> None:
    webhook_pid = next(p.pid for p in cluster.processes if p.name == "webhook")
    old_serial = presented_serial(cluster)
    ca = load_ca(cluster.pki / "webhook-ca.crt", cluster.pki / "webhook-ca.key")
    renewed = issue_serving_cert(
        ca,
        service="eco-pulse-webhook",
        namespace="eco-pulse",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
    )
    creates = Creates(cluster, namespace, clients=4)
    traffic = threading.Thread(
        target=creates.run, args=([f"rotate-{i}" for i in range(80)],), kwargs={"pause_seconds": 0.1}
    )
    traffic.start()
    try:
        time.sleep(1.0)
        write_bundle(cluster.webhook_tls, ca=ca, leaf=renewed)  # atomic renames, as cert-manager's
        wait_until(
            "new handshakes get the renewed certificate",
            lambda: presented_serial(cluster) == renewed.cert.serial_number,
            timeout_seconds=10,
        )
    finally:
        traffic.join()
    assert renewed.cert.serial_number != old_serial
    assert next(p.pid for p in cluster.processes if p.name == "webhook") == webhook_pid
    assert not creates.failures, creates.failures[:5]
    unplaced = [
        p["metadata"]["name"]
        for p in namespace_pods(cluster, namespace)
        if PREFERRED not in p["metadata"].get("annotations", {})
    ]
    assert not unplaced, f"admitted unchanged during the renewal (a failed call): {unplaced}"


# --- the leading rebalancer is SIGKILLed ----------------------------------------------------------


def leader_gauge(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as answer:
            text = answer.read().decode()
    except OSError:
        return None  # down (killed) or not serving yet
    for line in text.splitlines():
        if line.startswith("ecopulse_rebalancer_leader"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_killed_leader_is_replaced_after_the_lease_and_never_two_act(cluster: LocalCluster) -> None:
    ports = {"rebalancer-x": free_port(), "rebalancer-y": free_port()}
    samples: list[tuple[float, dict[str, float | None]]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.monotonic(), {name: leader_gauge(port) for name, port in ports.items()}))
            stop.wait(0.1)

    for name, port in ports.items():
        cluster.start_rebalancer(name, metrics_port=port)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        wait_until(
            "one rebalancer leads",
            lambda: bool(samples) and any(v == 1.0 for v in samples[-1][1].values()),
            timeout_seconds=60,
        )
        leader = next(name for name, v in samples[-1][1].items() if v == 1.0)
        follower = next(name for name in ports if name != leader)
        # Mid-cycle: the leader cycles every 5 s, evicting nothing here, so any moment is as good.
        time.sleep(2.5)
        cluster.kill(leader)
        killed_at = time.monotonic()
        wait_until(
            "the follower takes over",
            lambda: samples[-1][1][follower] == 1.0,
            timeout_seconds=40,
        )
        took_over_at = time.monotonic()
    finally:
        stop.set()
        sampler.join(5)
        for name in ports:
            cluster.stop(name)
    both = [t for t, values in samples if all(v == 1.0 for v in values.values())]
    assert not both, f"two replicas led at once in {len(both)} samples"
    # Not before the 15 s lease has run out (less one retry period), since the leader never released it.
    assert took_over_at - killed_at >= 15 - 2 - 0.5, took_over_at - killed_at


# --- the carbon provider fails: 500s, then a hang, then garbage -----------------------------------

MAX_STALE_SECONDS = 15
ZONES = {"US-MIDA-PJM": 450, "IE": 300, "SE-SE3": 30}
EM_TOKEN = "drill-token"


class FakeElectricityMaps:
    """Speaks GET /v3/carbon-intensity/latest?zone=..., in one of four moods, on loopback HTTP."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.released = threading.Event()
        self.last_good_at = 0.0  # monotonic time of the last valid answer
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                mode = fake.mode
                if mode == "hang":  # accept, then say nothing until the drill moves on
                    fake.released.wait(30)
                    mode = fake.mode
                url = urllib.parse.urlparse(self.path)
                zone = urllib.parse.parse_qs(url.query).get("zone", [""])[0]
                if mode == "ok" and self.headers.get("auth-token") == EM_TOKEN and zone in ZONES:
                    body = json.dumps(
                        {
                            "zone": zone,
                            "carbonIntensity": ZONES[zone],
                            "datetime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                        }
                    ).encode()
                    status = 200
                    fake.last_good_at = time.monotonic()
                elif mode == "garbage":
                    body, status = b"\x00<html>\xff{not json", 200
                else:
                    body, status = b'{"error": "internal"}', 500
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v3"

    def __enter__(self) -> FakeElectricityMaps:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


def metric_sum(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + "{", name + " "))
    )


def shipped_alert(name: str) -> str:
    groups = yaml.safe_load((REPO / "dashboards" / "alerts.yaml").read_text())["groups"]
    expr: str = next(rule["expr"] for group in groups for rule in group["rules"] if rule.get("alert") == name)
    return expr


def has_series(cluster: LocalCluster, query: str) -> bool:
    return bool(cluster.prometheus_query(query))


def placed_one(cluster: LocalCluster, namespace: str, name: str) -> bool:
    """Create one pod (through the drill's webhook): was it placed, or admitted unchanged?"""
    creates = Creates(cluster, namespace, clients=1)
    creates.run([name])
    assert not creates.failures, creates.failures
    annotations = cluster.get(f"/api/v1/namespaces/{namespace}/pods/{name}")["metadata"].get(
        "annotations", {}
    )
    return PREFERRED in annotations


def test_provider_failures_serve_the_last_signals_then_admit_unchanged_and_alert(
    cluster: LocalCluster, namespace: str
) -> None:
    name, port, metrics_port = "webhook-em", free_port(), free_port()
    config = cluster.root / "config-electricitymaps.yaml"
    with FakeElectricityMaps() as fake:
        text = cluster.config_file.read_text()
        carbon_start, carbon_end = text.index("carbon:"), text.index("economics:")
        config.write_text(
            text[:carbon_start]
            + f"carbon:\n  provider: electricitymaps\n  electricitymaps: {{baseUrl: '{fake.url}'}}\n"
            + f"  refreshSeconds: 1\n  maxStaleSeconds: {MAX_STALE_SECONDS}\n"
            + text[carbon_end:]
        )
        cluster.start_webhook(
            name,
            port=port,
            metrics_port=metrics_port,
            config_file=config,
            env={"ELECTRICITYMAPS_API_TOKEN": EM_TOKEN, "ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS": "true"},
        )
        cluster.register_webhook(f"https://127.0.0.1:{port}/mutate")
        try:
            wait_until(
                "the API server calls the drill's webhook",
                lambda: placed_one(cluster, namespace, f"ok-{time.monotonic_ns()}"),
                30,
                every=0.5,
            )

            fake.mode = "500"
            errors = metric_sum(metrics_port, "ecopulse_signal_fetch_errors_total")
            wait_until(
                "fetch errors counted",
                lambda: metric_sum(metrics_port, "ecopulse_signal_fetch_errors_total") > errors,
                10,
            )
            assert placed_one(cluster, namespace, "during-500s"), "the last good signals were not served"

            fake.mode = "hang"
            time.sleep(2)
            assert placed_one(cluster, namespace, "during-hang"), "the last good signals were not served"

            fake.mode = "garbage"
            fake.released.set()
            errors = metric_sum(metrics_port, "ecopulse_signal_fetch_errors_total")
            wait_until(
                "garbage counted as an error",
                lambda: metric_sum(metrics_port, "ecopulse_signal_fetch_errors_total") > errors,
                15,
            )
            assert time.monotonic() - fake.last_good_at < MAX_STALE_SECONDS - 1, (
                "the drill ran too slowly to see this phase"
            )
            assert placed_one(cluster, namespace, "during-garbage"), "the last good signals were not served"

            stale_after = fake.last_good_at + MAX_STALE_SECONDS
            wait_until(
                "the signals go stale", lambda: time.monotonic() > stale_after + 1, MAX_STALE_SECONDS + 5
            )
            fail_opens = metric_sum(metrics_port, "ecopulse_admission_fail_open_total")
            creates = Creates(cluster, namespace, clients=5)
            creates.run([f"stale-{i}" for i in range(40)])
            assert not creates.failures, creates.failures[:5]
            stale_pods = [
                p for p in namespace_pods(cluster, namespace) if p["metadata"]["name"].startswith("stale-")
            ]
            assert len(stale_pods) == 40
            assert not [p for p in stale_pods if PREFERRED in p["metadata"].get("annotations", {})], (
                "stale signals must admit pods unchanged"
            )
            assert metric_sum(metrics_port, "ecopulse_admission_fail_open_total") >= fail_opens + 40

            # What the operator sees: the shipped rules, evaluated by the real Prometheus on the
            # scraped series (pending: their `for` is longer than a drill).
            stale_expr = shipped_alert("EcoPulseSignalsStale")
            wait_until(
                "the stale-signal rule's expression names every electricitymaps region",
                lambda: (
                    {
                        s["metric"].get("region")
                        for s in cluster.prometheus_query(stale_expr)
                        if s["metric"].get("provider") == "electricitymaps"
                    }
                    == {"us-east-1", "eu-west-1", "eu-north-1"}
                ),
                30,
                every=1.0,
            )
            for alert in ("EcoPulseSignalsStale", "EcoPulseFailOpenRising"):
                query = f'ALERTS{{alertname="{alert}"}}'
                wait_until(
                    f"{alert} pending in Prometheus", partial(has_series, cluster, query), 30, every=1.0
                )
        finally:
            cluster.register_webhook()
            cluster.stop(name)


# --- the API server restarts in the middle of a rebalancing ---------------------------------------

REPLICAS = 3  # as the rebalancer e2e tests: the default spreading keeps 3 in one region


def cycle_lines(cluster: LocalCluster, name: str) -> list[dict[str, Any]]:
    lines = []
    for raw in (cluster.logs / f"{name}.log").read_text(errors="replace").splitlines():
        if raw.startswith("{") and '"rebalancing cycle"' in raw:
            lines.append(json.loads(raw))
    return lines


def relists(port: int) -> float:
    return metric_sum(port, "ecopulse_watch_relists_total")


def test_an_api_server_restart_mid_rebalancing_relists_and_keeps_every_limit(
    cluster: LocalCluster, namespace: str
) -> None:
    original = cluster.config_file.read_text()
    port = free_port()
    try:
        start_in_us(cluster, namespace, "move", replicas=REPLICAS)
        cluster.start_rebalancer("rebalancer-r", metrics_port=port)
        wait_until("the rebalancer cycles", lambda: bool(cycle_lines(cluster, "rebalancer-r")), 60, every=0.5)
        time.sleep(8)  # past minPodAgeSeconds (10 s since the pods started)
        set_grid(cluster, EU_GREEN)
        wait_until(
            "the first eviction of the move",
            lambda: any(c["results"].get("evicted") for c in cycle_lines(cluster, "rebalancer-r")),
            60,
            every=0.2,
        )
        relisted_before = relists(port)
        cluster.stop("kube-apiserver")  # mid-move: the other replicas are still to go, one per cycle
        time.sleep(6)  # at least one cycle runs without an API server
        cluster._start_apiserver()
        cluster.wait_for("kube-apiserver", cluster._apiserver_ready, timeout_seconds=90)
        restarted_at = time.time()
        wait_until("the rebalancer's watches re-list", lambda: relists(port) > relisted_before, 60, every=0.5)
        # The move completes from the re-listed state: every replica ends in the green region.
        wait_regions(cluster, namespace, "move", ["eu-north-1"] * REPLICAS, 120)
    finally:
        cluster.stop("rebalancer-r")
        cluster.config_file.write_text(original)
    cycles = cycle_lines(cluster, "rebalancer-r")
    for cycle in cycles:
        results = cycle["results"]
        # The local limits: 10 per cycle, 5 per namespace, 2 per node, one replica per workload.
        assert results.get("evicted", 0) <= 1, cycle
    after = [c for c in cycles if datetime.fromisoformat(c["ts"]).timestamp() > restarted_at]
    assert after, "no cycle after the API server came back"
    # Planned from fresh state: no attempt on a pod that was already gone before the restart.
    assert not any(c["results"].get("gone") for c in after), after
    assert sum(c["results"].get("evicted", 0) for c in cycles) >= REPLICAS
