"""rebalancer.kubeapi against the real API server: the Eviction API with the disruption controller running,
and events.k8s.io/v1 Events as `kubectl get events` shows them.

What the server answered (kube-apiserver built by hack/build-k8s.sh), asserted below. Every body is a
Status; success is {"status":"Success","code":201}.
  * eviction of a Ready pod, no PDB:         201; the pod is deleted, the ReplicaSet replaces it
  * the same with dryRun All:                201; the pod stays
  * a PDB (maxUnavailable 0) covers the pod: 429 reason TooManyRequests, "Cannot evict pod as it would
      violate the pod's disruption budget.", details.causes[0] {reason: DisruptionBudget, message: "The
      disruption budget web-pdb needs 2 healthy pods and has 2 currently"}; no Retry-After header and no
      retryAfterSeconds. A dry run gets the same 429.
  * two PDBs cover the pod:                  500 "This pod has more than one PodDisruptionBudget, which
      the eviction subresource does not support." (no reason, no details)
  * the pod does not exist:                  404 reason NotFound, 'pods "NAME" not found'
  * a uid precondition that does not match:  409 reason Conflict, 'Operation cannot be fulfilled on Pod
      "NAME": the UID in the precondition (UID) does not match the UID in record (UID). The object might
      have been deleted and then recreated'; the pod stays. (With a blocking PDB the same request is a 429:
      the budget is checked before the precondition.)
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client, config

from core.kube import events as event_writer
from core.kube.events import EventRequest
from rebalancer.kubeapi import EvictionOutcome, EvictionRequest, KubeApi
from tests.e2e.cluster import LocalCluster

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
        - name: app
          image: registry.example/{name}:1.0
          resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
"""

PDB = """\
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  {budget}
  selector: {{matchLabels: {{app: {app}}}}}
"""


@pytest.fixture(scope="module")
def api_client(cluster: LocalCluster) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kubeconfig), client_configuration=configuration
    )
    api = client.ApiClient(configuration)
    yield api
    api.close()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def kube(api_client: client.ApiClient) -> KubeApi:
    return KubeApi(api_client, reporting_instance="e2e-rebalancer-0")


@pytest.fixture
def namespace(cluster: LocalCluster) -> Iterator[str]:
    name = f"e2e-evict-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def live_pods(cluster: LocalCluster, namespace: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        cluster.kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json")
    )["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", [])
    )


def deploy_ready(
    cluster: LocalCluster, namespace: str, app: str, *, replicas: int = 2, timeout_seconds: float = 30
) -> list[dict[str, Any]]:
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input_text=DEPLOYMENT.format(name=app, namespace=namespace, replicas=replicas),
    )
    return wait_ready(cluster, namespace, app, replicas, timeout_seconds=timeout_seconds)


def wait_ready(
    cluster: LocalCluster,
    namespace: str,
    app: str,
    count: int,
    *,
    exclude_uid: str | None = None,
    timeout_seconds: float = 30,
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        current = [p for p in live_pods(cluster, namespace, app) if p["metadata"]["uid"] != exclude_uid]
        if len(current) >= count and all(is_ready(p) for p in current):
            return current
        time.sleep(0.2)
    raise AssertionError(
        f"{app}: {count} Ready pods not there in {timeout_seconds}s:\n"
        + cluster.kubectl("get", "pods", "-n", namespace, "-o", "wide")
    )


def create_pdb(cluster: LocalCluster, namespace: str, name: str, app: str, budget: str) -> None:
    cluster.kubectl(
        "apply", "-f", "-", input_text=PDB.format(name=name, namespace=namespace, app=app, budget=budget)
    )
    # Until the disruption controller has observed the PDB, the server answers 429 for that reason
    # ("still being processed"); wait so the 429 we assert is the budget itself.
    cluster.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=jsonpath={.status.observedGeneration}=1",
        f"pdb/{name}",
        "--timeout=30s",
    )


