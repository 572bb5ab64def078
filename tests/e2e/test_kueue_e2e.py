"""Eco-Pulse beside a real Kueue (v0.17.0, AdmissionGatedBy on), on the real control plane.

What deferral rests on: Kueue owns ``spec.suspend`` of the Jobs it manages, so Eco-Pulse holds such a Job
with Kueue's own admission gate instead, an annotation that must be present at CREATE and may only lose
names afterwards; while it is there Kueue reserves no quota for the Job, and removing it by a PATCH lets
Kueue admit and start it. Then the whole path: our webhook gates a Kueue-managed Job with a deadline at
CREATE, the rebalancer's release loop removes the gate at the green hour with the region pinned, and
Kueue admits it (the trace grid and the releaser of tests/e2e/test_deferral_e2e.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.deferral_hints import GATE_NAME
from tests.e2e import test_deferral_e2e as deferral
from tests.e2e.cluster import REGION_LABEL, ClusterError, LocalCluster
from tests.e2e.kueue import (
    ADMISSION_GATED_BY,
    CLUSTER_QUEUE,
    LOCAL_QUEUE,
    NAMESPACE,
    QUEUE_NAME_LABEL,
    LocalKueue,
    condition,
)
from tests.e2e.test_webhook_e2e import region_of_nodes

GATE = GATE_NAME  # ours: a domain-prefixed name, as Kueue requires of every gate
OTHER_GATE = "example.com/quota-check"  # another controller's
TIMEOUT_SECONDS = 90
# The same module-scoped fixture as test_deferral_e2e's: the trace grid (eu-north-1 turns green 40 s
# after each restart) and one rebalancer, the releaser, holding the Lease the webhook checks.
deferring = deferral.deferring


def job(
    name: str,
    *,
    queue: str | None = LOCAL_QUEUE,
    annotations: dict[str, str] | None = None,
    pod_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A one-pod Job asking for the ClusterQueue's whole CPU quota: two such Jobs never fit together."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {QUEUE_NAME_LABEL: queue} if queue else {},
            "annotations": annotations or {},
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app": name, **(pod_labels or {})}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "work",
                            "image": "registry.example/batch:1.0",
                            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                        }
                    ],
                },
            },
        },
    }


def create(cluster: LocalCluster, obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API server stored it, after every mutating webhook."""
    created: dict[str, Any] = json.loads(
        cluster.kubectl("create", "-o", "json", "-f", "-", input_text=json.dumps(obj))
    )
    return created


