"""A real, local Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (fake nodes in three regions), plus our webhook as a local process.

Used by the e2e session fixture and by `make cluster-up` / `make cluster-down`
(``python -m tests.e2e.cluster up|down|status``). Binaries come from hack/build-k8s.sh.
Everything it starts is recorded in ``<root>/state.json`` so another process can stop it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization

from certs.issue import (
    ca_bundle_b64,
    generate_rsa_key,
    issue_ca,
    issue_leaf_cert,
    issue_serving_cert,
    write_bundle,
)
from tests.e2e import demo_tables
from tests.factories import ONE_PRICE, THREE_REGIONS

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO / ".cluster"
REGION_LABEL = "topology.kubernetes.io/region"

# Three regions, two fake nodes each: enough for spreading, small enough to fill in tests.
REGIONS: Mapping[str, str] = {"us-east-1": "US-MIDA-PJM", "eu-west-1": "IE", "eu-north-1": "SE-SE3"}
NODES_PER_REGION = 2
NODE_CPU = "8"
NODE_MEMORY = "32Gi"
SCRAPE_INTERVAL_SECONDS = 2

DEMO_CONFIG = (
    """\
# The EcoPulseConfiguration the local components use. Edit the mock grid: it reloads within seconds
# and the next pods follow it.
apiVersion: ecopulse.io/v1alpha1
kind: EcoPulseConfiguration
"""
    + THREE_REGIONS
    + """\
carbon:
  provider: mock
  mock: {us-east-1: 450, eu-west-1: 300, eu-north-1: 30}
  refreshSeconds: 5
  maxStaleSeconds: 600
economics:
  horizonHours: 6
  # The demo's pods are small (half a core): at the capped carbon price a move out of a coal
  # grid pays for its restart, so you can watch the rebalancer follow the grid.
  carbonPriceUsdPerTonne: 1000
  migrationCostUsd: 0.0001
  restartDowntimeSeconds: 5
# One price everywhere: the local demo isolates the effect of carbon.
"""
    + ONE_PRICE
    + """\
placement: {mode: preferred}
rebalancer:
  intervalSeconds: 5
  dryRun: false
  minPodAgeSeconds: 10
  minNetBenefitUsd: 0.0001
  # The plain rule: the demo's grid is a mock you edit, to be followed within seconds, not a grid
  # with a week of history (the robust rule would wait a day for one, docs/robust-moves.md).
  holdHours: 0
  gapErrorMargin: 0
  maxEvictionsPerCycle: 10
  maxEvictionsPerNamespace: 5
  maxEvictionsPerNode: 2
