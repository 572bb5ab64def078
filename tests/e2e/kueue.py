"""A real Kueue (sigs.k8s.io/kueue v0.17.0, built by hack/build-kueue.sh) beside the local control plane.

Started on the shared ``cluster`` fixture's API server, as a local process: its CRDs and webhook
configurations come from the module's own files (``config/components`` in the module cache), the
webhook configurations pointed at 127.0.0.1 with a serving certificate we issue. AdmissionGatedBy is
on, as Eco-Pulse needs it; integrations: batch/job only, and only Jobs naming a queue are managed.
One ResourceFlavor, one ClusterQueue with a small quota and one LocalQueue in ``NAMESPACE``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from certs.issue import ca_bundle_b64, issue_ca, issue_leaf_cert, issue_serving_cert, write_bundle
from tests.e2e.cluster import REPO, ClusterError, LocalCluster, free_port

VERSION = "v0.17.0"  # hack/build-kueue.sh's pin
FEATURE_GATES = (
    # The annotation this integration rests on: alpha in v0.17 (off by default), beta from v0.19.
    "AdmissionGatedBy=true",
    # An aggregated API server of its own (kubectl kueue's pending-workloads view): nothing here uses it.
    "VisibilityOnDemand=false",
)
SYSTEM_NAMESPACE = "kueue-system"
NAMESPACE = "kueue-jobs"  # where the tests' Jobs go; its LocalQueue is LOCAL_QUEUE
FLAVOR = "default-flavor"
CLUSTER_QUEUE = "eco-pulse-e2e"
LOCAL_QUEUE = "main"
QUOTA_CPU = "1"  # small: a second 1-CPU Job waits until the first releases its quota
QUOTA_MEMORY = "4Gi"
QUEUE_NAME_LABEL = "kueue.x-k8s.io/queue-name"
ADMISSION_GATED_BY = "kueue.x-k8s.io/admission-gated-by"
# The webhooks of what this configuration enables: Kueue's own kinds and batch/v1 Jobs. The others
# (pods, Deployments, StatefulSets, Kubeflow, Ray ...) are no-op handlers for integrations left off;
# registered, they would put Kueue into every pod creation of the shared cluster for nothing.
WEBHOOK_API_GROUPS = frozenset({"kueue.x-k8s.io", "batch"})
# Upstream's names for them once its default kustomization has prefixed them.
WEBHOOK_CONFIGURATIONS = (
    ("mutatingwebhookconfiguration", "kueue-mutating-webhook-configuration"),
    ("validatingwebhookconfiguration", "kueue-validating-webhook-configuration"),
)
# The manager reads its metrics serving certificate from this fixed path whenever it does not manage
# its own certificates (internalCertManagement off, as here: that mode issues certificates for a
# Service name only, never for 127.0.0.1). Metrics are off ("0"), so the pair is only ever parsed.
METRICS_CERT_DIR = Path("/etc/kueue/metrics/certs")


def bin_dir() -> Path:
    return Path(_build_kueue())


def source_dir() -> Path:
    return Path(_build_kueue("--print-source-dir"))


def _build_kueue(*options: str) -> str:
    try:
        done = subprocess.run(
            [str(REPO / "hack" / "build-kueue.sh"), *options],
            check=True,
            capture_output=True,
            text=True,
            timeout=3600,
        )
    except subprocess.CalledProcessError as error:
        raise ClusterError(
            f"hack/build-kueue.sh {' '.join(options)} failed:\n{error.stderr[-3000:]}"
        ) from None
    return done.stdout.strip().splitlines()[-1]


@dataclass
class LocalKueue:
    cluster: LocalCluster
    root: Path
    webhook_port: int = 0
    health_port: int = 0
    started_in_seconds: float = 0.0

    @property
    def certs(self) -> Path:
        return self.root / "webhook-certs"

    @property
    def config_file(self) -> Path:
        return self.root / "controller_manager_config.yaml"

    def start(self) -> None:
        started = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.started_in_seconds = time.monotonic() - started

    def _start(self) -> None:
        binary = bin_dir() / "kueue"
        source = source_dir() / "config" / "components"
        self.root.mkdir(parents=True, exist_ok=True)
        self.webhook_port, self.health_port = free_port(), free_port()
        ca = issue_ca("eco-pulse e2e kueue webhook CA")
        write_bundle(
            self.certs,
            ca=ca,
            leaf=issue_serving_cert(
                ca, service="kueue-webhook-service", namespace=SYSTEM_NAMESPACE, ip_addresses=["127.0.0.1"]
            ),
        )
        _ensure_metrics_cert()
        self.config_file.write_text(yaml.safe_dump(self._configuration(source)))
        # Server-side applies: the Workload CRD is larger than client-side apply's last-applied annotation
        # allows, and client-side apply would wait for the API server to rebuild its OpenAPI v2 document
        # with the new CRDs (seconds on a busy machine).
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}
        crds = source / "crd" / "bases"
        self.cluster.kubectl(
            "apply", "--server-side", "-f", str(crds), "-f", "-", input_text=json.dumps(namespace)
        )
        # Named <group>_<plural>.yaml by controller-gen: the CRD is <plural>.<group> (1.4 MB of YAML
        # not parsed again here).
        names = {".".join(reversed(path.stem.split("_", 1))) for path in crds.glob("*.yaml")}
        self.cluster.wait_for("Kueue's CRDs", lambda: self._established(names), timeout_seconds=60)
        self.cluster._spawn(
            "kueue",
            [str(binary), f"--config={self.config_file}", f"--feature-gates={','.join(FEATURE_GATES)}"],
            env={"KUBECONFIG": str(self.cluster.kubeconfig)},
        )
        # The queues while it starts (Kueue's webhooks are not registered yet: the CRDs' defaults apply).
        self.cluster.kubectl("apply", "--server-side", "-f", "-", input_text=json.dumps(_queues()))
        # Ready once its webhook server listens (upstream's readiness check); only then do the API
        # server's calls reach it, so the configurations go in after.
        self.cluster.wait_for("kueue", self._ready, timeout_seconds=120)
        self.cluster.kubectl(
            "apply", "--server-side", "-f", "-", input_text=json.dumps(self._webhook_configurations(source))
        )
        # The API server picks new webhook configurations up from a watch: wait until it calls Kueue's.
        self.cluster.wait_for("Kueue's webhooks in admission", self._webhooks_called, timeout_seconds=60)
        self.cluster.wait_for("the ClusterQueue to be active", self._cluster_queue_active, timeout_seconds=60)

    def stop(self) -> None:
        """Webhook configurations first: the cluster must keep taking Jobs once Kueue is gone."""
        for kind, name in WEBHOOK_CONFIGURATIONS:
            with contextlib.suppress(ClusterError):
                self.cluster.kubectl("delete", kind, name, "--ignore-not-found")
        self.cluster.stop("kueue")

    def _configuration(self, source: Path) -> dict[str, Any]:
        """config/components/manager's Configuration, for one local process on loopback ports."""
        config: dict[str, Any] = yaml.safe_load(
            (source / "manager" / "controller_manager_config.yaml").read_text()
        )
        config.update(
            namespace=SYSTEM_NAMESPACE,
            health={"healthProbeBindAddress": f"127.0.0.1:{self.health_port}"},
            metrics={"bindAddress": "0"},
            webhook={"host": "127.0.0.1", "port": self.webhook_port, "certDir": str(self.certs)},
            leaderElection={"leaderElect": False},
            internalCertManagement={"enable": False},
            manageJobsWithoutQueueName=False,
            integrations={"frameworks": ["batch/job"]},
        )
        return config

    def _webhook_configurations(self, source: Path) -> dict[str, Any]:
        """config/components/webhook/manifests.yaml: named as upstream's default kustomization names them
        (prefix ``kueue-``), each hook's Service reference replaced by our loopback URL and CA."""
        ca_bundle = ca_bundle_b64((self.certs / "ca.crt").read_bytes())
        items = []
        for manifest in yaml.safe_load_all((source / "webhook" / "manifests.yaml").read_text()):
            manifest["metadata"]["name"] = f"kueue-{manifest['metadata']['name']}"
            hooks = []
            for hook in manifest["webhooks"]:
                if not any(set(rule["apiGroups"]) & WEBHOOK_API_GROUPS for rule in hook["rules"]):
                    continue
                path = hook["clientConfig"]["service"]["path"]
                hook["clientConfig"] = {
                    "url": f"https://127.0.0.1:{self.webhook_port}{path}",
                    "caBundle": ca_bundle,
                }
                hooks.append(hook)
            manifest["webhooks"] = hooks
            items.append(manifest)
        return {"apiVersion": "v1", "kind": "List", "items": items}

    def _established(self, names: set[str]) -> bool:
        crds = self.cluster.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
        return names <= {crd["metadata"]["name"] for crd in crds if condition(crd, "Established") == "True"}

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)

    def _webhooks_called(self) -> bool:
        """A server-side dry run of a queued Job comes back suspended: Kueue's webhook was called."""
        probe = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "kueue-probe",
                "namespace": NAMESPACE,
                "labels": {QUEUE_NAME_LABEL: LOCAL_QUEUE},
            },
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "probe", "image": "probe"}]}
                }
            },
        }
        answer = self.cluster.kubectl(
            "create", "--dry-run=server", "-o", "json", "-f", "-", input_text=json.dumps(probe)
        )
        return json.loads(answer)["spec"].get("suspend") is True

    def _cluster_queue_active(self) -> bool:
        queue = json.loads(self.cluster.kubectl("get", "clusterqueue", CLUSTER_QUEUE, "-o", "json"))
        return condition(queue, "Active") == "True"


