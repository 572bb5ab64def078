"""A real, local Karmada fleet on loopback: the Karmada control plane and three member clusters, one
region each, joined in Push mode with the real ``karmadactl join``.

- Karmada: one etcd (the members' too, under their own ``--etcd-prefix``), the Karmada API server (our
  kube-apiserver), a kube-controller-manager for namespaces and garbage collection,
  karmada-aggregated-apiserver (Cluster objects, behind an APIService), karmada-webhook (its shipped
  webhook configurations, pointed at 127.0.0.1 by URL), karmada-controller-manager and
  karmada-scheduler, with Karmada's own CRDs from its module source.
- Members ``member-<region>``: kube-apiserver, kube-controller-manager, kube-scheduler and kwok nodes
  labelled with their region (tests/e2e/cluster.py's LocalCluster, one region each).

Used by the ``fleet`` e2e fixture and by ``make fleet-up`` / ``make fleet-down`` / ``make run-fleet``
(``python -m tests.e2e.fleet up|down|status|demo``). Binaries come from hack/build-k8s.sh and
hack/build-karmada.sh. What runs is recorded in ``<root>/state.json`` and each cluster's own
``state.json``, so another process can attach to it or stop it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from certs.issue import ca_bundle_b64, issue_ca, issue_leaf_cert, issue_serving_cert, write_bundle
from tests.e2e import demo_tables
from tests.e2e.cluster import (
    DEMO_CONFIG,
    REGIONS,
    REPO,
    ClusterError,
    LocalCluster,
    Process,
    _alive,
    _terminate,
    bin_dir,
    free_port,
)
from tests.e2e.cluster import (
    SAMPLE_WORKLOAD as CLUSTER_SAMPLE_WORKLOAD,
)

DEFAULT_ROOT = REPO / ".fleet"
KARMADA_SYSTEM = "karmada-system"
AGGREGATED_APISERVER = "karmada-aggregated-apiserver"
CLUSTER_API = "v1alpha1.cluster.karmada.io"
# Members are regions: cluster name -> region. Karmada allows these names (DNS labels, <= 48 chars).
MEMBERS: Mapping[str, str] = {f"member-{region}": region for region in REGIONS}
# Every Karmada component is a Go process on a shared two-core machine: none profiles, none elects.
LEAN_APISERVER_ARGS = ("--profiling=false", "--enable-priority-and-fairness=false")
# Karmada's controllers, less those for features the fleet does not use (multi-cluster services,
# federated HPA and quotas, remedies, pull-mode agents): each one is watches on every member.
KARMADA_CONTROLLERS = (
    "*",
    "-serviceExport",
    "-endpointSlice",
    "-serviceImport",
    "-multiclusterservice",
    "-endpointsliceCollect",
    "-endpointsliceDispatch",
    "-federatedHorizontalPodAutoscaler",
    "-cronFederatedHorizontalPodAutoscaler",
    "-federatedResourceQuotaSync",
    "-federatedResourceQuotaStatus",
    "-federatedResourceQuotaEnforcement",
    "-remedy",
    "-agentcsrapproving",
)
# How fast Karmada notices a member failing (and recovering): its status controller probes each
# member every 10 s and reports NotReady after this long of failed probes (Karmada's defaults: 10 s
# and 30 s). The drills need a short detection lag; fleet mode's moveStabilitySeconds must exceed it.
CLUSTER_STATUS_UPDATE_SECONDS = 10
CLUSTER_FAILURE_THRESHOLD_SECONDS = 10
CLUSTER_SUCCESS_THRESHOLD_SECONDS = 10
MOVE_STABILITY_SECONDS = CLUSTER_STATUS_UPDATE_SECONDS + CLUSTER_FAILURE_THRESHOLD_SECONDS + 10
# The shipped webhooks answer within 3 s; on a loaded two-core machine they sometimes do not.
WEBHOOK_TIMEOUT_SECONDS = 10
# The local fleet's EcoPulseConfiguration (`.fleet/config.yaml`): cluster.py's regions, mock grid and
# prices, and a fleet mode that plans every 5 s and acts (dryRun: false), so a flipped grid shows.
FLEET_CONFIG = (
    DEMO_CONFIG
    + """\
fleet:
  intervalSeconds: 5
  dryRun: false
  minNetBenefitUsd: 0.0001
  maxMovesPerPass: 10
  maxMovesPerNamespace: 5
  cooldownSeconds: 30
  moveStabilitySeconds: """
    + str(MOVE_STABILITY_SECONDS)
    + """
