"""Issue 29 on the real control plane: a workload's misspelt key is warned at `kubectl apply`, the
placement is an Event on the pod's controller, and `kubectl describe` shows the decision whole."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.e2e.cluster import LocalCluster
from tests.e2e.test_webhook_e2e import deployment, events_about, namespace, wait_scheduled

__all__ = ["namespace"]  # the fixture, shared with the webhook's tests

MISSPELT = {"ecopulse.io/allowed-region": "eu-north-1"}


def cronjob(name: str, namespace: str) -> dict[str, Any]:
    template = {
        "metadata": {"annotations": MISSPELT},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "registry.example/batch:1"}],
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"schedule": "0 0 1 1 *", "suspend": True, "jobTemplate": {"spec": {"template": template}}},
    }


def test_a_misspelt_template_key_is_warned_at_apply_of_the_workload(
    cluster: LocalCluster, namespace: str
) -> None:
    created = cluster.kubectl_result(
        "apply", "-f", "-", input_text=deployment("typo", namespace, replicas=1, annotations=MISSPELT)
    )
    assert "Warning: eco-pulse: ecopulse.io/allowed-region: unknown annotation" in created.stderr, (
        created.stderr
    )
    assert "did you mean ecopulse.io/allowed-regions?" in created.stderr
    # UPDATE too: the next apply of the same object warns again, and a correct template does not.
    again = cluster.kubectl_result(
        "apply", "-f", "-", input_text=deployment("typo", namespace, replicas=2, annotations=MISSPELT)
    )
    assert "ecopulse.io/allowed-region: unknown annotation" in again.stderr
    fixed = cluster.kubectl_result(
        "apply",
        "-f",
        "-",
        input_text=deployment(
            "typo", namespace, replicas=2, annotations={"ecopulse.io/allowed-regions": "eu-north-1"}
        ),
    )
    assert "eco-pulse" not in fixed.stderr
    batch = cluster.kubectl_result("apply", "-f", "-", input_text=json.dumps(cronjob("nightly", namespace)))
    assert "ecopulse.io/allowed-region: unknown annotation" in batch.stderr, batch.stderr


def test_the_placement_is_an_event_on_the_controller_and_describe_shows_it_whole(
    cluster: LocalCluster, namespace: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input_text=deployment("shown", namespace, replicas=3))
    (first, *_) = wait_scheduled(cluster, namespace, "shown", 3)
    (owner,) = first["metadata"]["ownerReferences"]
    deadline = time.monotonic() + 30
    while not (
        placed := [
            e for e in events_about(cluster, namespace, owner["name"]) if e["reason"] == "RegionPlaced"
        ]
    ):
        assert time.monotonic() < deadline, cluster.kubectl("get", "events", "-n", namespace)
        time.sleep(0.25)
    (event,) = placed  # three replicas, one Event
    assert event["type"] == "Normal" and event["reportingController"] == "ecopulse.io/webhook"
    assert event["regarding"]["kind"] == "ReplicaSet" and event["regarding"]["uid"] == owner["uid"]
    assert event["note"].startswith("Placed its pods in eu-north-1: preferred eu-north-1")
    described = cluster.kubectl("describe", "replicaset", "-n", namespace, owner["name"])
    assert "RegionPlaced" in described
    pod = cluster.kubectl("describe", "pod", "-n", namespace, first["metadata"]["name"])
    shown = pod.split("ecopulse.io/decision:", 1)[1].split("ecopulse.io/preferred-region", 1)[0]
    assert "..." not in shown, shown  # kubectl cuts a line of an annotation past 138 characters
    assert "eu-north-1: " in shown and "gCO2/kWh" in shown and "signals: mock" in shown
