"""The real rebalancer as the manifests' own identity, on the real control plane.

The ServiceAccount, ClusterRole, Role and bindings of manifests/base/rbac-rebalancer.yaml are
created in the local cluster, a token is minted for the ServiceAccount (`kubectl create token`),
and `python -m rebalancer` runs as a subprocess with a kubeconfig holding only that token. Its
server is a recording proxy in front of the API server (tests/e2e/recording_proxy.py): every verb
and resource the code uses is seen, and an answer can be held or replaced after the API server
acted. Three properties of issue 20 are checked here:

- (11) nothing the code does is Forbidden, every request is one the role grants, and nothing the
  role grants goes unused;
- (2) an eviction whose outcome the client cannot know (the API server evicted, the client got a
  500) counts against maxEvictionsPerWorkload: no second replica of the workload in that cycle;
- (1) when another holder takes the Lease mid-cycle, no further eviction is sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import DEMO_CONFIG, REPO, ClusterError, LocalCluster, free_port
from tests.e2e.recording_proxy import Call, RecordingProxy, recording_proxy
from tests.e2e.test_rebalancer_e2e import start_in_us
from tests.e2e.test_webhook_e2e import pods, wait_for_decision_region

RBAC = REPO / "manifests" / "base" / "rbac-rebalancer.yaml"
NAMESPACE = "eco-pulse"
SERVICE_ACCOUNT = "eco-pulse-rebalancer"
LEASE = "eco-pulse-rebalancer"
WAIT_SECONDS = 90


@pytest.fixture(scope="module")
def token(cluster: LocalCluster) -> Iterator[str]:
    """The manifests' RBAC objects (and the policy CRDs it reads), created for real, and a token
    for their ServiceAccount."""
    cluster.kubectl("apply", "-k", str(REPO / "manifests" / "crds"))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/ecopulsepolicies.ecopulse.io",
        "crd/clusterecopulsepolicies.ecopulse.io",
        "--timeout=60s",
    )
    cluster.kubectl("apply", "-f", str(RBAC))
    minted = cluster.kubectl("create", "token", SERVICE_ACCOUNT, "-n", NAMESPACE, "--duration=1h").strip()
    original = cluster.config_file.read_text()
    yield minted
    cluster.config_file.write_text(original)  # start_in_us turned the webhook's grid to the US
    wait_for_decision_region(cluster, "eu-north-1")


@pytest.fixture
def namespace(cluster: LocalCluster, token: str, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "id-" + request.node.name.replace("_", "-")[5:30].strip("-").lower()
    cluster.kubectl("create", "namespace", name)
    # Every scenario starts with no Lease, so the first replica creates it.
    cluster.kubectl("delete", "lease", LEASE, "-n", NAMESPACE, "--ignore-not-found")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def rebalancer_config(*, max_evictions_per_workload: int) -> str:
    """The local configuration (its grid favours eu-north-1), acting, with our workload limit."""
    text = DEMO_CONFIG.replace("minPodAgeSeconds: 10", "minPodAgeSeconds: 1")
    assert "mock: {us-east-1: 450, eu-west-1: 300, eu-north-1: 30}" in text and "dryRun: false" in text
    return text + f"  maxEvictionsPerWorkload: {max_evictions_per_workload}\n"


@dataclass
class Rebalancer:
    process: subprocess.Popen[bytes]
    log_file: Path
    proxy: RecordingProxy

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_file.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a traceback line; the JSON ones are what we read
        return out

    def wait_for(self, what: str, found: Callable[[list[dict[str, Any]]], bool]) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if found(self.lines()):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{what}: not seen; log tail:\n{self.log_file.read_text()[-3000:]}")

    def evictions(self, namespace: str) -> list[Call]:
        return [
            c for c in self.proxy.snapshot() if c.resource == "pods/eviction" and c.namespace == namespace
        ]


def cycles(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("msg") == "rebalancing cycle"]


def decisions_before_first_cycle_with_candidates(lines: list[dict[str, Any]], namespace: str) -> list[str]:
    """The eviction decisions of the first cycle that had something to move, for ``namespace``."""
    decided: list[str] = []
    for line in lines:
        ours = line.get("msg") == "rebalancer decision" and line.get("namespace") == namespace
        if ours and line.get("decision") != "refused":
            decided.append(str(line["decision"]))
        if line.get("msg") == "rebalancing cycle" and line.get("candidates"):
            return decided
    raise AssertionError("no cycle with candidates")


@contextmanager
def rebalancer_as_service_account(
    cluster: LocalCluster, directory: Path, token: str, *, config_text: str, identity: str = "rebalancer-sa"
) -> Iterator[Rebalancer]:
    directory.mkdir(parents=True, exist_ok=True)
    with recording_proxy(upstream=cluster.server, ca_file=str(cluster.pki / "ca.crt")) as proxy:
        kubeconfig = directory / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "local", "cluster": {"server": proxy.url}}],
                    "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
                    "contexts": [{"name": "sa", "context": {"cluster": "local", "user": SERVICE_ACCOUNT}}],
                    "current-context": "sa",
                }
            )
        )
        config = directory / "config.yaml"
        config.write_text(config_text)
        log_file = directory / "rebalancer.log"
        with log_file.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "rebalancer"],
                env={
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "HOME": str(directory),
                    "PYTHONPATH": str(REPO),
                    "KUBECONFIG": str(kubeconfig),
                    "ECOPULSE_CONFIG": str(config),
                    "POD_NAME": identity,
                    "POD_NAMESPACE": NAMESPACE,
                    "ECOPULSE_METRICS_BIND_ADDRESS": "127.0.0.1",
                    "ECOPULSE_METRICS_PORT": str(free_port()),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            yield Rebalancer(process, log_file, proxy)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- (11) the role grants exactly what the code uses ------------------------------------------


@dataclass(frozen=True)
class Grant:
    group: str
    resource: str
    verb: str
    namespace: str  # "" for a ClusterRole: any namespace
    name: str  # "" unless the rule names resources

    def allows(self, call: Call) -> bool:
        return (
            (self.group, self.resource, self.verb) == (call.group, call.resource, call.verb)
            and self.namespace in ("", call.namespace)
            and self.name in ("", call.name)
        )


def granted() -> list[Grant]:
    """Every (group, resource, verb[, namespace, name]) the manifests' bindings give the account."""
    documents = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    roles = {(d["kind"], d["metadata"]["name"]): d for d in documents if d["kind"] in ("ClusterRole", "Role")}
    grants: list[Grant] = []
    for binding in (d for d in documents if d["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        assert {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE} in binding[
            "subjects"
        ]
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        scope = binding["metadata"].get("namespace", "") if binding["kind"] == "RoleBinding" else ""
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames") or [""]:
                            grants.append(Grant(group, resource, verb, scope, name))
    return grants


def policies(namespace: str) -> str:
    """One policy of each kind for our workload, so the leader writes both kinds of status."""
    selector = {"matchLabels": {"app": "rbac"}}
    documents = [
        {
            "apiVersion": "ecopulse.io/v1alpha1",
            "kind": "EcoPulsePolicy",
            "metadata": {"name": "rbac", "namespace": namespace},
            "spec": {"selector": selector, "rebalance": "allow"},
        },
        {
            "apiVersion": "ecopulse.io/v1alpha1",
            "kind": "ClusterEcoPulsePolicy",
            "metadata": {"name": f"rbac-{namespace}"},
            "spec": {"selector": selector, "rebalance": "allow"},
        },
    ]
    return "\n---\n".join(json.dumps(d) for d in documents)


def test_the_manifests_role_grants_exactly_what_the_rebalancer_does(
    cluster: LocalCluster, token: str, namespace: str, tmp_path: Path
) -> None:
    cluster.kubectl("apply", "-f", "-", input_text=policies(namespace))
    try:
        calls = calls_of_a_rebalancer_at_work(cluster, token, namespace, tmp_path)
    finally:
        cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input_text=policies(namespace))
    assert calls, "the rebalancer made no request"
    forbidden = [c for c in calls if c.status == 403]
    assert not forbidden, f"Forbidden with the manifests' role: {forbidden}"
    grants = granted()
    ungranted = {
        (c.verb, c.group, c.resource, c.namespace, c.name)
        for c in calls
        if not any(g.allows(c) for g in grants)
    }
    assert not ungranted, (
        f"requests the role does not grant (RBAC allowed them elsewhere?): {sorted(ungranted)}"
    )
    unused = [g for g in grants if not any(g.allows(c) for c in calls)]
    assert not unused, f"granted but never used by the code: {unused}"
    assert {c.status for c in calls if c.resource == "pods/eviction"} == {201}