def _queues() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "ResourceFlavor",
                "metadata": {"name": FLAVOR},
            },
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "ClusterQueue",
                "metadata": {"name": CLUSTER_QUEUE},
                "spec": {
                    "namespaceSelector": {},
                    "resourceGroups": [
                        {
                            "coveredResources": ["cpu", "memory"],
                            "flavors": [
                                {
                                    "name": FLAVOR,
                                    "resources": [
                                        {"name": "cpu", "nominalQuota": QUOTA_CPU},
                                        {"name": "memory", "nominalQuota": QUOTA_MEMORY},
                                    ],
                                }
                            ],
                        }
                    ],
                },
            },
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "LocalQueue",
                "metadata": {"name": LOCAL_QUEUE, "namespace": NAMESPACE},
                "spec": {"clusterQueue": CLUSTER_QUEUE},
            },
        ],
    }


def _ensure_metrics_cert() -> None:
    """A parseable pair at the manager's fixed metrics path, written once per machine (under a lock:
    sessions may start Kueue at the same time)."""
    try:
        METRICS_CERT_DIR.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise ClusterError(
            f"Kueue reads its metrics certificate from {METRICS_CERT_DIR}, which this user cannot create"
        ) from None
    with (METRICS_CERT_DIR.parent / ".eco-pulse-e2e.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (METRICS_CERT_DIR / "tls.crt").exists() and (METRICS_CERT_DIR / "tls.key").exists():
            return
        ca = issue_ca("eco-pulse e2e kueue metrics CA (unused: metrics are off)")
        write_bundle(
            METRICS_CERT_DIR,
            ca=ca,
            leaf=issue_leaf_cert(ca, common_name="kueue-metrics", ip_addresses=["127.0.0.1"]),
        )


def condition(obj: dict[str, Any], kind: str) -> str | None:
    """The status of the object's condition ``kind`` ("True", "False", ...), None when it has none."""
    for entry in obj.get("status", {}).get("conditions", []):
        if entry.get("type") == kind:
            status: str = entry.get("status", "")
            return status
    return None
