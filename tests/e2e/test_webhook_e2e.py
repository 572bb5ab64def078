"""The webhook on the real control plane: the real API server calls it, the real scheduler places pods."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.cluster import REGION_LABEL, LocalCluster

PLAIN_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {labels}{annotations}}}
    spec:
      containers:
        - name: app
          image: registry.example/{name}:1.0
          resources: {{requests: {{cpu: 250m, memory: 256Mi}}}}
"""


def deployment(
    name: str,
    namespace: str,
    *,
    replicas: int = 3,
    annotations: dict[str, str] | None = None,
    node_selector: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> str:
    extra = f", annotations: {json.dumps(annotations)}" if annotations else ""
    text = PLAIN_DEPLOYMENT.format(
        name=name,
        namespace=namespace,
        replicas=replicas,
        labels=json.dumps({"app": name, **(labels or {})}),
        annotations=extra,
    )
    if node_selector:
        text += f"      nodeSelector: {json.dumps(node_selector)}\n"
    return text


def pods(cluster: LocalCluster, namespace: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        cluster.kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json")
    )["items"]
    return items


def region_of_nodes(cluster: LocalCluster) -> dict[str, str]:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json"))["items"]
    return {n["metadata"]["name"]: n["metadata"]["labels"][REGION_LABEL] for n in nodes}


def wait_scheduled(
    cluster: LocalCluster, namespace: str, app: str, count: int, timeout_seconds: float = 60
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        current = [p for p in pods(cluster, namespace, app) if not p["metadata"].get("deletionTimestamp")]
        if len(current) >= count and all(p["spec"].get("nodeName") for p in current):
            return current
        time.sleep(0.25)
    raise AssertionError(
        f"{app}: {count} pods not scheduled in {timeout_seconds}s: {cluster.kubectl('get', 'pods', '-n', namespace, '-o', 'wide')}"
    )


@pytest.fixture
def namespace(cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "e2e-" + request.node.name.replace("_", "-")[5:40].strip("-").lower()
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def grid(cluster: LocalCluster) -> Iterator[None]:
    """Tests that edit the mock grid put the original back."""
    original = cluster.config_file.read_text()
    yield
    cluster.config_file.write_text(original)
    wait_for_decision_region(cluster, "eu-north-1")


def wait_for_decision_region(cluster: LocalCluster, region: str, timeout_seconds: float = 30) -> None:
    """Poll the webhook with a throwaway server-side dry-run pod until it prefers ``region``."""
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "grid-probe", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "registry.example/probe:1"}]},
    }
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        out = json.loads(
            cluster.kubectl(
                "create", "--dry-run=server", "-o", "json", "-f", "-", input_text=json.dumps(probe)
            )
        )
        if out["metadata"].get("annotations", {}).get("ecopulse.io/preferred-region") == region:
            return
        time.sleep(0.5)
    raise AssertionError(f"the webhook did not come to prefer {region} within {timeout_seconds}s")