"""
)


class FleetError(ClusterError):
    pass


def karmada_bin_dir() -> Path:
    """Build (or find cached) the Karmada binaries; raises FleetError naming what failed."""
    return Path(_run_hack("build-karmada.sh"))


def karmada_source_dir() -> Path:
    """Karmada's module source in the Go module cache: its CRDs and deploy manifests."""
    return Path(_run_hack("build-karmada.sh", "--print-source-dir"))


def binaries_built() -> str | None:
    """None when both builds are complete; else what is missing and how to build it."""
    for script, target in (("build-k8s.sh", "k8s"), ("build-karmada.sh", "karmada")):
        done = subprocess.run(
            [str(REPO / "hack" / script), "--check"], check=False, capture_output=True, text=True
        )
        if done.returncode != 0:
            return f"hack/{script} --check: {done.stderr.strip()} (run `make {target}`)"
    return None


def _run_hack(script: str, *args: str) -> str:
    try:
        done = subprocess.run(
            [str(REPO / "hack" / script), *args], check=True, capture_output=True, text=True, timeout=3600
        )
    except subprocess.CalledProcessError as error:
        raise FleetError(f"hack/{script} {' '.join(args)} failed:\n{error.stderr[-3000:]}") from None
    return done.stdout.strip().splitlines()[-1]


