"""The local Karmada fleet on its own (no Eco-Pulse): the base the fleet-mode tests build on.

A user applies a plain Deployment and a PropagationPolicy to the Karmada API server with kubectl;
Karmada schedules it to the member the policy names, and its pods run on that member's kwok nodes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.cluster import REGION_LABEL
from tests.e2e.fleet import Fleet

# The fleet's first use in a session starts it (about a minute on two busy cores).
pytestmark = pytest.mark.timeout(600)

REPLICAS = 3


@pytest.fixture
def namespace(fleet: Fleet, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace in Karmada (Karmada creates it in every member), deleted afterwards."""
    name = "fleet-" + request.node.name.replace("_", "-")[5:40].strip("-").lower()
    fleet.karmada_kubectl("create", "namespace", name)
    yield name
    fleet.karmada_kubectl("delete", "namespace", name, "--wait=false")


def workload(namespace: str, cluster: str) -> str:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "registry.example/web:1.0",
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                        }
                    ]
                },
            },
        },
    }
    policy = {
        "apiVersion": "policy.karmada.io/v1alpha1",
        "kind": "PropagationPolicy",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
            "placement": {"clusterAffinity": {"clusterNames": [cluster]}},
        },
    }
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [deployment, policy]})


def running_pods(fleet: Fleet, cluster: str, namespace: str) -> list[dict[str, Any]]:
    pods = json.loads(
        fleet.member_kubectl(cluster, "get", "pods", "-n", namespace, "-l", "app=web", "-o", "json")
    )
    return [p for p in pods["items"] if p["status"].get("phase") == "Running"]


def test_karmada_propagates_to_member(fleet: Fleet, namespace: str) -> None:
    # Not the first member: a default that happened to pick the first would not pass.
    target = fleet.cluster_in("eu-west-1")
    fleet.karmada_kubectl("apply", "-f", "-", input_text=workload(namespace, target))

    fleet.wait_for(
        f"{REPLICAS} pods of {namespace}/web Running in {target}",
        lambda: len(running_pods(fleet, target, namespace)) == REPLICAS,
        timeout_seconds=180,
    )

    binding = json.loads(
        fleet.karmada_kubectl("get", "resourcebinding", "-n", namespace, "web-deployment", "-o", "json")
    )
    assert binding["spec"]["clusters"] == [{"name": target, "replicas": REPLICAS}]
    nodes = json.loads(fleet.member_kubectl(target, "get", "nodes", "-l", "type=kwok", "-o", "json"))["items"]
    region_of_node = {n["metadata"]["name"]: n["metadata"]["labels"][REGION_LABEL] for n in nodes}
    for pod in running_pods(fleet, target, namespace):
        assert region_of_node[pod["spec"]["nodeName"]] == fleet.regions[target] == "eu-west-1"
    for other in set(fleet.regions) - {target}:
        deployments = json.loads(
            fleet.member_kubectl(other, "get", "deployments", "-n", namespace, "-o", "json")
        )
        assert deployments["items"] == [], other