def test_a_plain_deployment_lands_in_the_greenest_region(cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl("apply", "-f", "-", input_text=deployment("web", namespace))
    placed = wait_scheduled(cluster, namespace, "web", 3)
    regions = region_of_nodes(cluster)
    for pod in placed:
        annotations = pod["metadata"]["annotations"]
        assert annotations["ecopulse.io/preferred-region"] == "eu-north-1"
        assert "mock" in annotations["ecopulse.io/decision"]
        terms = pod["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert terms[0]["weight"] == 100
        assert terms[0]["preference"]["matchExpressions"][0]["values"] == ["eu-north-1"]
        assert regions[pod["spec"]["nodeName"]] == "eu-north-1", pod["spec"]["nodeName"]


def test_changing_the_mock_grid_changes_where_the_next_pods_go(
    cluster: LocalCluster, namespace: str, grid: None
) -> None:
    config = cluster.config_file.read_text()
    cluster.config_file.write_text(
        config.replace(
            "us-east-1: 450, eu-west-1: 300, eu-north-1: 30", "us-east-1: 20, eu-west-1: 300, eu-north-1: 500"
        )
    )
    wait_for_decision_region(cluster, "us-east-1")
    cluster.kubectl("apply", "-f", "-", input_text=deployment("after", namespace))
    regions = region_of_nodes(cluster)
    for pod in wait_scheduled(cluster, namespace, "after", 3):
        assert pod["metadata"]["annotations"]["ecopulse.io/preferred-region"] == "us-east-1"
        assert regions[pod["spec"]["nodeName"]] == "us-east-1"


def test_an_opted_out_namespace_is_never_sent_to_the_webhook(cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl("label", "namespace", namespace, "ecopulse.io/opt-out=true")
    cluster.kubectl("apply", "-f", "-", input_text=deployment("quiet", namespace, replicas=2))
    for pod in wait_scheduled(cluster, namespace, "quiet", 2):
        assert "ecopulse.io/preferred-region" not in pod["metadata"].get("annotations", {})
        assert "affinity" not in pod["spec"]


def test_namespace_annotations_refine_the_choice(cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl("annotate", "namespace", namespace, "ecopulse.io/allowed-regions=eu-west-1,us-east-1")
    time.sleep(1)  # the webhook learns of it through its namespace watch
    cluster.kubectl("apply", "-f", "-", input_text=deployment("scoped", namespace, replicas=2))
    regions = region_of_nodes(cluster)
    for pod in wait_scheduled(cluster, namespace, "scoped", 2):
        assert pod["metadata"]["annotations"]["ecopulse.io/preferred-region"] == "eu-west-1"
        assert regions[pod["spec"]["nodeName"]] == "eu-west-1"


def test_an_opted_out_pod_is_left_alone(cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input_text=deployment("mine", namespace, replicas=2, annotations={"ecopulse.io/opt-out": "true"}),
    )
    for pod in wait_scheduled(cluster, namespace, "mine", 2):
        assert "ecopulse.io/preferred-region" not in pod["metadata"]["annotations"]
        assert "affinity" not in pod["spec"]


def test_a_pod_pinned_by_its_owner_keeps_its_region_and_gets_a_warning(
    cluster: LocalCluster, namespace: str
) -> None:
    pinned = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pinned", "namespace": namespace},
        "spec": {
            "nodeSelector": {REGION_LABEL: "us-east-1"},
            "containers": [{"name": "c", "image": "registry.example/pinned:1"}],
        },
    }
    done = cluster.kubectl_result("apply", "-f", "-", input_text=json.dumps(pinned))
    assert "region left to you" in done.stderr
    created = json.loads(cluster.kubectl("get", "pod", "pinned", "-n", namespace, "-o", "json"))
    assert "affinity" not in created["spec"]


def metric_value(cluster: LocalCluster, name: str, **labels: str) -> float:
    text = (
        urllib.request.urlopen(f"http://127.0.0.1:{cluster.ports['webhook_metrics']}/metrics", timeout=5)
        .read()
        .decode()
    )
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_the_real_scheduler_calls_the_extender_and_places_unmutated_pods_in_the_greenest_region(
    cluster: LocalCluster, namespace: str
) -> None:
    cluster.kubectl("delete", "mutatingwebhookconfiguration", "eco-pulse")
    try:
        before = metric_value(
            cluster, "ecopulse_extender_requests_total", verb="prioritize", outcome="decided"
        )
        cluster.kubectl("apply", "-f", "-", input_text=deployment("extended", namespace, replicas=3))
        regions = region_of_nodes(cluster)
        for pod in wait_scheduled(cluster, namespace, "extended", 3):
            assert "ecopulse.io/preferred-region" not in pod["metadata"].get("annotations", {})  # not mutated
            assert "affinity" not in pod["spec"]
            assert regions[pod["spec"]["nodeName"]] == "eu-north-1"
        assert (
            metric_value(cluster, "ecopulse_extender_requests_total", verb="prioritize", outcome="decided")
            >= before + 3
        )
        assert (
            metric_value(cluster, "ecopulse_extender_requests_total", verb="filter", outcome="decided") >= 3
        )
        assert '"msg":"extender decision"' in (cluster.logs / "webhook.log").read_text()
    finally:
        cluster.register_webhook()


def create_pod_timed(cluster: LocalCluster, namespace: str, name: str) -> float:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "registry.example/x:1"}]},
    }
    started = time.monotonic()
    cluster.kubectl("create", "-f", "-", input_text=json.dumps(pod))
    return time.monotonic() - started


