"""EcoPulsePolicy on the real control plane: the webhook's watch sees it, the scheduler follows it,
the rebalancer's leader writes its status, and a policy it cannot honour blocks nothing.

The mock grid prefers eu-north-1 (30 g/kWh), then eu-west-1 (300), then us-east-1 (450). From the
baseline us-east-1, eu-west-1 is 84 ms away and eu-north-1 102 ms: a policy allowing both EU
regions within 90 ms leaves eu-west-1 alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.cluster import LocalCluster, free_port
from tests.e2e.test_webhook_e2e import deployment, region_of_nodes, wait_scheduled

WEST_WITHIN_90_MS = {
    "selector": {"matchLabels": {"app": "web"}},
    "allowedRegions": ["eu-west-1", "eu-north-1"],
    "maxLatencyMs": 90,
    "dataRegion": "us-east-1",
}
REF = "EcoPulsePolicy/{namespace}/steer"


@pytest.fixture(scope="module")
def with_status(cluster: LocalCluster) -> Iterator[LocalCluster]:
    """A rebalancer for this module only (its leader writes the policies' status)."""
    cluster.start_rebalancer("rebalancer-policy", metrics_port=free_port())
    yield cluster
    cluster.stop("rebalancer-policy")


@pytest.fixture
def namespace(with_status: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "pol-" + request.node.name.replace("_", "-")[5:35].strip("-").lower()
    with_status.kubectl("create", "namespace", name)
    yield name
    with_status.kubectl("delete", "namespace", name, "--wait=false")


def apply_policy(cluster: LocalCluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": "ecopulse.io/v1alpha1",
        "kind": "EcoPulsePolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(body))


def probe_policy(cluster: LocalCluster, namespace: str, labels: dict[str, str]) -> str:
    """What the webhook says applies to a pod with ``labels`` (a server-side dry run: nothing is made)."""
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "policy-probe", "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "registry.example/probe:1"}]},
    }
    out = json.loads(
        cluster.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input_text=json.dumps(probe))
    )
    return str(out["metadata"].get("annotations", {}).get("ecopulse.io/policy", ""))


def eventually(what: str, condition: Callable[[], bool], timeout_seconds: float = 60) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_seconds}s")
        time.sleep(0.5)


def regions(cluster: LocalCluster, pods: list[dict[str, Any]]) -> list[str]:
    where = region_of_nodes(cluster)
    return sorted(where[p["spec"]["nodeName"]] for p in pods)


def new_pods(
    cluster: LocalCluster, namespace: str, app: str, *, before: set[str], count: int
) -> list[dict[str, Any]]:
    every = wait_scheduled(cluster, namespace, app, len(before) + count)
    return [p for p in every if p["metadata"]["name"] not in before]


def status(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    obj = json.loads(cluster.kubectl("get", "ecopulsepolicy", name, "-n", namespace, "-o", "json"))
    found: dict[str, Any] = obj.get("status") or {}
    return found


def test_a_policy_steers_the_next_pods_and_deleting_it_restores_the_default(
    with_status: LocalCluster, namespace: str
) -> None:
    cluster = with_status
    cluster.kubectl("apply", "-f", "-", input_text=deployment("web", namespace, replicas=2))
    default = wait_scheduled(cluster, namespace, "web", 2)
    assert regions(cluster, default) == ["eu-north-1", "eu-north-1"]

    apply_policy(cluster, namespace, "steer", WEST_WITHIN_90_MS)
    ref = REF.format(namespace=namespace)
    eventually("the webhook sees the policy", lambda: probe_policy(cluster, namespace, {"app": "web"}) == ref)
    before = {p["metadata"]["name"] for p in default}
    cluster.kubectl("scale", "deployment/web", "-n", namespace, "--replicas=4")
    # (The rebalancer may move the first two meanwhile: their replacements follow the policy too.)
    steered = new_pods(cluster, namespace, "web", before=before, count=2)
    assert len(steered) >= 2 and set(regions(cluster, steered)) == {"eu-west-1"}
    for pod in steered:
        annotations = pod["metadata"]["annotations"]
        assert annotations["ecopulse.io/policy"] == ref
        assert annotations["ecopulse.io/preferred-region"] == "eu-west-1"

    # The leader counts what the policy placed, and says it is applied.
    def counted() -> bool:
        current = status(cluster, namespace, "steer")
        return current.get("podsPlacedLastHour", 0) >= 2 and current.get("observedGeneration") == 1

    eventually("the status counts the placed pods", counted)
    current = status(cluster, namespace, "steer")
    ready = {c["type"]: c for c in current["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "Applied")
    assert current["podsMatched"] >= 2
    listed = cluster.kubectl("get", "ecopulsepolicies", "-n", namespace)
    assert "Applied" in listed and "steer" in listed

    cluster.kubectl("delete", "ecopulsepolicy", "steer", "-n", namespace)
    eventually(
        "the webhook forgets the policy", lambda: probe_policy(cluster, namespace, {"app": "web"}) == ""
    )
    before = {p["metadata"]["name"] for p in wait_scheduled(cluster, namespace, "web", 4)}
    cluster.kubectl("scale", "deployment/web", "-n", namespace, "--replicas=6")
    restored = new_pods(cluster, namespace, "web", before=before, count=2)
    assert len(restored) >= 2 and set(regions(cluster, restored)) == {"eu-north-1"}
    assert all("ecopulse.io/policy" not in p["metadata"]["annotations"] for p in restored)


def test_the_pod_annotation_still_overrides_the_policy(with_status: LocalCluster, namespace: str) -> None:
    cluster = with_status
    apply_policy(cluster, namespace, "steer", WEST_WITHIN_90_MS)
    ref = REF.format(namespace=namespace)
    eventually("the webhook sees the policy", lambda: probe_policy(cluster, namespace, {"app": "web"}) == ref)
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input_text=deployment(
            "web", namespace, replicas=2, annotations={"ecopulse.io/max-latency-ms": "200"}
        ),
    )
    placed = wait_scheduled(cluster, namespace, "web", 2)
    assert regions(cluster, placed) == ["eu-north-1", "eu-north-1"]


def test_a_policy_for_an_unknown_region_is_invalid_and_blocks_nothing(
    with_status: LocalCluster, namespace: str
) -> None:
    cluster = with_status
    apply_policy(
        cluster,
        namespace,
        "mars",
        {"selector": {"matchLabels": {"app": "rover"}}, "allowedRegions": ["mars-1"]},
    )

    def invalid() -> bool:
        conditions = {c["type"]: c for c in status(cluster, namespace, "mars").get("conditions", [])}
        return bool(conditions.get("Invalid", {}).get("status") == "True")

    eventually("the policy is marked Invalid", invalid)
    conditions = {c["type"]: c for c in status(cluster, namespace, "mars")["conditions"]}
    assert "spec.allowedRegions" in conditions["Invalid"]["message"]
    assert "mars-1" in conditions["Invalid"]["message"]
    listed = cluster.kubectl("get", "ecopulsepolicies", "-n", namespace)
    assert "Invalid" in listed.splitlines()[1], listed

    cluster.kubectl("apply", "-f", "-", input_text=deployment("rover", namespace, replicas=2))
    created = wait_scheduled(cluster, namespace, "rover", 2)
    assert regions(cluster, created) == ["eu-north-1", "eu-north-1"]
    assert all("ecopulse.io/policy" not in p["metadata"].get("annotations", {}) for p in created)