@dataclass
class KarmadaPlane(LocalCluster):
    """The Karmada control plane: a LocalCluster whose API server is the Karmada API server."""

    karmada_bins: Path | None = None
    source: Path | None = None  # Karmada's module source
    members: list[LocalCluster] = field(default_factory=list)  # checked alive with us

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['etcd']}"

    def karmada_binary(self, name: str) -> str:
        assert self.karmada_bins is not None
        return str(self.karmada_bins / name)

    def check_alive(self) -> None:
        super().check_alive()
        for member in self.members:
            member.check_alive()

    # --- lifecycle -------------------------------------------------------------------------
    def start_store(self) -> None:
        """PKI, kubeconfig and the shared etcd: what the members need before they start."""
        if self.state_file.exists():
            raise FleetError(f"a fleet is already running here ({self.state_file}); run `make fleet-down`")
        for directory in (self.root, self.pki, self.logs):
            directory.mkdir(parents=True, exist_ok=True)
        self.ports = {
            name: free_port()
            for name in (
                "etcd",
                "etcd_peer",
                "apiserver",
                "aggregated_apiserver",
                "webhook",
                "webhook_metrics",
                "controller_manager_health",
                "controller_manager_metrics",
                "scheduler_health",
                "scheduler_metrics",
            )
        }
        self._write_pki()
        self._write_kubeconfig()
        self.apiserver_args = self._karmada_apiserver_args()
        self._start_etcd()

    def start_control_plane(self) -> None:
        """The Karmada API server and every Karmada component, each waited for in turn."""
        self._start_apiserver()
        self.wait_for("Karmada API server", self._apiserver_ready, timeout_seconds=120)
        # No workload controllers: the Karmada API server holds templates, members run them.
        self._start_controller_manager(controllers=("namespace", "garbage-collector"))
        self.kubectl("create", "namespace", KARMADA_SYSTEM)
        # Our own namespace (fleet mode's Lease lives there), opted out as in production.
        self.kubectl("apply", "-f", str(REPO / "manifests" / "base" / "namespace.yaml"))
        self._apply_crds()
        self._start_webhook()
        self._register_webhooks()
        self._start_aggregated_apiserver()
        self._register_cluster_api()
        self._start_karmada_controllers()

    # --- PKI -------------------------------------------------------------------------------
    def _write_pki(self) -> None:
        super()._write_pki()
        # The aggregation layer: the API server proxies to karmada-aggregated-apiserver with a
        # front-proxy client certificate, which the aggregated server trusts through the
        # extension-apiserver-authentication ConfigMap.
        front_proxy_ca = issue_ca("eco-pulse fleet front-proxy CA")
        front_proxy_client = issue_leaf_cert(
            front_proxy_ca, common_name="front-proxy-client", server=False, client=True
        )
        (self.pki / "front-proxy-ca.crt").write_bytes(front_proxy_ca.cert_pem)
        (self.pki / "front-proxy-client.crt").write_bytes(front_proxy_client.cert_pem)
        (self.pki / "front-proxy-client.key").write_bytes(front_proxy_client.key_pem)
        (self.pki / "front-proxy-client.key").chmod(0o600)
        # The API server dials the aggregated server by its Service name, over 127.0.0.1.
        aggregated_ca = issue_ca("eco-pulse fleet aggregated-apiserver CA")
        write_bundle(
            self.pki / "aggregated-apiserver",
            ca=aggregated_ca,
            leaf=issue_serving_cert(
                aggregated_ca,
                service=AGGREGATED_APISERVER,
                namespace=KARMADA_SYSTEM,
                ip_addresses=["127.0.0.1"],
            ),
        )
        webhook_ca = issue_ca("eco-pulse fleet karmada-webhook CA")
        write_bundle(
            self.pki / "karmada-webhook",
            ca=webhook_ca,
            leaf=issue_serving_cert(
                webhook_ca, service="karmada-webhook", namespace=KARMADA_SYSTEM, ip_addresses=["127.0.0.1"]
            ),
        )

    def _ca_bundle(self, name: str) -> str:
        return ca_bundle_b64((self.pki / name / "ca.crt").read_bytes())

    # --- Karmada objects -------------------------------------------------------------------
    def _apply_crds(self) -> None:
        """Karmada's CRDs as its own kustomization renders them, conversion webhook pointed at us."""
        assert self.source is not None
        rendered = self.kubectl("kustomize", str(self.source / "charts" / "karmada" / "_crds"))
        rendered = rendered.replace(
            "https://{{name}}.{{namespace}}.svc:443", f"https://127.0.0.1:{self.ports['webhook']}"
        ).replace("{{caBundle}}", self._ca_bundle("karmada-webhook"))
        # Server-side: some of these CRDs are too large for kubectl's last-applied annotation.
        self.kubectl("apply", "--server-side", "-f", "-", input_text=rendered)
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")

    def _register_webhooks(self) -> None:
        """The shipped Mutating/ValidatingWebhookConfigurations, each hook pointed at us by URL."""
        assert self.source is not None
        text = (self.source / "artifacts" / "deploy" / "webhook-configuration.yaml").read_text()
        text = text.replace("{{caBundle}}", self._ca_bundle("karmada-webhook"))
        configurations = [doc for doc in yaml.safe_load_all(text) if doc]
        service_url = f"https://karmada-webhook.{KARMADA_SYSTEM}.svc:443"
        for configuration in configurations:
            for hook in configuration["webhooks"]:
                url = hook["clientConfig"]["url"]
                assert url.startswith(service_url), url
                hook["clientConfig"]["url"] = (
                    f"https://127.0.0.1:{self.ports['webhook']}{url[len(service_url) :]}"
                )
                hook["timeoutSeconds"] = WEBHOOK_TIMEOUT_SECONDS
        self.kubectl(
            "apply",
            "-f",
            "-",
            input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": configurations}),
        )

    def _register_cluster_api(self) -> None:
        """The shipped APIService; its ExternalName Service resolves to our 127.0.0.1 port."""
        assert self.source is not None
        text = (
            self.source / "artifacts" / "deploy" / "karmada-aggregated-apiserver-apiservice.yaml"
        ).read_text()
        objects = [doc for doc in yaml.safe_load_all(text.replace("{{caBundle}}", "")) if doc]
        for obj in objects:
            if obj["kind"] == "APIService":
                obj["spec"]["caBundle"] = self._ca_bundle("aggregated-apiserver")
                obj["spec"]["service"]["port"] = self.ports["aggregated_apiserver"]
            elif obj["kind"] == "Service":
                obj["spec"]["externalName"] = "127.0.0.1"
        self.kubectl(
            "apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
        )
        self.wait_for(
            "the Cluster API (APIService Available)", self._cluster_api_available, timeout_seconds=90
        )

    # --- Karmada processes -----------------------------------------------------------------
    def _karmada_apiserver_args(self) -> list[str]:
        return [
            *LEAN_APISERVER_ARGS,
            "--disable-admission-plugins",
            "StorageObjectInUseProtection,ServiceAccount",  # no pods here, as upstream's karmada-apiserver
            "--proxy-client-cert-file",
            str(self.pki / "front-proxy-client.crt"),
            "--proxy-client-key-file",
            str(self.pki / "front-proxy-client.key"),
            "--requestheader-client-ca-file",
            str(self.pki / "front-proxy-ca.crt"),
            "--requestheader-allowed-names",
            "front-proxy-client",
            "--requestheader-extra-headers-prefix",
            "X-Remote-Extra-",
            "--requestheader-group-headers",
            "X-Remote-Group",
            "--requestheader-username-headers",
            "X-Remote-User",
        ]

    def _start_webhook(self) -> None:
        self._spawn(
            "karmada-webhook",
            [
                self.karmada_binary("karmada-webhook"),
                "--kubeconfig",
                str(self.kubeconfig),
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                str(self.ports["webhook"]),
                "--cert-dir",
                str(self.pki / "karmada-webhook"),
                # Its readiness is served on the webhook port (as upstream's probe): no probe port.
                "--health-probe-bind-address",
                "0",
                "--metrics-bind-address",
                f"127.0.0.1:{self.ports['webhook_metrics']}",
            ],
        )
        self.wait_for("karmada-webhook", self._webhook_ready, timeout_seconds=60)

    def _start_aggregated_apiserver(self) -> None:
        kubeconfig = str(self.kubeconfig)
        self._spawn(
            AGGREGATED_APISERVER,
            [
                self.karmada_binary(AGGREGATED_APISERVER),
                "--kubeconfig",
                kubeconfig,
                "--authentication-kubeconfig",
                kubeconfig,
                "--authorization-kubeconfig",
                kubeconfig,
                "--etcd-servers",
                self.etcd_url,
                "--etcd-prefix",
                self.etcd_prefix,
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                str(self.ports["aggregated_apiserver"]),
                "--tls-cert-file",
                str(self.pki / "aggregated-apiserver" / "tls.crt"),
                "--tls-private-key-file",
                str(self.pki / "aggregated-apiserver" / "tls.key"),
            ],
        )

    def _start_karmada_controllers(self) -> None:
        kubeconfig = str(self.kubeconfig)
        self._spawn(
            "karmada-controller-manager",
            [
                self.karmada_binary("karmada-controller-manager"),
                "--kubeconfig",
                kubeconfig,
                "--leader-elect=false",
                "--controllers",
                ",".join(KARMADA_CONTROLLERS),
                f"--cluster-status-update-frequency={CLUSTER_STATUS_UPDATE_SECONDS}s",
                f"--cluster-failure-threshold={CLUSTER_FAILURE_THRESHOLD_SECONDS}s",
                f"--cluster-success-threshold={CLUSTER_SUCCESS_THRESHOLD_SECONDS}s",
                "--health-probe-bind-address",
                f"127.0.0.1:{self.ports['controller_manager_health']}",
                "--metrics-bind-address",
                f"127.0.0.1:{self.ports['controller_manager_metrics']}",
            ],
        )
        self._spawn(
            "karmada-scheduler",
            [
                self.karmada_binary("karmada-scheduler"),
                "--kubeconfig",
                kubeconfig,
                "--leader-elect=false",
                "--health-probe-bind-address",
                f"127.0.0.1:{self.ports['scheduler_health']}",
                "--metrics-bind-address",
                f"127.0.0.1:{self.ports['scheduler_metrics']}",
            ],
        )
        for name in ("controller_manager", "scheduler"):
            port = self.ports[f"{name}_health"]
            self.wait_for(
                f"karmada-{name.replace('_', '-')}",
                lambda port=port: self._http_ok(port, "/healthz"),
                timeout_seconds=90,
            )

    # --- readiness -------------------------------------------------------------------------
    @staticmethod
    def _http_ok(port: int, path: str) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return bool(answer.status == 200)

    def _webhook_ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.pki / "karmada-webhook" / "ca.crt"))
        url = f"https://127.0.0.1:{self.ports['webhook']}/readyz/"
        with urllib.request.urlopen(url, context=context, timeout=2) as answer:
            return bool(answer.status == 200)

    def _cluster_api_available(self) -> bool:
        service = self.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{CLUSTER_API}")
        return any(
            c["type"] == "Available" and c["status"] == "True"
            for c in service.get("status", {}).get("conditions", [])
        )