def pod_by_uid(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any] | None:
    done = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "--ignore-not-found", "-o", "json"))
    for pod in done["items"]:
        if pod["metadata"]["name"] == name:
            return dict(pod)
    return None


def test_evicts_a_running_pod_and_the_replicaset_replaces_it(
    cluster: LocalCluster, kube: KubeApi, namespace: str
) -> None:
    pods = deploy_ready(cluster, namespace, "web")
    victim = pods[0]["metadata"]

    result = kube.evict(
        EvictionRequest(
            namespace=namespace,
            name=victim["name"],
            uid=victim["uid"],
            grace_period_seconds=0,
            reason="carbon: us-east-1 450 g/kWh -> eu-north-1 30 g/kWh",
        )
    )

    assert result.outcome is EvictionOutcome.EVICTED, result
    assert result.status in (200, 201)
    # The evicted pod is gone (or terminating) and a replacement with another uid is Ready.
    replacements = wait_ready(cluster, namespace, "web", 2, exclude_uid=victim["uid"])
    assert victim["uid"] not in {p["metadata"]["uid"] for p in replacements}
    still = pod_by_uid(cluster, namespace, victim["name"])
    assert still is None or still["metadata"].get("deletionTimestamp")


def test_dry_run_is_accepted_and_the_pod_stays(cluster: LocalCluster, kube: KubeApi, namespace: str) -> None:
    pod = deploy_ready(cluster, namespace, "web")[0]["metadata"]

    result = kube.evict(
        EvictionRequest(namespace=namespace, name=pod["name"], uid=pod["uid"], dry_run=True, reason="dry")
    )

    assert result.outcome is EvictionOutcome.DRY_RUN, result
    assert result.status in (200, 201)
    time.sleep(0.5)  # a real eviction would have set deletionTimestamp by now
    still = pod_by_uid(cluster, namespace, pod["name"])
    assert still is not None
    assert still["metadata"]["uid"] == pod["uid"]
    assert not still["metadata"].get("deletionTimestamp")


def test_a_pdb_with_no_disruptions_allowed_blocks_with_429(
    cluster: LocalCluster, kube: KubeApi, namespace: str
) -> None:
    pods = deploy_ready(cluster, namespace, "web")
    create_pdb(cluster, namespace, "web-pdb", "web", "maxUnavailable: 0")
    pod = pods[0]["metadata"]

    result = kube.evict(EvictionRequest(namespace=namespace, name=pod["name"], uid=pod["uid"]))
    dry = kube.evict(EvictionRequest(namespace=namespace, name=pod["name"], uid=pod["uid"], dry_run=True))

    assert result.outcome is EvictionOutcome.BLOCKED, result
    assert result.status == 429
    assert "disruption budget" in result.message
    assert "web-pdb needs 2 healthy pods" in result.message  # the cause, not "still being processed"
    assert len(result.message) <= 300
    assert dry.outcome is EvictionOutcome.BLOCKED  # a dry run consults the budget too
    still = pod_by_uid(cluster, namespace, pod["name"])
    assert still is not None
    assert not still["metadata"].get("deletionTimestamp")


def test_two_pdbs_covering_a_pod_are_a_500_error(
    cluster: LocalCluster, kube: KubeApi, namespace: str
) -> None:
    pod = deploy_ready(cluster, namespace, "web")[0]["metadata"]
    create_pdb(cluster, namespace, "web-a", "web", "maxUnavailable: 1")
    create_pdb(cluster, namespace, "web-b", "web", "minAvailable: 1")

    result = kube.evict(EvictionRequest(namespace=namespace, name=pod["name"], uid=pod["uid"]))

    assert result.outcome is EvictionOutcome.ERROR, result
    assert result.status == 500
    assert "more than one PodDisruptionBudget" in result.message
    assert pod_by_uid(cluster, namespace, pod["name"]) is not None


