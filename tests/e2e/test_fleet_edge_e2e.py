"""Fleet mode's I/O edge against a real kube-apiserver serving Karmada's own CRDs.

The PropagationPolicy, ClusterPropagationPolicy, ResourceBinding and WorkloadRebalancer CRDs come
from the karmada module source in the Go module cache (``go env GOMODCACHE``), as the fleet build
installs them; nothing of Karmada is copied into the repository. ``clusters.cluster.karmada.io`` is
served by Karmada's aggregated API server, not a CRD: here a schemaless CRD of the same group,
version and resource stands in for it, so the reflector reads Cluster objects the way it reads them
from Karmada. The real fleet is exercised by test_fleet_mode_e2e.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest

from core.config import parse_config_text
from fleet.cycle import PassInputs, run_pass
from fleet.karmada import FleetCaches, KarmadaApi, WriteOutcome, fleet_caches
from fleet.main import snapshot_of
from tests.e2e.cluster import LocalCluster
from tests.unit.test_fleet_planner import CONFIG, signals

KARMADA_VERSION = "v1.16.0"
CRD_FILES = (
    "policy/policy.karmada.io_propagationpolicies.yaml",
    "policy/policy.karmada.io_clusterpropagationpolicies.yaml",
    "work/work.karmada.io_resourcebindings.yaml",
    "apps/apps.karmada.io_workloadrebalancers.yaml",
)
CLUSTER_STAND_IN = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusters.cluster.karmada.io"},
    "spec": {
        "group": "cluster.karmada.io",
        "scope": "Cluster",
        "names": {"plural": "clusters", "singular": "cluster", "kind": "Cluster", "listKind": "ClusterList"},
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}
# Every namespace the tests here create.
NAMESPACES = ("shop", "dry", "private", "race", "fresh")
MEMBERS = {
    "us-east-1": "member-us-east-1",
    "eu-west-1": "member-eu-west-1",
    "eu-north-1": "member-eu-north-1",
}


def karmada_crds() -> Path:
    cache = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    path = Path(cache) / f"github.com/karmada-io/karmada@{KARMADA_VERSION}" / "charts/karmada/_crds/bases"
    if not path.is_dir():
        subprocess.run(
            ["go", "mod", "download", f"github.com/karmada-io/karmada@{KARMADA_VERSION}"],
            check=True,
            timeout=600,
            env={**os.environ, "GOFLAGS": "-mod=mod"},
        )
    assert path.is_dir(), f"no Karmada CRDs at {path}"
    return path


def wait_until(what: str, condition: Callable[[], bool], timeout_seconds: float = 30) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_seconds}s: {what}")
        time.sleep(0.1)


def apply(cluster: LocalCluster, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input_text="\n---\n".join(json.dumps(o) for o in objects))


@pytest.fixture(scope="module")
def karmada(cluster: LocalCluster) -> Iterator[tuple[kubernetes.client.ApiClient, FleetCaches]]:
    bases = karmada_crds()
    for name in CRD_FILES:
        cluster.kubectl("apply", "--server-side", "-f", str(bases / name))
    apply(cluster, CLUSTER_STAND_IN)
    for crd in (
        "propagationpolicies.policy.karmada.io",
        "clusters.cluster.karmada.io",
        "resourcebindings.work.karmada.io",
        "workloadrebalancers.apps.karmada.io",
        "clusterpropagationpolicies.policy.karmada.io",
    ):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    apply(
        cluster,
        *(
            {
                "apiVersion": "cluster.karmada.io/v1alpha1",
                "kind": "Cluster",
                "metadata": {"name": name},
                "spec": {"region": region, "syncMode": "Push"},
                "status": {
                    "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
                    ]
                },
            }
            for region, name in MEMBERS.items()
        ),
    )
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kubeconfig), client_configuration=configuration
    )
    api_client = kubernetes.client.ApiClient(configuration)
    caches = fleet_caches(api_client)
    for reflector in caches.all():
        reflector.start()
    wait_until("fleet caches synced", lambda: caches.synced)
    try:
        yield api_client, caches
    finally:
        for reflector in caches.all():
            reflector.stop()
        # The session's cluster is shared: leave it as we found it (no Deployments taking room).
        for namespace in NAMESPACES:
            cluster.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
        cluster.kubectl("delete", "workloadrebalancers.apps.karmada.io", "--all", "--ignore-not-found")
        cluster.kubectl("delete", "clusters.cluster.karmada.io", "--all", "--ignore-not-found")


def workload(
    cluster: LocalCluster, namespace: str, name: str, *, labels: dict[str, str] | None = None
) -> None:
    """A namespace, a Deployment, its PropagationPolicy and the binding Karmada would have made."""
    apply(
        cluster,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels or {}}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [
                            {
                                "name": "c",
                                "image": "x",
                                "resources": {"requests": {"cpu": "2", "memory": "4Gi"}},
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "policy.karmada.io/v1alpha1",
            "kind": "PropagationPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name}],
                "placement": {"clusterAffinity": {"clusterNames": list(MEMBERS.values())}},
            },
        },
        {
            "apiVersion": "work.karmada.io/v1alpha2",
            "kind": "ResourceBinding",
            "metadata": {"name": f"{name}-deployment", "namespace": namespace},
            "spec": {
                "resource": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "namespace": namespace,
                    "name": name,
                },
                "replicas": 3,
                "clusters": [{"name": "member-us-east-1", "replicas": 3}],
            },
        },
    )


def policy_of(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        cluster.kubectl("get", "propagationpolicy", name, "-n", namespace, "-o", "json")
    )
    return found


def run(api_client: kubernetes.client.ApiClient, caches: FleetCaches, *, live: bool, wait_for: str) -> Any:
    config = parse_config_text(CONFIG)
    # No stability window: the evidence rule has its own tests; here the wire's the thing.
    config = replace(config, fleet=replace(config.fleet, dry_run=not live, move_stability_seconds=0.0))
    wait_until(
        f"{wait_for} in the caches", lambda: any(p.key == wait_for for p in caches.policies.items.values())
    )
    return run_pass(
        PassInputs(
            config=lambda: config,
            signals=signals,
            snapshot=lambda: snapshot_of(caches),
            synced=lambda: caches.synced,
            is_leader=lambda: True,
            api=KarmadaApi(api_client, reporting_instance="e2e"),
        )
    )


def test_a_live_move_patches_the_placement_in_two_steps_records_why_and_posts_an_event(
    cluster: LocalCluster, karmada: tuple[kubernetes.client.ApiClient, FleetCaches]
) -> None:
    api_client, caches = karmada
    workload(cluster, "shop", "web")
    report = run(api_client, caches, live=True, wait_for="shop/web")
    assert report.writes.get("written", 0) >= 1, report
    first = policy_of(cluster, "shop", "web")
    placement = first["spec"]["placement"]
    assert "clusterAffinity" not in placement  # one of the two forms only, as Karmada requires
    # Step 1, accepted by Karmada's schema: the new cluster and the old, both running every replica.
    assert placement["clusterAffinities"][0]["clusterNames"] == ["member-eu-north-1", "member-us-east-1"]
    assert placement["replicaScheduling"] == {"replicaSchedulingType": "Duplicated"}
    annotations = first["metadata"]["annotations"]
    assert json.loads(annotations["ecopulse.io/decision"])["decision"] == "move"
    assert annotations["ecopulse.io/moving-to"] == "member-eu-north-1"
    assert "ecopulse.io/moved-at" in annotations
    events = json.loads(cluster.kubectl("get", "events.events.k8s.io", "-n", "shop", "-o", "json"))["items"]
    assert any(
        e["regarding"]["kind"] == "PropagationPolicy"
        and e["regarding"]["name"] == "web"
        and e["reason"] == "FleetMoved"
        for e in events
    )

    # Karmada reports the replicas available in the new cluster: step 2, the final placement.
    status = {"aggregatedStatus": [{"clusterName": "member-eu-north-1", "status": {"availableReplicas": 3}}]}
    cluster.kubectl(
        "patch",
        "resourcebinding",
        "web-deployment",
        "-n",
        "shop",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    wait_until(
        "the binding's status in the cache",
        lambda: caches.bindings.items["shop/web-deployment"].available_in("member-eu-north-1") == 3,
    )
    wait_until(
        "step 1 in the cache", lambda: caches.policies.items["shop/web"].moving_to == "member-eu-north-1"
    )
    run(api_client, caches, live=True, wait_for="shop/web")  # the window opens (recorded on the policy)
    opened = policy_of(cluster, "shop", "web")["metadata"]["annotations"]
    assert "ecopulse.io/available-since" in opened
    wait_until(
        "the window in the cache", lambda: caches.policies.items["shop/web"].available_since is not None
    )
    run(api_client, caches, live=True, wait_for="shop/web")  # and, the member Ready throughout, closes
    final = policy_of(cluster, "shop", "web")
    assert [t["clusterNames"] for t in final["spec"]["placement"]["clusterAffinities"]] == [
        ["member-eu-north-1"],
        ["member-eu-west-1"],
        ["member-us-east-1"],
    ]
    assert "replicaScheduling" not in final["spec"]["placement"]  # the policy's own (none) is back
    assert "ecopulse.io/moving-to" not in final["metadata"]["annotations"]
    assert "ecopulse.io/available-since" not in final["metadata"]["annotations"]


def test_dry_run_changes_nothing_and_reports_the_change(
    cluster: LocalCluster, karmada: tuple[kubernetes.client.ApiClient, FleetCaches]
) -> None:
    api_client, caches = karmada
    workload(cluster, "dry", "web")
    before = policy_of(cluster, "dry", "web")
    report = run(api_client, caches, live=False, wait_for="dry/web")
    assert report.changes >= 1 and report.writes.get("dry-run", 0) >= 1, report
    after = policy_of(cluster, "dry", "web")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"] == before["spec"]


def test_an_opted_out_namespace_is_never_touched(
    cluster: LocalCluster, karmada: tuple[kubernetes.client.ApiClient, FleetCaches]
) -> None:
    api_client, caches = karmada
    workload(cluster, "private", "web", labels={"ecopulse.io/opt-out": "true"})
    before = policy_of(cluster, "private", "web")
    wait_until("the namespace's opt-out in the cache", lambda: "private" in caches.namespaces.items)
    run(api_client, caches, live=True, wait_for="private/web")
    assert (
        policy_of(cluster, "private", "web")["metadata"]["resourceVersion"]
        == before["metadata"]["resourceVersion"]
    )


def test_a_stale_policy_is_refused_by_the_server_not_overwritten(
    cluster: LocalCluster, karmada: tuple[kubernetes.client.ApiClient, FleetCaches]
) -> None:
    api_client, caches = karmada
    workload(cluster, "race", "web")
    wait_until("race/web cached", lambda: "race/web" in caches.policies.items)
    record = caches.policies.items["race/web"]
    cluster.kubectl("annotate", "propagationpolicy", "web", "-n", "race", "someone=else")  # a user's edit
    result = KarmadaApi(api_client, reporting_instance="e2e").write_policy(
        record, placement={"clusterAffinities": []}, annotations={"ecopulse.io/decision": "{}"}, dry_run=False
    )
    assert result.outcome is WriteOutcome.CONFLICT, result


def test_a_fresh_schedule_is_asked_with_a_workload_rebalancer(
    cluster: LocalCluster, karmada: tuple[kubernetes.client.ApiClient, FleetCaches]
) -> None:
    api_client, caches = karmada
    workload(cluster, "fresh", "web")
    wait_until("fresh/web cached", lambda: "fresh/web" in caches.policies.items)
    api = KarmadaApi(api_client, reporting_instance="e2e")
    assert api.request_fresh_schedule(
        caches.policies.items["fresh/web"], ("fresh/web",), dry_run=True
    ).outcome is (WriteOutcome.DRY_RUN)
    result = api.request_fresh_schedule(caches.policies.items["fresh/web"], ("fresh/web",), dry_run=False)
    assert result.outcome is WriteOutcome.WRITTEN, result
    made = json.loads(cluster.kubectl("get", "workloadrebalancers.apps.karmada.io", "-o", "json"))["items"]
    assert [w["spec"]["workloads"] for w in made] == [
        [{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "fresh", "name": "web"}]
    ]