def get(cluster: LocalCluster, *what: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(cluster.kubectl("get", "-o", "json", *what))
    return found


def workload_of(cluster: LocalCluster, created_job: dict[str, Any]) -> dict[str, Any] | None:
    uid = created_job["metadata"]["uid"]
    items = get(cluster, "workloads", "-n", NAMESPACE, "-l", f"kueue.x-k8s.io/job-uid={uid}")["items"]
    return items[0] if items else None


def pods_of(cluster: LocalCluster, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(cluster, "pods", "-n", NAMESPACE, "-l", f"job-name={name}")["items"]
    return items


def eventually(what: str, check: Callable[[], Any], *, timeout_seconds: float = TIMEOUT_SECONDS) -> Any:
    """``check()``'s first truthy answer; fails with the last answer when none comes in time."""
    deadline = time.monotonic() + timeout_seconds
    answer: Any = None
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout_seconds:g}s waiting for {what}; last answer: {answer!r}")


def admitted(cluster: LocalCluster, created_job: dict[str, Any]) -> dict[str, Any] | None:
    workload = workload_of(cluster, created_job)
    return workload if workload and condition(workload, "Admitted") == "True" else None


def cpu_reserved(cluster: LocalCluster) -> str:
    """The ClusterQueue's CPU reservation ("0" when nothing holds quota)."""
    status = get(cluster, "clusterqueue", CLUSTER_QUEUE).get("status", {})
    for flavor in status.get("flavorsReservation", []):
        for resource in flavor["resources"]:
            if resource["name"] == "cpu":
                total: str = resource["total"]
                return total
    return "0"


def admitted_and_started(cluster: LocalCluster, created_job: dict[str, Any]) -> dict[str, Any]:
    """Waits for Kueue to admit the Job and unsuspend it, and for its pod; its Workload."""
    name = created_job["metadata"]["name"]
    workload: dict[str, Any] = eventually(
        f"{name}'s Workload to be admitted", lambda: admitted(cluster, created_job)
    )
    assert workload["status"]["admission"]["clusterQueue"] == CLUSTER_QUEUE
    eventually(
        f"Kueue to unsuspend {name}",
        lambda: get(cluster, "job", name, "-n", NAMESPACE)["spec"]["suspend"] is False,
    )
    eventually(f"{name}'s pod", lambda: pods_of(cluster, name))
    return workload


def annotate(cluster: LocalCluster, name: str, annotations: dict[str, str | None]) -> None:
    """One merge PATCH of the Job's annotations (None removes one), as a controller sends it."""
    patch = json.dumps({"metadata": {"annotations": annotations}})
    cluster.kubectl("patch", "job", name, "-n", NAMESPACE, "--type=merge", "-p", patch)


@pytest.fixture
def kueue_jobs(kueue: LocalKueue) -> Iterator[LocalCluster]:
    """The cluster, with every Job of the namespace gone (and its quota back) after the test."""
    cluster = kueue.cluster
    yield cluster
    cluster.kubectl("delete", "jobs", "--all", "-n", NAMESPACE, "--cascade=background", "--wait=true")
    eventually("the ClusterQueue's quota to be free", lambda: cpu_reserved(cluster) == "0")


def test_kueue_suspends_a_queued_job_admits_it_and_starts_it(kueue_jobs: LocalCluster) -> None:
    cluster = kueue_jobs
    created = create(cluster, job("queued"))
    # Kueue's mutating webhook suspended it at CREATE: from here on Kueue owns spec.suspend.
    assert created["spec"]["suspend"] is True

    admitted_and_started(cluster, created)
    eventually("the ClusterQueue to count its CPU", lambda: cpu_reserved(cluster) == "1")


def test_a_gated_job_reserves_no_quota_until_the_gate_is_removed(kueue_jobs: LocalCluster) -> None:
    cluster = kueue_jobs
    gated = create(cluster, job("gated", annotations={ADMISSION_GATED_BY: GATE}))
    assert gated["spec"]["suspend"] is True
    # Kueue has seen it: the Workload carries the gate.
    workload = eventually("the gated Job's Workload", lambda: workload_of(cluster, gated))
    assert workload["metadata"]["annotations"][ADMISSION_GATED_BY] == GATE

    # A second Job needing the whole quota, created after: admitted, so the gated one holds nothing.
    other = create(cluster, job("ungated"))
    eventually("the ungated Job to be admitted", lambda: admitted(cluster, other))
    workload = workload_of(cluster, gated)
    assert workload is not None
    assert condition(workload, "QuotaReserved") != "True"
    assert condition(workload, "Admitted") != "True"
    assert get(cluster, "job", "gated", "-n", NAMESPACE)["spec"]["suspend"] is True
    assert pods_of(cluster, "gated") == []
    # The ungated Job's CPU, nothing for the gated one.
    eventually("the ClusterQueue to count the ungated Job's CPU", lambda: cpu_reserved(cluster) == "1")

    # With the other gone, the gated Job still reserves nothing: the queue's usage returns to 0.
    cluster.kubectl("delete", "job", "ungated", "-n", NAMESPACE, "--cascade=background", "--wait=true")
    eventually("the ungated Job's quota to be released", lambda: cpu_reserved(cluster) == "0")
    assert condition(workload_of(cluster, gated) or {}, "QuotaReserved") != "True"

    # Removing the gate (what the release loop does, one PATCH) lets Kueue admit and start it.
    annotate(cluster, "gated", {ADMISSION_GATED_BY: None})
    admitted_and_started(cluster, gated)
    eventually("the ClusterQueue to count its CPU", lambda: cpu_reserved(cluster) == "1")


def test_kueue_refuses_a_gate_added_after_create(kueue_jobs: LocalCluster) -> None:
    """Why Eco-Pulse gates at CREATE, in its webhook: Kueue refuses a gate added to an existing Job."""
    cluster = kueue_jobs
    create(cluster, job("late"))
    with pytest.raises(ClusterError, match="cannot add admission gate after creation"):
        annotate(cluster, "late", {ADMISSION_GATED_BY: GATE})


def test_a_kueue_job_with_a_deadline_is_gated_at_create_released_at_the_green_hour_and_admitted(
    kueue_jobs: LocalCluster, deferring: tuple[LocalCluster, deferral.Grid]
) -> None:
    cluster, grid = deferring
    green_at = grid.restart()
    asks = {"ecopulse.io/finish-within": "6h", "ecopulse.io/expected-runtime-hours": "0.05"}
    completes = {"e2e.ecopulse.io/completes": "true"}  # kwok completes its pod 3 s after it runs
    created = create(cluster, job("train", annotations=asks, pod_labels=completes))
    # Another controller's gate on a second one: ours joins the list, and only ours ever leaves it.
    shared = create(cluster, job("shared", annotations={**asks, ADMISSION_GATED_BY: OTHER_GATE}))
    assert shared["metadata"]["annotations"][ADMISSION_GATED_BY] == f"{OTHER_GATE},{GATE}"
    annotations = created["metadata"]["annotations"]
    # Our webhook gated it (Kueue's suspend is Kueue's, not ours) and recorded the hold.
    assert annotations.get(ADMISSION_GATED_BY) == GATE, annotations.get("ecopulse.io/decision")
    assert annotations["ecopulse.io/decision"].startswith("held: greener-hour-ahead"), annotations
    assert "ecopulse.io/held-at" in annotations and "ecopulse.io/release-by" in annotations
    assert created["spec"]["suspend"] is True
    deadline = datetime.fromisoformat(annotations["ecopulse.io/deadline"].replace("Z", "+00:00"))

    # While gated: Kueue knows the Workload but reserves nothing for it, and no pod exists.
    workload = eventually("the gated Job's Workload", lambda: workload_of(cluster, created))
    assert workload["metadata"]["annotations"][ADMISSION_GATED_BY] == GATE
    time.sleep(8)  # a few of the releaser's cycles (every 5 s) before the green hour
    assert datetime.now(UTC) < green_at, "the machine was too slow to observe the hold"
    assert condition(workload_of(cluster, created) or {}, "QuotaReserved") != "True"
    assert cpu_reserved(cluster) == "0"
    assert pods_of(cluster, "train") == []

    released = eventually(
        "the release",
        lambda: (
            ADMISSION_GATED_BY
            not in (j := get(cluster, "job", "train", "-n", NAMESPACE))["metadata"].get("annotations", {})
            and j
        ),
        timeout_seconds=150,
    )
    assert datetime.now(UTC) >= green_at - timedelta(seconds=2)
    assert released["spec"]["template"]["spec"]["nodeSelector"][REGION_LABEL] == "eu-north-1"
    assert released["metadata"]["annotations"]["ecopulse.io/decision"].startswith("released (green-hour)")
    # Kueue took the shorter list on the other Job and keeps waiting on the other controller.
    eventually(
        "our gate to leave the shared Job",
        lambda: (
            get(cluster, "job", "shared", "-n", NAMESPACE)["metadata"]["annotations"][ADMISSION_GATED_BY]
            == OTHER_GATE
        ),
    )

    # Kueue admits it once the gate is gone; it runs in the green region and ends before its deadline.
    admitted_and_started(cluster, created)
    where = region_of_nodes(cluster)
    assert {where[p["spec"]["nodeName"]] for p in pods_of(cluster, "train")} == {"eu-north-1"}
    finished = eventually(
        "the Job to complete", lambda: deferral.completed_at(get(cluster, "job", "train", "-n", NAMESPACE))
    )
    assert finished < deadline
    assert condition(workload_of(cluster, shared) or {}, "QuotaReserved") != "True"
    assert pods_of(cluster, "shared") == []