def calls_of_a_rebalancer_at_work(
    cluster: LocalCluster, token: str, namespace: str, tmp_path: Path
) -> list[Call]:
    start_in_us(cluster, namespace, "rbac", only_us=False)
    # A hold past its release-by, as the webhook would have written it: the new leader releases it.
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(overdue_hold(namespace)))
    with rebalancer_as_service_account(
        cluster, tmp_path, token, config_text=rebalancer_config(max_evictions_per_workload=1)
    ) as rebalancer:
        # An eviction with its Events, and the Lease renewed at least once after it was created.
        rebalancer.wait_for(
            "an eviction", lambda lines: any(line.get("decision") == "evicted" for line in lines)
        )
        rebalancer.wait_for("two completed cycles", lambda lines: len(cycles(lines)) >= 2)
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            seen = {(c.resource, c.verb) for c in rebalancer.proxy.snapshot()}
            if seen >= EXERCISED:
                break
            time.sleep(0.2)
    return rebalancer.proxy.snapshot()


def overdue_hold(namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "held",
            "namespace": namespace,
            "annotations": {
                "ecopulse.io/held-at": "2026-01-01T00:00:00Z",
                "ecopulse.io/release-by": "2026-01-01T01:00:00Z",
            },
        },
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "job", "image": "busybox"}],
                }
            },
        },
    }