"""
)


class ClusterError(RuntimeError):
    pass


def bin_dir() -> Path:
    """Build (or find cached) binaries; raises ClusterError naming what failed."""
    try:
        done = subprocess.run(
            [str(REPO / "hack" / "build-k8s.sh")], check=True, capture_output=True, text=True, timeout=3600
        )
    except subprocess.CalledProcessError as error:
        raise ClusterError(f"hack/build-k8s.sh failed:\n{error.stderr[-3000:]}") from None
    return Path(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    name: str
    pid: int
    log: Path


@dataclass
class LocalCluster:
    root: Path = DEFAULT_ROOT
    bins: Path | None = None
    ports: dict[str, int] = field(default_factory=dict)
    metrics_targets: dict[str, int] = field(default_factory=dict)  # component -> metrics port
    processes: list[Process] = field(default_factory=list)
    nodes_per_region: int = NODES_PER_REGION  # benches ask for hundreds of kwok nodes
    # A fleet (tests/e2e/fleet.py) runs several of these: one region each, one shared etcd under
    # distinct prefixes, a name in every error, kubeconfigs where the fleet's users look for them.
    label: str = ""
    regions: Mapping[str, str] = field(default_factory=lambda: dict(REGIONS))
    etcd_servers: str | None = None  # None: start our own etcd
    etcd_prefix: str = "/registry"
    kubeconfig_path: Path | None = None
    apiserver_args: Sequence[str] = ()

    # --- paths -----------------------------------------------------------------------------
    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.kubeconfig_path or self.root / "kubeconfig"

    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    @property
    def webhook_tls(self) -> Path:
        return self.root / "webhook-tls"

    @property
    def prometheus_dir(self) -> Path:
        return self.root / "prometheus"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def webhook_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['webhook']}"

    def binary(self, name: str) -> str:
        assert self.bins is not None
        return str(self.bins / name)

    # --- lifecycle -------------------------------------------------------------------------
    def up(
        self,
        *,
        webhook: bool = True,
        rebalancer: bool = False,
        prometheus: bool = True,
        config_text: str = DEMO_CONFIG,
    ) -> None:
        if self.state_file.exists():
            raise ClusterError(
                f"a cluster is already running here ({self.state_file}); run `make cluster-down`"
            )
        self.bins = self.bins or bin_dir()
        # Every cluster starts empty: no objects from a previous run, a fresh config and PKI.
        for stale in (self.root / "etcd-data", self.pki, self.logs, self.webhook_tls, self.prometheus_dir):
            shutil.rmtree(stale, ignore_errors=True)
        for directory in (self.root, self.pki, self.logs):
            directory.mkdir(parents=True, exist_ok=True)
        self.ports = {
            name: free_port()
            for name in (
                "etcd",
                "etcd_peer",
                "apiserver",
                "webhook",
                "webhook_metrics",
                "rebalancer_metrics",
                "prometheus",
            )
        }
        try:
            self._write_pki()
            self._write_kubeconfig()
            self.config_file.write_text(config_text)
            if prometheus:
                self._start_prometheus()
            if self.etcd_servers is None:
                self._start_etcd()
            self._start_apiserver()
            self.wait_for("kube-apiserver", self._apiserver_ready, timeout_seconds=90)
            self._start_controller_manager()
            self._start_scheduler(self._write_scheduler_config() if webhook else None)
            self._start_kwok()
            self._create_nodes()
            self.wait_for("default service account", self._default_sa_exists, timeout_seconds=60)
            self.wait_for("nodes Ready", self._nodes_ready, timeout_seconds=60)
            # Our own namespace (the rebalancer's Lease lives there), opted out as in production.
            self.kubectl("apply", "-f", str(REPO / "manifests" / "base" / "namespace.yaml"))
            # The policy CRDs before our processes start, as a chart installs them: their watches
            # then list at once instead of backing off.
            self.kubectl("apply", "-k", str(REPO / "manifests" / "crds"))
            if webhook:
                self.start_webhook()
                self.register_webhook()
            if rebalancer:
                self.start_rebalancer()
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        state = self._read_state()
        for process in reversed(state):
            _terminate(process.pid)
        self.processes = []
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()

    # --- processes ---------------------------------------------------------------------------
    def _spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Process:
        log_path = self.logs / f"{name}.log"
        with log_path.open("ab") as log:
            child = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # its own process group: stopped as one, never orphaned
            )
        process = Process(name=name, pid=child.pid, log=log_path)
        self.processes.append(process)
        self._write_state()
        return process

    def stop(self, name: str) -> None:
        for process in list(self.processes):
            if process.name == name:
                _terminate(process.pid)
                self.processes.remove(process)
        if self.metrics_targets.pop(name, None) is not None:
            self._write_scrape_targets()
        self._write_state()

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash or an OOM kill would: no cleanup, no graceful shutdown."""
        for process in list(self.processes):
            if process.name == name:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(process.pid, 0)
                self.processes.remove(process)
        self._write_state()

    def pause(self, name: str) -> None:
        """SIGSTOP: the process keeps its port (connections are accepted) but never answers."""
        for process in self.processes:
            if process.name == name:
                os.killpg(process.pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        for process in self.processes:
            if process.name == name:
                os.killpg(process.pid, signal.SIGCONT)

    def _write_state(self) -> None:
        state = {"ports": self.ports, "processes": [p.__dict__ | {"log": str(p.log)} for p in self.processes]}
        self.state_file.write_text(json.dumps(state, indent=2))

    def _read_state(self) -> list[Process]:
        if self.processes:
            return list(self.processes)
        try:
            state = json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return []
        self.ports = {k: int(v) for k, v in state.get("ports", {}).items()}
        return [
            Process(name=p["name"], pid=int(p["pid"]), log=Path(p["log"])) for p in state.get("processes", [])
        ]

    def load(self) -> LocalCluster:
        """Attach to a cluster started by another process (for `status` and tests)."""
        self.processes = self._read_state()
        return self

    def check_alive(self) -> None:
        for process in self.processes:
            if not _alive(process.pid):
                raise ClusterError(
                    f"{self.label}{process.name} exited; last lines of {process.log}:\n{tail(process.log)}"
                )

    def wait_for(self, what: str, ready: Any, *, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        last_error = ""
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if ready():
                    return
            except Exception as error:  # a not-yet-ready component answers with errors
                last_error = f"{type(error).__name__}: {error}"
            time.sleep(0.25)
        logs = "\n".join(f"--- {self.label}{p.name}\n{tail(p.log, 15)}" for p in self.processes)
        raise ClusterError(
            f"timed out after {timeout_seconds:g}s waiting for {self.label}{what} ({last_error})\n{logs}"
        )

    # --- PKI and kubeconfig -----------------------------------------------------------------
    def _write_pki(self) -> None:
        ca = issue_ca("eco-pulse local cluster CA")
        apiserver = issue_leaf_cert(
            ca,
            common_name="kube-apiserver",
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
            ip_addresses=["127.0.0.1", "10.96.0.1"],
            server=True,
            key=generate_rsa_key(),
        )
        admin = issue_leaf_cert(
            ca, common_name="admin", organizations=["system:masters"], server=False, client=True
        )
        (self.pki / "ca.crt").write_bytes(ca.cert_pem)
        (self.pki / "ca.key").write_bytes(ca.key_pem)
        (self.pki / "apiserver.crt").write_bytes(apiserver.cert_pem)
        (self.pki / "apiserver.key").write_bytes(apiserver.key_pem)
        (self.pki / "admin.crt").write_bytes(admin.cert_pem)
        (self.pki / "admin.key").write_bytes(admin.key_pem)
        service_account = generate_rsa_key()
        (self.pki / "sa.key").write_bytes(
            service_account.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (self.pki / "sa.pub").write_bytes(
            service_account.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        for key in self.pki.glob("*.key"):
            key.chmod(0o600)
        # The webhook's own serving certificate, from its own CA (as in a real cluster).
        webhook_ca = issue_ca("eco-pulse webhook CA")
        serving = issue_serving_cert(
            webhook_ca,
            service="eco-pulse-webhook",
            namespace="eco-pulse",
            dns_names=["localhost"],
            ip_addresses=["127.0.0.1"],
        )
        write_bundle(self.webhook_tls, ca=webhook_ca, leaf=serving)
        # Kept outside the webhook's directory, for drills that renew its certificate (same CA).
        (self.pki / "webhook-ca.crt").write_bytes(webhook_ca.cert_pem)
        (self.pki / "webhook-ca.key").write_bytes(webhook_ca.key_pem)
        (self.pki / "webhook-ca.key").chmod(0o600)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "eco-pulse",
                    "cluster": {"server": self.server, "certificate-authority": str(self.pki / "ca.crt")},
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(self.pki / "admin.crt"),
                        "client-key": str(self.pki / "admin.key"),
                    },
                }
            ],
            "contexts": [{"name": "eco-pulse", "context": {"cluster": "eco-pulse", "user": "admin"}}],
            "current-context": "eco-pulse",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    # --- components ---------------------------------------------------------------------------
    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd_peer']}"
        self._spawn(
            "etcd",
            [
                self.binary("etcd"),
                "--data-dir",
                str(self.root / "etcd-data"),
                "--name",
                "default",
                "--listen-client-urls",
                client,
                "--advertise-client-urls",
                client,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                f"default={peer}",
                "--listen-metrics-urls",
                "",
                "--unsafe-no-fsync",  # test data: durability costs seconds per test on a slow disk
            ],
        )

    def _start_apiserver(self) -> None:
        self._spawn(
            "kube-apiserver",
            [
                self.binary("kube-apiserver"),
                "--etcd-servers",
                self.etcd_servers or f"http://127.0.0.1:{self.ports['etcd']}",
                "--etcd-prefix",
                self.etcd_prefix,
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--secure-port",
                str(self.ports["apiserver"]),
                "--tls-cert-file",
                str(self.pki / "apiserver.crt"),
                "--tls-private-key-file",
                str(self.pki / "apiserver.key"),
                "--client-ca-file",
                str(self.pki / "ca.crt"),
                "--service-account-key-file",
                str(self.pki / "sa.pub"),
                "--service-account-signing-key-file",
                str(self.pki / "sa.key"),
                "--service-account-issuer",
                "https://kubernetes.default.svc",
                "--service-cluster-ip-range",
                "10.96.0.0/16",
                "--authorization-mode",
                "Node,RBAC",
                "--enable-admission-plugins",
                "MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
                *self.apiserver_args,
            ],
        )

    def _component_flags(self) -> list[str]:
        kubeconfig = str(self.kubeconfig)
        return [
            "--kubeconfig",
            kubeconfig,
            "--authentication-kubeconfig",
            kubeconfig,
            "--authorization-kubeconfig",
            kubeconfig,
            "--leader-elect=false",
            "--secure-port",
            "0",
        ]

    def _start_controller_manager(self, controllers: Sequence[str] = ()) -> None:
        self._spawn(
            "kube-controller-manager",
            [
                self.binary("kube-controller-manager"),
                *self._component_flags(),
                "--service-account-private-key-file",
                str(self.pki / "sa.key"),
                "--root-ca-file",
                str(self.pki / "ca.crt"),
                "--use-service-account-credentials=false",
                # On a busy two-core machine kwok's node leases can lag; do not call nodes lost for it.
                "--node-monitor-grace-period=120s",
                # Deployments, ReplicaSets, PDB status (disruption), the garbage collector, namespaces,
                # service accounts and their tokens: what the scenarios need, nothing that wants a cloud.
                "--controllers",
                ",".join(
                    f"{name}-controller"
                    for name in controllers
                    or (
                        "deployment",
                        "replicaset",
                        "disruption",
                        "garbage-collector",
                        "namespace",
                        "serviceaccount",
                        "serviceaccount-token",
                        "root-ca-certificate-publisher",
                        "statefulset",
                        "daemonset",
                        "job",
                        "cronjob",
                        "pod-garbage-collector",
                        # removes the not-ready taint new nodes are born with, once kwok reports them Ready
                        "node-lifecycle",
                    )
                ),
            ],
        )

    def _start_scheduler(self, config: Path | None = None) -> None:
        argv = [self.binary("kube-scheduler"), *self._component_flags()]
        if config is not None:
            argv = [
                self.binary("kube-scheduler"),
                "--config",
                str(config),
                "--authentication-kubeconfig",
                str(self.kubeconfig),
                "--authorization-kubeconfig",
                str(self.kubeconfig),
                "--secure-port",
                "0",
            ]
        self._spawn("kube-scheduler", argv)

    def _write_scheduler_config(self) -> Path:
        """The shipped KubeSchedulerConfiguration, pointed at our local extender."""
        shipped = REPO / "manifests" / "base" / "scheduler" / "kube-scheduler-config.yaml"
        config = yaml.safe_load(shipped.read_text())
        config["clientConnection"]["kubeconfig"] = str(self.kubeconfig)
        config["leaderElection"] = {"leaderElect": False}
        for extender in config["extenders"]:
            extender["urlPrefix"] = self.webhook_url
            extender["tlsConfig"]["caFile"] = str(self.webhook_tls / "ca.crt")
        path = self.root / "kube-scheduler-config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def _start_kwok(self) -> None:
        self._spawn(
            "kwok",
            [
                self.binary("kwok"),
                "--kubeconfig",
                str(self.kubeconfig),
                "--config",
                str(REPO / "hack" / "kwok" / "stages.yaml"),
                "--manage-all-nodes=false",
                "--manage-nodes-with-label-selector",
                "type=kwok",
                "--node-ip",
                "127.0.0.1",
                # A Lease per node, renewed every quarter of this (30 s), four times per the
                # controller-manager's 120 s grace period; not a kubelet's 40 s, so benches with
                # hundreds of nodes do not spend the API server on renewals. Without the flag this
                # kwok build keeps no Lease, and our stages post a node's status only when it is not
                # Ready: every grace period the node lifecycle controller saw no heartbeat, marked
                # every node NotReady (and its pods not Ready), and kwok marked them Ready again
                # (tests/e2e/test_node_steadiness_e2e.py).
                "--node-lease-duration-seconds=120",
            ],
        )

    def _start_prometheus(self) -> None:
        """Debian's prometheus (hack/install-prometheus.sh) scraping our processes, with our alert rules."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise ClusterError("prometheus is not installed: run hack/install-prometheus.sh")
        self.prometheus_dir.mkdir(parents=True, exist_ok=True)
        self._write_scrape_targets()
        config = {
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL_SECONDS}s", "evaluation_interval": "5s"},
            "rule_files": [str(REPO / "dashboards" / "alerts.yaml")],
            "scrape_configs": [
                {
                    "job_name": "eco-pulse",
                    "scrape_interval": f"{SCRAPE_INTERVAL_SECONDS}s",
                    "file_sd_configs": [
                        {"files": [str(self.prometheus_dir / "targets.json")], "refresh_interval": "1s"}
                    ],
                },
                # The API server's own admission metrics, which the webhook-down alerts read.
                {
                    "job_name": "apiserver",
                    "scheme": "https",
                    "scrape_interval": "5s",
                    "tls_config": {
                        "ca_file": str(self.pki / "ca.crt"),
                        "cert_file": str(self.pki / "admin.crt"),
                        "key_file": str(self.pki / "admin.key"),
                    },
                    "static_configs": [{"targets": [f"127.0.0.1:{self.ports['apiserver']}"]}],
                },
            ],
        }
        config_path = self.prometheus_dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self._spawn(
            "prometheus",
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.prometheus_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}",
                "--storage.tsdb.retention.time=1d",
            ],
        )
        self.wait_for("prometheus", self._prometheus_ready, timeout_seconds=60)

    def _write_scrape_targets(self) -> None:
        """The file Prometheus discovers its targets from: every metrics port we started, by component."""
        if not self.prometheus_dir.exists():
            return
        targets = [
            {"targets": [f"127.0.0.1:{port}"], "labels": {"component": component}}
            for component, port in sorted(self.metrics_targets.items())
        ]
        staging = self.prometheus_dir / "targets.json.tmp"
        staging.write_text(json.dumps(targets))
        staging.replace(self.prometheus_dir / "targets.json")  # atomic: never a half-read file

    def _prometheus_ready(self) -> bool:
        with urllib.request.urlopen(f"{self.prometheus_url}/-/ready", timeout=2) as answer:
            return bool(answer.status == 200)

    def prometheus_query(self, query: str, *, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query through Prometheus' HTTP API; the result vector."""
        params = {"query": query} | ({"time": f"{at:.3f}"} if at is not None else {})
        url = f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as error:  # 400/422: Prometheus says why in the body
            raise ClusterError(f"prometheus query failed: {query}: {error.read()[:500]!r}") from error
        if body.get("status") != "success":
            raise ClusterError(f"prometheus query failed: {query}: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def start_webhook(
        self,
        name: str = "webhook",
        *,
        port: int | None = None,
        metrics_port: int | None = None,
        config_file: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Our webhook; drills start a second one with its own ports, config and environment."""
        port = port or self.ports["webhook"]
        metrics_port = metrics_port or self.ports["webhook_metrics"]
        self._spawn(
            name,
            [sys.executable, "-m", "webhook"],
            env={
                "ECOPULSE_CONFIG": str(config_file or self.config_file),
                "ECOPULSE_TLS_DIR": str(self.webhook_tls),
                "ECOPULSE_BIND_ADDRESS": "127.0.0.1",
                "ECOPULSE_WEBHOOK_PORT": str(port),
                "ECOPULSE_METRICS_BIND_ADDRESS": "127.0.0.1",
                "ECOPULSE_METRICS_PORT": str(metrics_port),
                "PYTHONPATH": str(REPO),
                "KUBECONFIG": str(self.kubeconfig),  # to watch namespace labels and annotations
                **(env or {}),
            },
        )
        self.metrics_targets[name] = metrics_port
        self._write_scrape_targets()
        self.wait_for(name, lambda: self._webhook_ready_on(port), timeout_seconds=30)

    def start_rebalancer(
        self,
        name: str = "rebalancer",
        *,
        metrics_port: int | None = None,
        config_file: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        port = metrics_port or self.ports["rebalancer_metrics"]
        self.metrics_targets[name] = port
        self._write_scrape_targets()
        self._spawn(
            name,
            [sys.executable, "-m", "rebalancer"],
            env={
                "ECOPULSE_CONFIG": str(config_file or self.config_file),
                "KUBECONFIG": str(self.kubeconfig),
                "POD_NAME": name,
                "POD_NAMESPACE": "eco-pulse",
                "ECOPULSE_METRICS_BIND_ADDRESS": "127.0.0.1",
                "ECOPULSE_METRICS_PORT": str(port),
                "PYTHONPATH": str(REPO),
                **(env or {}),
            },
        )

    def register_webhook(self, url: str | None = None) -> None:
        """The shipped MutatingWebhookConfiguration, pointed at our local process (or ``url``, the
        /mutate URL of another: each webhook keeps its own path on that server)."""
        manifest = yaml.safe_load(
            (REPO / "manifests" / "base" / "mutatingwebhookconfiguration.yaml").read_text()
        )
        for hook in manifest["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {
                "url": url if url and path == "/mutate" else f"{self.webhook_url}{path}",
                "caBundle": ca_bundle_b64((self.webhook_tls / "ca.crt").read_bytes()),
            }
        self.kubectl("apply", "-f", "-", input_text=json.dumps(manifest))

    # --- readiness ----------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return context

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.server}{path}", context=self._ssl_context(), timeout=5) as answer:
            return json.loads(answer.read())

    def _apiserver_ready(self) -> bool:
        with urllib.request.urlopen(
            f"{self.server}/readyz", context=self._ssl_context(), timeout=5
        ) as answer:
            return bool(answer.status == 200)

    def _default_sa_exists(self) -> bool:
        return bool(self.get("/api/v1/namespaces/default/serviceaccounts/default"))

    def _nodes_ready(self) -> bool:
        nodes = self.get("/api/v1/nodes?labelSelector=type%3Dkwok")["items"]
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) == len(self.regions) * self.nodes_per_region

    def _webhook_ready(self) -> bool:
        return self._webhook_ready_on(self.ports["webhook"])

    def _webhook_ready_on(self, port: int) -> bool:
        context = ssl.create_default_context(cafile=str(self.webhook_tls / "ca.crt"))
        url = f"https://127.0.0.1:{port}/readyz"
        with urllib.request.urlopen(url, context=context, timeout=2) as answer:
            body = json.loads(answer.read())
        return len(body.get("freshRegions", [])) == len(REGIONS)

    # --- objects ------------------------------------------------------------------------------
    def kubectl_result(self, *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.binary("kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            check=False,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        return self.kubectl_result(*args, input_text=input_text).stdout

    def _create_nodes(self) -> None:
        nodes = []
        for region in self.regions:
            for index in range(self.nodes_per_region):
                zone_letter = "abc"[index % 3]
                nodes.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "metadata": {
                            "name": f"{region}-{zone_letter}-{index}",
                            "labels": {
                                "type": "kwok",
                                "kubernetes.io/hostname": f"{region}-{zone_letter}-{index}",
                                REGION_LABEL: region,
                                "topology.kubernetes.io/zone": f"{region}{zone_letter}",
                                "node.kubernetes.io/instance-type": "m5.2xlarge",
                                "karpenter.sh/capacity-type": "on-demand" if index % 2 == 0 else "spot",
                            },
                            "annotations": {"kwok.x-k8s.io/node": "fake"},
                        },
                        "spec": {"taints": []},
                        "status": {
                            "allocatable": {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": "110"},
                            "capacity": {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": "110"},
                        },
                    }
                )
        self.kubectl(
            "apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes})
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by us) counts as dead.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


def _terminate(pid: int, *, grace_seconds: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGCONT)
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def pods_table(cluster: LocalCluster, namespace: str) -> str:
    """Where each pod runs now, its region's grid now, and the latest decision about it (demo_tables)."""
    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json"))["items"]
    events = json.loads(cluster.kubectl("get", "events.events.k8s.io", "-n", namespace, "-o", "json"))[
        "items"
    ]
    carbon = yaml.safe_load(cluster.config_file.read_text()).get("carbon", {})
    grid = {region: float(g) for region, g in (carbon.get("mock") or {}).items()}
    return demo_tables.pods_table(pods, nodes, events, grid)


@contextlib.contextmanager
def running_cluster(root: Path, **options: Any) -> Iterator[LocalCluster]:
    cluster = LocalCluster(root=root)
    cluster.up(**options)
    try:
        yield cluster
    finally:
        cluster.down()


SAMPLE_WORKLOAD = """\
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: registry.example/web:1.0
          resources: {requests: {cpu: 500m, memory: 512Mi}}
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "demo"])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--kueue", action="store_true", help="up: also a real Kueue (docs/kueue.md)")
    args = parser.parse_args(argv)
    cluster = LocalCluster(root=args.root)
    try:
        if args.command == "up":
            started = time.monotonic()
            cluster.up(rebalancer=True)
            if args.kueue:
                from tests.e2e.kueue import LocalKueue  # noqa: PLC0415 (it imports this module)

                try:
                    LocalKueue(cluster=cluster, root=args.root / "kueue").start()
                except BaseException:
                    cluster.down()
                    raise
            print(f"cluster ready in {time.monotonic() - started:.0f}s")
            print(f"  export KUBECONFIG={cluster.kubeconfig}")
            print(f"  kubectl: {cluster.binary('kubectl')}")
            print(f"  config (edit the mock grid, it reloads): {cluster.config_file}")
            print(
                f"  logs: {cluster.logs}/; metrics: http://127.0.0.1:{cluster.ports['webhook_metrics']}/metrics "
                f"(webhook), http://127.0.0.1:{cluster.ports['rebalancer_metrics']}/metrics (rebalancer)"
            )
            print(f"  prometheus (scrapes both, loads dashboards/alerts.yaml): {cluster.prometheus_url}")
            print("  the rebalancer runs every 5 s: flip the mock grid and watch running pods move")
        elif args.command == "down":
            cluster.down()
            print("cluster stopped")
        elif args.command == "status":
            cluster.load()
            for process in cluster.processes:
                print(
                    f"{process.name:<24} pid {process.pid:<8} {'running' if _alive(process.pid) else 'EXITED'}"
                )
        else:  # demo: the sample workload, then where its pods landed and why
            cluster.load()
            cluster.bins = bin_dir()
            cluster.kubectl("apply", "-f", "-", input_text=SAMPLE_WORKLOAD)
            cluster.kubectl("rollout", "status", "-n", "demo", "deployment/web", "--timeout=120s")
            print(pods_table(cluster, "demo"))
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
