"""The real webhook over real TLS: uvicorn on loopback, httpx trusting the generated CA."""

from __future__ import annotations

import base64
import copy
import json
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import pytest
from prometheus_client import REGISTRY

from tests import factories
from tests.conftest import MOCK_CONFIG, StartWebhook, Webhook, issue_tls

REGION = "topology.kubernetes.io/region"


def pod(**spec: Any) -> dict[str, Any]:
    """A ReplicaSet's pod as its controller asks to create it (tests.factories.pod)."""
    return factories.pod(
        generate_name="web-7d4b9c-",
        labels={"app": "web"},
        owner=("apps/v1", "ReplicaSet", "web-7d4b9c"),
        owner_uid="u1",
        **spec,
    )


def review(
    obj: dict[str, Any] | None,
    *,
    uid: str = "705ab4f5-6393-11e8",
    operation: str = "CREATE",
    kind: str = "Pod",
    group: str = "",
    namespace: str = "shop",
    sub_resource: str | None = None,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": group, "version": "v1", "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": kind.lower() + "s"},
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "object": obj,
        "oldObject": None,
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def post(webhook: Webhook, body: dict[str, Any]) -> dict[str, Any]:
    with webhook.client() as client:
        answer = client.post("/mutate?timeout=2s", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    data: dict[str, Any] = answer.json()
    assert data["apiVersion"] == "admission.k8s.io/v1"
    assert data["kind"] == "AdmissionReview"
    assert data["response"]["uid"] == body["request"]["uid"]
    assert data["response"]["allowed"] is True
    response: dict[str, Any] = data["response"]
    return response


def patched(obj: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    assert all(op["op"] == "add" for op in ops)
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(obj), ops)
    return result


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def eventually(what: str, condition: Callable[[], bool], timeout_seconds: float = 5.0) -> None:
    """Metrics and the decision line are recorded just after the answer is on the wire."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_seconds} s"
        time.sleep(0.005)


@pytest.fixture
def webhook(start_webhook: StartWebhook) -> Webhook:
    started = start_webhook()
    started.wait_ready()
    return started


def test_plain_pod_gets_preferred_affinity_for_the_greenest_region(webhook: Webhook) -> None:
    obj = pod()
    response = post(webhook, review(obj))
    result = patched(obj, response)

    terms = result["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    ranked = [(t["preference"]["matchExpressions"][0]["values"][0], t["weight"]) for t in terms]
    assert ranked[0] == ("eu-north-1", 100)  # 30 g/kWh, equal prices
    assert [region for region, _ in ranked] == ["eu-north-1", "eu-west-1", "us-east-1"]
    assert all(1 <= weight <= 100 for _, weight in ranked)
    for term in terms:
        expression = term["preference"]["matchExpressions"][0]
        assert expression["key"] == REGION and expression["operator"] == "In"
    annotations = result["metadata"]["annotations"]
    assert annotations["ecopulse.io/preferred-region"] == "eu-north-1"
    assert "eu-north-1" in annotations["ecopulse.io/decision"]
    assert "mock" in annotations["ecopulse.io/decision"]
    # the rest of the pod is untouched
    assert result["spec"]["containers"] == obj["spec"]["containers"]
    assert result["metadata"]["ownerReferences"] == obj["metadata"]["ownerReferences"]


def test_existing_affinity_and_annotations_are_kept(webhook: Webhook) -> None:
    anti = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    }
    obj = pod(affinity=anti)
    obj["metadata"]["annotations"] = {"team": "shop", "a/b~c": "x"}
    result = patched(obj, post(webhook, review(obj)))
    assert result["spec"]["affinity"]["podAntiAffinity"] == anti["podAntiAffinity"]
    assert result["metadata"]["annotations"]["team"] == "shop"
    assert result["metadata"]["annotations"]["a/b~c"] == "x"
    assert result["metadata"]["annotations"]["ecopulse.io/preferred-region"] == "eu-north-1"


def test_a_second_pass_changes_nothing(webhook: Webhook) -> None:
    obj = pod()
    once = patched(obj, post(webhook, review(obj)))
    again = post(webhook, review(once, uid="second"))
    assert "patch" not in again


SKIPS: dict[str, tuple[Callable[[dict[str, Any]], object], dict[str, Any]]] = {
    "opted out by annotation": (
        lambda p: p["metadata"].setdefault("annotations", {}).update({"ecopulse.io/opt-out": "true"}),
        {},
    ),
    "nodeName set": (lambda p: p["spec"].update({"nodeName": "node-1"}), {}),
    "mirror pod": (
        lambda p: p["metadata"].setdefault("annotations", {}).update({"kubernetes.io/config.mirror": "abc"}),
        {},
    ),
    "daemonset pod": (
        lambda p: p["metadata"].update(
            {
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "DaemonSet",
                        "name": "ds",
                        "uid": "u",
                        "controller": True,
                    }
                ]
            }
        ),
        {},
    ),
    "update": (lambda p: None, {"operation": "UPDATE"}),
    "delete": (lambda p: None, {"operation": "DELETE"}),
    "not a pod": (lambda p: None, {"kind": "Deployment", "group": "apps"}),
    "subresource": (lambda p: None, {"sub_resource": "status"}),
    "kube-system": (lambda p: None, {"namespace": "kube-system"}),
}


@pytest.mark.parametrize("case", sorted(SKIPS))
def test_left_alone(webhook: Webhook, case: str) -> None:
    change, review_options = SKIPS[case]
    obj = pod()
    change(obj)
    response = post(webhook, review(obj, **review_options))
    assert "patch" not in response and "patchType" not in response


@pytest.mark.parametrize(
    "spec",
    [
        {"nodeSelector": {REGION: "us-east-1"}},
        {"nodeSelector": {"failure-domain.beta.kubernetes.io/region": "us-east-1"}},
        {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": REGION, "operator": "In", "values": ["eu-west-1"]}]}
                        ]
                    }
                }
            }
        },
        {
            "affinity": {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 5,
                            "preference": {
                                "matchExpressions": [
                                    {"key": REGION, "operator": "In", "values": ["eu-west-1"]}
                                ]
                            },
                        }
                    ]
                }
            }
        },
    ],
    ids=["nodeSelector", "deprecated-label", "required-affinity", "preferred-affinity"],
)
def test_user_region_constraints_are_respected_with_a_warning(webhook: Webhook, spec: dict[str, Any]) -> None:
    response = post(webhook, review(pod(**spec)))
    assert "patch" not in response
    assert any("region left to you" in w for w in response["warnings"])


def test_required_mode_ands_the_regions_into_every_term(start_webhook: StartWebhook) -> None:
    webhook = start_webhook(MOCK_CONFIG + "placement: {mode: required, requiredRegionCount: 2}\n")
    webhook.wait_ready()
    terms = [
        {"matchExpressions": [{"key": "disktype", "operator": "In", "values": ["ssd"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1", "n2"]}]},
    ]
    obj = pod(
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": copy.deepcopy(terms)}
            }
        }
    )
    result = patched(obj, post(webhook, review(obj)))
    node_affinity = result["spec"]["affinity"]["nodeAffinity"]
    new_terms = node_affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert len(new_terms) == 2  # ANDed, never a new (widening) OR term
    wanted = {"key": REGION, "operator": "In", "values": ["eu-north-1", "eu-west-1"]}
    assert new_terms[0]["matchExpressions"] == [*terms[0]["matchExpressions"], wanted]
    assert new_terms[1]["matchFields"] == terms[1]["matchFields"]
    assert new_terms[1]["matchExpressions"] == [wanted]


def test_no_fresh_signals_fails_open(start_webhook: StartWebhook, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real provider that cannot be reached: nothing is ever fresh.
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", "test-token")
    monkeypatch.setenv("ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS", "true")  # the unreachable fake is http://
    config = MOCK_CONFIG.replace(
        "  provider: mock\n",
        "  provider: electricitymaps\n  requestTimeoutSeconds: 0.2\n"
        "  electricitymaps: {baseUrl: 'http://127.0.0.1:9/v3'}\n",
    )
    webhook = start_webhook(config)
    before = metric("ecopulse_admission_fail_open_total", reason="no-fresh-signals")
    response = post(webhook, review(pod()))
    assert "patch" not in response
    assert any("admitted unchanged" in w for w in response["warnings"])
    eventually(
        "fail-open counted",
        lambda: metric("ecopulse_admission_fail_open_total", reason="no-fresh-signals") == before + 1,
    )


def test_own_deadline_fails_open(start_webhook: StartWebhook) -> None:
    webhook = start_webhook(deadline_seconds=1e-9)
    webhook.wait_ready()
    before = metric("ecopulse_admission_fail_open_total", reason="deadline-exceeded")
    response = post(webhook, review(pod()))
    assert "patch" not in response
    eventually(
        "fail-open counted",
        lambda: metric("ecopulse_admission_fail_open_total", reason="deadline-exceeded") == before + 1,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (
            b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}',
            "expected apiVersion",
        ),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request is missing"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"operation": "CREATE"}}',
            "request.uid",
        ),
        (b"\xff\xfe\x00", "not JSON"),
        (b"", "not JSON"),
    ],
)
def test_malformed_body_is_a_400_that_says_why(webhook: Webhook, body: bytes, message: str) -> None:
    with webhook.client() as client:
        answer = client.post("/mutate", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert message in answer.json()["message"]


def test_oversized_body_is_a_413(webhook: Webhook) -> None:
    with webhook.client() as client:
        answer = client.post("/mutate", content=b" " * (8 * 1024 * 1024))
    assert answer.status_code == 413
    assert "larger than" in answer.json()["message"]


def test_probes(webhook: Webhook) -> None:
    with webhook.client() as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["provider"] == "mock"
    assert ready["freshRegions"] == ["eu-north-1", "eu-west-1", "us-east-1"]


def test_config_reload_changes_the_next_decision_and_a_bad_edit_is_refused(webhook: Webhook) -> None:
    before = patched(pod(), post(webhook, review(pod())))
    assert before["metadata"]["annotations"]["ecopulse.io/preferred-region"] == "eu-north-1"
    webhook.config_file.write_text(MOCK_CONFIG.replace("us-east-1: 450", "us-east-1: 5"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        result = patched(pod(), post(webhook, review(pod())))
        if result["metadata"]["annotations"]["ecopulse.io/preferred-region"] == "us-east-1":
            break
        time.sleep(0.05)
    else:
        raise AssertionError("config change did not reach the decision")

    webhook.config_file.write_text("carbon: {provider: sometimes}\n")
    time.sleep(0.3)  # several watcher periods
    assert webhook.running.config.last_error is not None
    assert "regions" in webhook.running.config.last_error
    result = patched(pod(), post(webhook, review(pod())))
    assert result["metadata"]["annotations"]["ecopulse.io/preferred-region"] == "us-east-1"


def test_tls_key_pair_is_reloaded_without_restart(webhook: Webhook, tmp_path: Path) -> None:
    with webhook.client() as client:
        assert client.get("/healthz").status_code == 200
    old_ca = tmp_path / "old-ca.crt"
    old_ca.write_bytes(webhook.ca_file.read_bytes())
    new_ca = issue_tls(webhook.tls_dir, common_name="rotated CA")
    deadline = time.monotonic() + 10
    while True:
        try:
            with webhook.client(ca_file=new_ca) as client:
                assert client.get("/healthz").status_code == 200
            break
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with pytest.raises(httpx.ConnectError), webhook.client(ca_file=old_ca) as client:
        # The old CA no longer vouches for what the server presents.
        client.get("/healthz")


def test_a_broken_key_pair_is_refused_and_the_old_one_kept(webhook: Webhook) -> None:
    before = metric("ecopulse_tls_reloads_total", result="invalid")
    (webhook.tls_dir / "tls.key").write_text(
        "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n"
    )
    deadline = time.monotonic() + 10
    while metric("ecopulse_tls_reloads_total", result="invalid") == before:
        assert time.monotonic() < deadline, "broken key pair was not noticed"
        time.sleep(0.05)
    with webhook.client() as client:
        assert client.get("/healthz").status_code == 200


def test_every_decision_is_one_json_log_line(webhook: Webhook, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ecopulse.webhook")
    post(webhook, review(pod(), uid="logged-uid"))

    def decision_lines() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "admission decision"]

    eventually("decision logged", lambda: len(decision_lines()) == 1)
    records = decision_lines()
    record = records[0].__dict__
    assert record["uid"] == "logged-uid"
    assert record["namespace"] == "shop"
    assert record["pod"] == "web-7d4b9c-*"
    assert record["decision"] == "mutated"
    assert record["region"] == "eu-north-1"
    assert record["reason"] == "placed"
    assert record["signals"]["eu-north-1"]["carbon_g_per_kwh"] == 30.0


def test_the_serving_certificate_is_verified(webhook: Webhook, tmp_path: Path) -> None:
    other_ca = issue_tls(tmp_path / "other", common_name="someone else")
    context = ssl.create_default_context(cafile=str(other_ca))
    with pytest.raises(httpx.ConnectError), httpx.Client(base_url=webhook.base_url, verify=context) as client:
        client.get("/healthz")


def test_made_up_namespaces_cannot_grow_the_metrics_without_bound(webhook: Webhook) -> None:
    # Issue 20, defect 5: anyone who reaches the port can name any namespace in a review.
    from webhook.metrics import MAX_NAMESPACE_LABEL_VALUES  # noqa: PLC0415

    def namespaces() -> set[str]:
        return {
            sample.labels["namespace"]
            for family in REGISTRY.collect()
            if family.name == "ecopulse_placement_decisions"
            for sample in family.samples
        }

    count = MAX_NAMESPACE_LABEL_VALUES + 100
    with webhook.client() as client:
        for i in range(count):
            answer = client.post("/mutate", json=review(pod(), uid=f"u-{i}", namespace=f"made-up-{i}"))
            assert answer.status_code == 200
    eventually("every review recorded", lambda: "other" in namespaces(), timeout_seconds=30)
    assert len(namespaces()) <= MAX_NAMESPACE_LABEL_VALUES + 1


def test_a_misspelt_annotation_is_named_in_a_warning(webhook: Webhook) -> None:
    # Issue 19: ecopulse.io/allowed-region (no s) would otherwise drop a residency constraint silently.
    obj = pod()
    obj["metadata"]["annotations"] = {"ecopulse.io/allowed-region": "eu-north-1"}
    response = post(webhook, review(obj))
    assert any(
        "ecopulse.io/allowed-region: unknown annotation" in w and "ecopulse.io/allowed-regions" in w
        for w in response.get("warnings", [])
    ), response