# Beyond the first eviction and cycles: what only happens later (a renewal, the Events, the
# policies' status written by the leader, watches that follow their lists).
EXERCISED = {
    ("leases", "update"),
    ("events", "create"),
    ("jobs", "patch"),  # the overdue hold released
    ("ecopulsepolicies/status", "patch"),
    ("clusterecopulsepolicies/status", "patch"),
    ("ecopulsepolicies", "watch"),
    ("clusterecopulsepolicies", "watch"),
}


# --- (2) an unknown outcome counts ------------------------------------------------------------


def test_an_eviction_whose_outcome_is_unknown_counts_against_the_workload_limit(
    cluster: LocalCluster, token: str, namespace: str, tmp_path: Path
) -> None:
    start_in_us(cluster, namespace, "unsure", only_us=False)
    with rebalancer_as_service_account(
        cluster, tmp_path, token, config_text=rebalancer_config(max_evictions_per_workload=1)
    ) as rebalancer:
        # The API server evicts; the client is told 500, as if its connection had broken mid-answer.
        rebalancer.proxy.intercept = lambda call: 500 if call.resource == "pods/eviction" else None
        rebalancer.wait_for(
            "a cycle with candidates", lambda lines: any(c.get("candidates") for c in cycles(lines))
        )
        lines = rebalancer.lines()
        sent = rebalancer.evictions(namespace)
    decided = decisions_before_first_cycle_with_candidates(lines, namespace)
    assert sorted(decided) == ["error", "limit-workload", "limit-workload"], decided
    # One request for the workload in that cycle, and the API server did evict (201): only the
    # client's view of the outcome was lost.
    assert [c.status for c in sent] == [201], sent
    evicted = sent[0].name
    remaining = {p["metadata"]["name"]: p for p in pods(cluster, namespace, "unsure")}
    assert evicted not in remaining or remaining[evicted]["metadata"].get("deletionTimestamp")


# --- (1) leadership lost mid-cycle --------------------------------------------------------------


def take_the_lease(cluster: LocalCluster, holder: str) -> None:
    """Write the Lease as another replica would, with the admin's credentials; retry on a 409."""
    for _ in range(20):
        lease = json.loads(cluster.kubectl("get", "lease", LEASE, "-n", NAMESPACE, "-o", "json"))
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease["spec"].update(
            holderIdentity=holder,
            leaseDurationSeconds=3600,
            acquireTime=now,
            renewTime=now,
            leaseTransitions=int(lease["spec"].get("leaseTransitions") or 0) + 1,
        )
        try:
            cluster.kubectl("replace", "-f", "-", input_text=json.dumps(lease))
            return
        except ClusterError as error:
            if "the object has been modified" not in str(error):
                raise
    raise AssertionError("could not take the Lease")


def test_no_eviction_is_sent_once_another_holder_takes_the_lease_mid_cycle(
    cluster: LocalCluster, token: str, namespace: str, tmp_path: Path
) -> None:
    start_in_us(cluster, namespace, "split", only_us=False)
    with rebalancer_as_service_account(
        cluster, tmp_path, token, config_text=rebalancer_config(max_evictions_per_workload=3)
    ) as rebalancer:
        taken: list[float] = []

        def on_eviction(call: Call) -> int | None:
            if call.resource != "pods/eviction" or taken:
                return None
            # The first eviction went through. Before its answer reaches the rebalancer, another
            # replica takes the Lease and our replica's elector notices on its next read.
            take_the_lease(cluster, "intruder")
            taken.append(time.monotonic())
            rebalancer.wait_for(
                "the elector noticing",
                lambda lines: any(line.get("msg") == "leadership lost" for line in lines),
            )
            return None

        rebalancer.proxy.intercept = on_eviction
        rebalancer.wait_for("the cycle's end", lambda lines: any(c.get("candidates") for c in cycles(lines)))
        # Nor do the next cycles (every 5 s), while another replica holds the Lease.
        time.sleep(11)
        sent = rebalancer.evictions(namespace)
        lines = rebalancer.lines()
    assert taken, "no eviction was ever sent"
    assert len(sent) == 1, f"evictions sent after the Lease was taken: {sent[1:]}"
    assert any(line.get("msg", "").startswith("leadership lost mid-cycle") for line in lines)