def wait_pod_scheduled(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pod: dict[str, Any] = json.loads(cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json"))
        if pod["spec"].get("nodeName"):
            return pod
        time.sleep(0.25)
    raise AssertionError(f"pod {name} not scheduled")


def test_fail_open_with_the_webhook_process_killed(cluster: LocalCluster, namespace: str) -> None:
    # The same process is the extender: the scheduler must carry on without it (ignorable).
    cluster.stop("webhook")
    try:
        seconds = create_pod_timed(cluster, namespace, "while-down")
        assert seconds < 5, f"pod creation took {seconds:.1f}s with the webhook down"
        pod = wait_pod_scheduled(cluster, namespace, "while-down")
        assert "ecopulse.io/preferred-region" not in pod["metadata"].get("annotations", {})
    finally:
        cluster.start_webhook()


def test_fail_open_with_the_webhook_hanging(cluster: LocalCluster, namespace: str) -> None:
    cluster.pause("webhook")  # connections are accepted and never answered
    try:
        seconds = create_pod_timed(cluster, namespace, "while-hung")
        # timeoutSeconds is 2 in the shipped MutatingWebhookConfiguration
        assert seconds < 2 + 3, f"pod creation took {seconds:.1f}s with the webhook hanging"
        pod = wait_pod_scheduled(cluster, namespace, "while-hung")
        assert "ecopulse.io/preferred-region" not in pod["metadata"].get("annotations", {})
    finally:
        cluster.resume("webhook")
    # and it comes back by itself
    wait_for_decision_region(cluster, "eu-north-1")


# --- issue 19: annotations a user can trust, a version to see, a webhook-down alert ---------------

WEBHOOK_NAME = "region-affinity.ecopulse.io"


def events_about(cluster: LocalCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    listed = json.loads(cluster.kubectl("get", "events.v1.events.k8s.io", "-n", namespace, "-o", "json"))
    return [e for e in listed["items"] if e.get("regarding", {}).get("name") == name]


def test_a_misspelt_annotation_warns_in_kubectl_and_leaves_an_event(
    cluster: LocalCluster, namespace: str
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "misspelt",
            "namespace": namespace,
            "annotations": {"ecopulse.io/allowed-region": "eu-north-1"},
        },
        "spec": {"containers": [{"name": "c", "image": "registry.example/misspelt:1"}]},
    }
    done = cluster.kubectl_result("apply", "-f", "-", input_text=json.dumps(pod))
    assert done.returncode == 0, done.stderr
    assert "ecopulse.io/allowed-region: unknown annotation" in done.stderr
    assert "did you mean ecopulse.io/allowed-regions?" in done.stderr
    deadline = time.monotonic() + 30
    while not (
        found := [
            e for e in events_about(cluster, namespace, "misspelt") if e["reason"] == "AnnotationIgnored"
        ]
    ):
        assert time.monotonic() < deadline, cluster.kubectl("get", "events", "-n", namespace)
        time.sleep(0.25)
    (event,) = found
    assert event["type"] == "Warning"
    assert event["reportingController"] == "ecopulse.io/webhook"
    assert event["regarding"]["kind"] == "Pod"
    assert "did you mean ecopulse.io/allowed-regions?" in event["note"]


def test_the_webhook_says_its_version(cluster: LocalCluster) -> None:
    from core.version import VERSION  # noqa: PLC0415 - the version of the code the cluster runs

    assert metric_value(cluster, "ecopulse_build_info", app="webhook", version=VERSION) == 1


def apiserver_metric(cluster: LocalCluster, metric: str, **labels: str) -> float:
    """A counter summed over its series, from the real API server's /metrics."""
    total = 0.0
    for line in cluster.kubectl("get", "--raw", "/metrics").splitlines():
        if line.startswith(metric + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def alert_expression(alert: str) -> str:
    import yaml  # noqa: PLC0415

    from tests.contract.dashboards import ALERTS  # noqa: PLC0415

    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    (rule,) = [r for r in rules if r.get("alert") == alert]
    return str(rule["expr"])


def test_killing_the_webhook_moves_the_series_the_alert_reads(cluster: LocalCluster, namespace: str) -> None:
    expression = alert_expression("EcoPulseWebhookUnreachable")
    ratio, threshold = expression.rsplit(">", 1)
    assert float(threshold) == 0.1
    fail_open = apiserver_metric(cluster, "apiserver_admission_webhook_fail_open_count", name=WEBHOOK_NAME)
    calls = apiserver_metric(cluster, "apiserver_admission_webhook_request_total", name=WEBHOOK_NAME)
    cluster.stop("webhook")
    try:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "while-down", "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "registry.example/down:1"}]},
        }
        cluster.kubectl("apply", "-f", "-", input_text=json.dumps(pod))
        created = json.loads(cluster.kubectl("get", "pod", "while-down", "-n", namespace, "-o", "json"))
        # Admitted untouched (failurePolicy Ignore), and none of our own counters could see it...
        assert "ecopulse.io/preferred-region" not in created["metadata"].get("annotations", {})
        # ...but the API server's did.
        assert (
            apiserver_metric(cluster, "apiserver_admission_webhook_fail_open_count", name=WEBHOOK_NAME)
            == fail_open + 1
        )
        assert (
            apiserver_metric(cluster, "apiserver_admission_webhook_request_total", name=WEBHOOK_NAME)
            == calls + 1
        )
        # And the rule's own expression, through Prometheus scraping that API server, turns positive.
        deadline = time.monotonic() + 60
        while not (result := cluster.prometheus_query(ratio)) or float(result[0]["value"][1]) <= 0:
            assert time.monotonic() < deadline, f"{ratio} stayed {result}"
            time.sleep(1)
        assert result[0]["metric"]["name"] == WEBHOOK_NAME
    finally:
        cluster.start_webhook()