def test_a_missing_pod_is_gone(kube: KubeApi, namespace: str) -> None:
    result = kube.evict(
        EvictionRequest(namespace=namespace, name="no-such-pod", uid="00000000-0000-0000-0000-000000000000")
    )

    assert result.outcome is EvictionOutcome.GONE, result
    assert result.status == 404
    assert result.message == 'pods "no-such-pod" not found'


def test_a_uid_precondition_that_does_not_match_evicts_nothing(
    cluster: LocalCluster, kube: KubeApi, namespace: str
) -> None:
    pod = deploy_ready(cluster, namespace, "web")[0]["metadata"]
    stale_uid = "00000000-0000-0000-0000-000000000000"

    result = kube.evict(
        EvictionRequest(namespace=namespace, name=pod["name"], uid=stale_uid, grace_period_seconds=0)
    )

    assert result.outcome is EvictionOutcome.ERROR, result
    assert result.status == 409
    assert result.message.startswith(f'Operation cannot be fulfilled on Pod "{pod["name"]}"')
    assert f"the UID in the precondition ({stale_uid}) does not match" in result.message
    still = pod_by_uid(cluster, namespace, pod["name"])
    assert still is not None
    assert still["metadata"]["uid"] == pod["uid"]
    assert not still["metadata"].get("deletionTimestamp")


def test_post_event_is_visible_to_kubectl_get_events(
    cluster: LocalCluster, kube: KubeApi, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = deploy_ready(cluster, namespace, "web", replicas=1)[0]["metadata"]
    involved = {"kind": "Pod", "name": pod["name"], "uid": pod["uid"], "apiVersion": "v1"}
    note = "Evicted to move from us-east-1 (450 gCO2/kWh) to eu-north-1 (30 gCO2/kWh)"

    # A timestamp whose microseconds are exactly 0: the client's isoformat() would drop the fraction
    # and the server would answer 400; event_time() (core.kube.microtime) must keep it valid.
    class WholeSecond(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> WholeSecond:
            return cls(2026, 1, 2, 3, 4, 5, 0, tzinfo=UTC)

    assert kube.post_event(
        EventRequest(namespace=namespace, involved=involved, reason="CarbonRebalance", message=note)
    )
    long_note = "g/kWh — " * 300  # 3000 bytes of UTF-8, multi-byte characters at the cut
    with monkeypatch.context() as patch:
        patch.setattr(event_writer, "datetime", WholeSecond)  # where event_time() reads the clock
        assert kube.post_event(
            EventRequest(
                namespace=namespace,
                involved=involved,
                reason="CarbonRebalanceSkipped",
                message=long_note,
                event_type="Warning",
                action="Skip",
            )
        )
    # Failure is a False, not an exception.
    assert not kube.post_event(
        EventRequest(
            namespace=f"{namespace}-missing", involved=involved, reason="CarbonRebalance", message=note
        )
    )

    table = cluster.kubectl("get", "events", "-n", namespace)
    assert "CarbonRebalance" in table
    events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json"))["items"]
    ours = {e["reason"]: e for e in events if e.get("reportingComponent") == "ecopulse.io/rebalancer"}
    assert set(ours) == {"CarbonRebalance", "CarbonRebalanceSkipped"}, events
    event = ours["CarbonRebalance"]
    assert event["message"] == note
    assert event["type"] == "Normal"
    assert event["action"] == "Evict"
    assert event["reportingInstance"] == "e2e-rebalancer-0"
    assert event["involvedObject"] == {**involved, "namespace": namespace}
    assert event["metadata"]["name"].startswith(f"{pod['name']}-")
    skipped = ours["CarbonRebalanceSkipped"]
    assert skipped["type"] == "Warning"
    assert skipped["action"] == "Skip"
    assert len(skipped["message"].encode()) <= 1024
    assert skipped["message"].startswith("g/kWh — g/kWh")
    assert skipped["eventTime"] == "2026-01-02T03:04:05.000001Z"