@dataclass
class Fleet:
    """A Karmada control plane and its member clusters. The ``fleet`` fixture yields one."""

    root: Path = DEFAULT_ROOT
    member_regions: Mapping[str, str] = field(default_factory=lambda: dict(MEMBERS))  # cluster -> region
    karmada: KarmadaPlane = field(init=False)
    members: dict[str, LocalCluster] = field(init=False)

    def __post_init__(self) -> None:
        self.karmada = KarmadaPlane(
            root=self.root / "karmada",
            label="karmada: ",
            kubeconfig_path=self.root / "karmada.kubeconfig",
            etcd_prefix="/karmada",
        )
        self.members = {
            name: LocalCluster(
                root=self.root / "members" / name,
                label=f"{name}: ",
                regions={region: REGIONS[region]},
                etcd_prefix=f"/{name}",
                kubeconfig_path=self.root / "members" / f"{name}.kubeconfig",
                apiserver_args=LEAN_APISERVER_ARGS,
            )
            for name, region in self.member_regions.items()
        }
        self.karmada.members = list(self.members.values())

    # --- what the tests and fleet mode use ----------------------------------------------------
    @property
    def karmada_kubeconfig(self) -> Path:
        return self.karmada.kubeconfig

    @property
    def member_kubeconfigs(self) -> dict[str, Path]:
        """Cluster name -> its kubeconfig (admin of that member)."""
        return {name: member.kubeconfig for name, member in self.members.items()}

    @property
    def regions(self) -> dict[str, str]:
        """Cluster name -> region (the Cluster's spec.region and its nodes' region label)."""
        return dict(self.member_regions)

    def cluster_in(self, region: str) -> str:
        """The member cluster of ``region``."""
        return next(name for name, r in self.member_regions.items() if r == region)

    @property
    def config_file(self) -> Path:
        """The live EcoPulseConfiguration (regions, mock grid, prices) fleet mode reads."""
        return self.root / "config.yaml"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def kubectl_binary(self) -> str:
        return self.karmada.binary("kubectl")

    def mock_grid(self) -> dict[str, float]:
        config = yaml.safe_load(self.config_file.read_text())
        return {region: float(g) for region, g in config["carbon"]["mock"].items()}

    def set_mock_grid(self, grid: Mapping[str, float]) -> None:
        """Change the mock grid intensity (gCO2/kWh) of the given regions; the rest stay. The file is
        replaced atomically, so a reader never sees half of it."""
        config = yaml.safe_load(self.config_file.read_text())
        unknown = set(grid) - set(config["carbon"]["mock"])
        if unknown:
            raise FleetError(f"set_mock_grid: not configured regions: {sorted(unknown)}")
        config["carbon"]["mock"].update(grid)
        staging = self.config_file.with_suffix(".yaml.tmp")
        staging.write_text(yaml.safe_dump(config, sort_keys=False))
        staging.replace(self.config_file)

    def karmada_kubectl(self, *args: str, input_text: str | None = None) -> str:
        """kubectl against the Karmada API server; raises ClusterError with its stderr on failure."""
        return self.karmada.kubectl(*args, input_text=input_text)

    def member_kubectl(self, cluster: str, *args: str, input_text: str | None = None) -> str:
        """kubectl against member ``cluster`` (a name of ``regions``)."""
        return self.members[cluster].kubectl(*args, input_text=input_text)

    def check_alive(self) -> None:
        """Raise ClusterError naming the first process of the fleet that exited, with its log's tail."""
        self.karmada.check_alive()

    def wait_for(self, what: str, ready: Callable[[], Any], *, timeout_seconds: float) -> None:
        """Poll ``ready`` until it is true; fails at once, naming it, when a process of the fleet exits."""
        self.karmada.wait_for(what, ready, timeout_seconds=timeout_seconds)

    def start_process(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Process:
        """Run a process beside the control plane (fleet mode): logged to logs/<name>.log under the
        Karmada root, checked by check_alive, stopped by stop() or down()."""
        return self.karmada._spawn(name, argv, env)

    def stop(self, name: str) -> None:
        self.karmada.stop(name)

    def kill(self, name: str) -> None:
        """SIGKILL a process beside the control plane (fleet mode), as a crash would."""
        self.karmada.kill(name)

    def _plane(self, member: str | None) -> LocalCluster:
        return self.karmada if member is None else self.members[member]

    def stop_apiserver(self, member: str | None = None) -> None:
        """Stop a member's API server (None: the Karmada API server); its other processes keep running."""
        self._plane(member).stop("kube-apiserver")

    def start_apiserver(self, member: str | None = None) -> None:
        """Start it again with the same flags, and wait until it serves."""
        plane = self._plane(member)
        plane._start_apiserver()
        plane.wait_for("kube-apiserver", plane._apiserver_ready, timeout_seconds=120)

    def token_kubeconfig(self, service_account: str, namespace: str) -> Path:
        """A kubeconfig for the Karmada API server as ``namespace/service_account`` (a minted token)."""
        token = self.karmada_kubectl(
            "create", "token", service_account, "-n", namespace, "--duration=2h"
        ).strip()
        config = yaml.safe_load(self.karmada_kubeconfig.read_text())
        config["users"] = [{"name": service_account, "user": {"token": token}}]
        for context in config["contexts"]:
            context["context"]["user"] = service_account
        path = self.root / f"{service_account}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def member_ready(self, member: str) -> bool:
        """Karmada's view: the member's Cluster has Ready=True."""
        return _cluster_ready(json.loads(self.karmada_kubectl("get", "cluster", member, "-o", "json")))

    def pause(self, name: str) -> None:
        self.karmada.pause(name)

    def resume(self, name: str) -> None:
        self.karmada.resume(name)

    def clusters(self) -> list[dict[str, Any]]:
        """The Cluster objects in the Karmada API server."""
        items: list[dict[str, Any]] = json.loads(self.karmada_kubectl("get", "clusters", "-o", "json"))[
            "items"
        ]
        return items

    # --- lifecycle -------------------------------------------------------------------------
    def up(self, *, config_text: str = FLEET_CONFIG) -> None:
        if self.state_file.exists():
            raise FleetError(f"a fleet is already running here ({self.state_file}); run `make fleet-down`")
        k8s_bins = bin_dir()
        self.karmada.bins = k8s_bins
        self.karmada.karmada_bins = karmada_bin_dir()
        self.karmada.source = karmada_source_dir()
        # Every fleet starts empty: no objects from a previous run, a fresh config and PKI (each
        # member's LocalCluster.up() clears its own).
        for stale in ("etcd-data", "pki", "logs"):
            shutil.rmtree(self.karmada.root / stale, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(config_text)
        try:
            self.karmada.start_store()
            self._write_state()
            for member in self.members.values():
                member.bins = k8s_bins
                member.etcd_servers = self.karmada.etcd_url
            # The members and the Karmada control plane come up side by side: most of each start is
            # waiting for an API server, and the two-core machine can overlap that.
            with ThreadPoolExecutor(max_workers=len(self.members) + 1) as pool:
                futures = [pool.submit(m.up, webhook=False, prometheus=False) for m in self.members.values()]
                futures.append(pool.submit(self.karmada.start_control_plane))
                errors = [error for f in futures if (error := f.exception()) is not None]
            if errors:
                raise errors[0]
            self._write_state()
            for name in self.members:
                self._join(name)
            self.karmada.wait_for(
                "member clusters Ready in Karmada", self._members_ready, timeout_seconds=120
            )
        except BaseException:
            self.down()
            raise

    def _join(self, name: str) -> None:
        """The real Push-mode registration: karmadactl creates the member's service account and the
        Cluster object, with the member's region and zones."""
        member = self.members[name]
        region = self.member_regions[name]
        zones = sorted({f"{region}{'abc'[i % 3]}" for i in range(member.nodes_per_region)})  # as its nodes'
        done = subprocess.run(
            [
                self.karmada.karmada_binary("karmadactl"),
                "join",
                name,
                "--kubeconfig",
                str(self.karmada_kubeconfig),
                "--cluster-kubeconfig",
                str(member.kubeconfig),
                "--cluster-region",
                region,
                "--cluster-zones",
                ",".join(zones),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if done.returncode != 0:
            self.check_alive()
            raise FleetError(f"karmadactl join {name} failed: {done.stderr.strip() or done.stdout.strip()}")

    def _members_ready(self) -> bool:
        return {c["metadata"]["name"] for c in self.clusters() if _cluster_ready(c)} == set(self.members)

    def down(self) -> None:
        """Stop everything up() started. Clients first, in parallel: an API server that still serves
        watches to Karmada's controllers waits out its whole shutdown grace; the shared etcd last."""
        clusters = [self.karmada, *self.members.values()]
        for cluster in clusters:
            cluster.load()  # what another process started is in each cluster's state.json
        servers = {"kube-apiserver", AGGREGATED_APISERVER, "karmada-webhook", "etcd"}
        stages = [
            [p for c in clusters for p in c.processes if p.name not in servers],
            [p for c in clusters for p in c.processes if p.name in servers - {"etcd"}],
        ]
        with ThreadPoolExecutor(max_workers=8) as pool:
            for stage in stages:
                list(pool.map(lambda process: _terminate(process.pid), stage))
        for cluster in reversed(clusters):
            cluster.down()  # etcd, and each cluster's state file
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()

    def load(self) -> Fleet:
        """Attach to a fleet started by another process (for `status`, `demo` and tests)."""
        if not self.state_file.exists():
            raise FleetError(f"no fleet is running here ({self.state_file} is missing); run `make fleet-up`")
        k8s_bins = Path(_run_hack("build-k8s.sh", "--print-bin-dir"))
        for cluster in (self.karmada, *self.members.values()):
            cluster.load()
            cluster.bins = k8s_bins
        self.karmada.karmada_bins = Path(_run_hack("build-karmada.sh", "--print-bin-dir"))
        return self

    def _write_state(self) -> None:
        state = {
            "karmada": {"root": str(self.karmada.root), "kubeconfig": str(self.karmada_kubeconfig)},
            "members": {
                name: {
                    "region": self.member_regions[name],
                    "root": str(m.root),
                    "kubeconfig": str(m.kubeconfig),
                }
                for name, m in self.members.items()
            },
            "config": str(self.config_file),
        }
        self.state_file.write_text(json.dumps(state, indent=2))

    def processes(self) -> list[tuple[str, Process]]:
        return [
            (c.label.rstrip(": "), p) for c in (self.karmada, *self.members.values()) for p in c.processes
        ]


def _cluster_ready(cluster: Mapping[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in cluster.get("status", {}).get("conditions", [])
    )


# Fleet mode's own namespace on the Karmada API server (its Lease lives there), opted out.
FLEET_MODE_NAMESPACE = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {"name": "eco-pulse", "labels": {"ecopulse.io/opt-out": "true"}},
}


def start_fleet_mode(
    fleet: Fleet, name: str, *, metrics_port: int, kubeconfig: Path | None = None
) -> Process:
    """``python -m fleet`` against the fleet's Karmada API server, reading its live config.yaml; as
    the Karmada admin unless given another identity's ``kubeconfig``."""
    fleet.karmada_kubectl("apply", "-f", "-", input_text=json.dumps(FLEET_MODE_NAMESPACE))
    return fleet.start_process(
        name,
        [sys.executable, "-m", "fleet"],
        env={
            "ECOPULSE_CONFIG": str(fleet.config_file),
            "ECOPULSE_KARMADA_KUBECONFIG": str(kubeconfig or fleet.karmada_kubeconfig),
            "POD_NAME": name,
            "POD_NAMESPACE": "eco-pulse",
            "ECOPULSE_METRICS_BIND_ADDRESS": "127.0.0.1",
            "ECOPULSE_METRICS_PORT": str(metrics_port),
            "PYTHONPATH": str(REPO),
        },
    )


SAMPLE_NAMESPACE = "demo"
# cluster.py's sample Deployment, plus the PropagationPolicy a Karmada user writes for it.
SAMPLE_WORKLOAD = (
    CLUSTER_SAMPLE_WORKLOAD
    + """\
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: web, namespace: demo}
spec:
  resourceSelectors:
    - {apiVersion: apps/v1, kind: Deployment, name: web}
  placement:
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference: {dynamicWeight: AvailableReplicas}
"""
)


def clusters_table(fleet: Fleet) -> str:
    rows = [f"{'CLUSTER':<20} {'REGION':<11} {'READY':<6} API ENDPOINT"]
    for cluster in fleet.clusters():
        ready = next(
            (c["status"] for c in cluster.get("status", {}).get("conditions", []) if c["type"] == "Ready"),
            "?",
        )
        spec = cluster["spec"]
        rows.append(
            f"{cluster['metadata']['name']:<20} {spec.get('region', '-'):<11} {ready:<6} {spec['apiEndpoint']}"
        )
    return "\n".join(rows)


def placement_table(fleet: Fleet, namespace: str) -> str:
    """Per workload and member: replicas Karmada assigned, pods running there, and why."""
    bindings = json.loads(fleet.karmada_kubectl("get", "resourcebindings", "-n", namespace, "-o", "json"))[
        "items"
    ]
    policies = json.loads(fleet.karmada_kubectl("get", "propagationpolicies", "-n", namespace, "-o", "json"))[
        "items"
    ]
    events = json.loads(fleet.karmada_kubectl("get", "events.events.k8s.io", "-n", namespace, "-o", "json"))[
        "items"
    ]
    latest = {p["metadata"]["name"]: demo_tables.latest_policy_decision(p, events) for p in policies}
    grid = fleet.mock_grid()
    rows = [
        f"{'WORKLOAD':<22} {'CLUSTER':<20} {'REGION':<11} {'GRID NOW':<14} {'REPLICAS':<9} {'RUNNING NOW':<12} "
        f"{'DECIDED AT':<21} LATEST DECISION"
    ]
    for binding in bindings:
        resource = binding["spec"]["resource"]
        workload = f"{resource['kind'].lower()}/{resource['name']}"
        # Karmada names the policy in an annotation (a label before v1.8).
        metadata = binding["metadata"]
        policy = metadata.get("annotations", {}).get("propagationpolicy.karmada.io/name") or metadata.get(
            "labels", {}
        ).get("propagationpolicy.karmada.io/name", "")
        decision = latest.get(
            policy, demo_tables.Decision(at="-", text="karmada default (no policy of ours)")
        )
        for target in binding["spec"].get("clusters", []):
            name = target["name"]
            running = _running_pods(fleet, name, namespace, resource["name"])
            region = fleet.regions.get(name, "?")
            rows.append(
                f"{workload:<22} {name:<20} {region:<11} {demo_tables.grid_text(grid, region):<14} "
                f"{target.get('replicas', '-')!s:<9} {running:<12} {demo_tables.shown_time(decision.at):<21} {decision.text}"
            )
    return "\n".join(rows)


def _running_pods(fleet: Fleet, cluster: str, namespace: str, deployment: str) -> int:
    pods = json.loads(fleet.member_kubectl(cluster, "get", "pods", "-n", namespace, "-o", "json"))["items"]
    return sum(
        1
        for pod in pods
        if pod["status"].get("phase") == "Running"
        and any(
            ref.get("name", "").startswith(f"{deployment}-")
            for ref in pod["metadata"].get("ownerReferences", [])
        )
    )


def wait_rolled_out(fleet: Fleet, namespace: str, deployment: str, timeout_seconds: float = 120) -> None:
    """Until every member the binding names runs its share of ``deployment``."""

    def rolled_out() -> bool:
        binding = json.loads(
            fleet.karmada_kubectl(
                "get", "resourcebinding", "-n", namespace, f"{deployment}-deployment", "-o", "json"
            )
        )
        targets = binding["spec"].get("clusters", [])
        return bool(targets) and all(
            _running_pods(fleet, t["name"], namespace, deployment) == t.get("replicas", 0) for t in targets
        )

    fleet.karmada.wait_for(
        f"{namespace}/{deployment} running in its members", rolled_out, timeout_seconds=timeout_seconds
    )


def rss_bytes(fleet: Fleet) -> int:
    """Resident memory of every process the fleet runs (each is one Go binary, no children)."""
    total = 0
    for _cluster, process in fleet.processes():
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.fleet", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "demo"])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    fleet = Fleet(root=args.root)
    try:
        if args.command == "up":
            started = time.monotonic()
            fleet.up()
            # Fleet mode beside it, as cluster-up starts the webhook: the demo's "why" is its decision.
            fleet_mode_port = free_port()
            start_fleet_mode(fleet, "fleet-mode", metrics_port=fleet_mode_port)
            print(
                f"fleet ready in {time.monotonic() - started:.0f}s; resident memory {rss_bytes(fleet) / 2**30:.1f} GiB"
            )
            print(f"  Karmada:  export KUBECONFIG={fleet.karmada_kubeconfig}")
            for name, path in fleet.member_kubeconfigs.items():
                print(f"  {name:<20} ({fleet.regions[name]}): {path}")
            print(
                f"  kubectl: {fleet.kubectl_binary}; karmadactl: {fleet.karmada.karmada_binary('karmadactl')}"
            )
            print(f"  config (edit the mock grid, it reloads): {fleet.config_file}")
            print(f"  fleet mode: python -m fleet, metrics http://127.0.0.1:{fleet_mode_port}/metrics")
            print(f"  logs: {fleet.root}/karmada/logs/, {fleet.root}/members/<cluster>/logs/")
        elif args.command == "down":
            fleet.down()
            print("fleet stopped")
        elif args.command == "status":
            fleet.load()
            for cluster, process in fleet.processes():
                state = "running" if _alive(process.pid) else "EXITED"
                print(f"{cluster:<20} {process.name:<30} pid {process.pid:<8} {state}")
        else:  # demo: the clusters, then a sample workload and where its replicas landed and why
            fleet.load()
            fleet.check_alive()
            print(clusters_table(fleet))
            print()
            fleet.karmada_kubectl("apply", "-f", "-", input_text=SAMPLE_WORKLOAD)
            wait_rolled_out(fleet, SAMPLE_NAMESPACE, "web")
            print(placement_table(fleet, SAMPLE_NAMESPACE))
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
