"""/mutate-binding through the real webhook (uvicorn, TLS): a held Job's Karmada ResourceBinding
gets its scheduling suspended at CREATE, a pinned one keeps its pin at UPDATE, and everything else,
an unreadable Job included, is admitted unchanged."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import jsonpatch

from core.deferral_bindings import CHOSEN_AFFINITY, PINNED_CLUSTER_LABEL
from tests.conftest import MOCK_CONFIG, StartWebhook
from tests.unit.test_fleet_deferral import binding, held_job


def review(obj: dict[str, Any], *, operation: str = "CREATE") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "b-1",
            "kind": {"group": "work.karmada.io", "version": "v1alpha2", "kind": "ResourceBinding"},
            "resource": {"group": "work.karmada.io", "version": "v1alpha2", "resource": "resourcebindings"},
            "namespace": "ml",
            "name": obj["metadata"]["name"],
            "operation": operation,
            "userInfo": {"username": "system:admin"},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
        },
    }


def unsuspended() -> dict[str, Any]:
    raw = binding()
    del raw["spec"]["suspension"]  # as Karmada's detector creates it, from a policy without suspension
    return raw


def answer(start_webhook: StartWebhook, body: dict[str, Any], jobs: Mapping[tuple[str, str], Any]) -> Any:
    webhook = start_webhook(MOCK_CONFIG, read_job=lambda namespace, name: jobs.get((namespace, name)))
    webhook.wait_ready()
    with webhook.client() as client:
        reply = client.post("/mutate-binding", json=body)
    assert reply.status_code == 200, reply.text
    response = reply.json()["response"]
    assert response["allowed"] is True
    return response


def patched(obj: dict[str, Any], response: Any) -> dict[str, Any]:
    assert response["patchType"] == "JSONPatch"
    return jsonpatch.apply_patch(obj, json.loads(base64.b64decode(response["patch"])))  # type: ignore[no-any-return]


def test_a_held_jobs_binding_is_created_with_its_scheduling_suspended(start_webhook: StartWebhook) -> None:
    raw = unsuspended()
    response = answer(start_webhook, review(raw), {("ml", "train"): held_job()})
    assert patched(raw, response)["spec"]["suspension"] == {"scheduling": True}
    # The policy's own dispatching suspension stays.
    raw["spec"]["suspension"] = {"dispatching": True}
    response = answer(start_webhook, review(raw), {("ml", "train"): held_job()})
    assert patched(raw, response)["spec"]["suspension"] == {"dispatching": True, "scheduling": True}


def test_anything_else_is_admitted_unchanged(start_webhook: StartWebhook) -> None:
    user_suspended = held_job()
    del user_suspended["metadata"]["annotations"]["ecopulse.io/held-at"]
    other = held_job()
    other["metadata"]["uid"] = "uid-another-train"
    deployment = unsuspended()
    deployment["spec"]["resource"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "namespace": "ml",
        "name": "w",
    }
    for body, jobs, reason in [
        (review(unsuspended()), {}, "job-unknown"),  # unreadable: fail-open
        (review(unsuspended()), {("ml", "train"): user_suspended}, "job-not-held"),
        (review(unsuspended()), {("ml", "train"): other}, "job-not-held"),
        (review(deployment), {}, "not-a-job-binding"),
    ]:
        response = answer(start_webhook, body, jobs)
        assert "patch" not in response, reason
        assert response["auditAnnotations"] == {"decision": reason}


def test_a_pinned_binding_keeps_its_pin_when_the_policy_is_copied_over_it(
    start_webhook: StartWebhook,
) -> None:
    raw = binding(names=["member-us-east-1", "member-eu-west-1", "member-eu-north-1"])
    raw["metadata"]["labels"][PINNED_CLUSTER_LABEL] = "member-eu-north-1"
    raw["spec"]["placement"]["clusterAffinities"] = [
        {"affinityName": "a", "clusterNames": ["member-us-east-1"]}
    ]
    out = patched(raw, answer(start_webhook, review(raw, operation="UPDATE"), {}))
    assert out["spec"]["placement"]["clusterAffinities"] == [
        {"affinityName": CHOSEN_AFFINITY, "clusterNames": ["member-eu-north-1"]},
        {"affinityName": "a", "clusterNames": ["member-us-east-1"]},
    ]
    assert "clusterAffinity" not in out["spec"]["placement"]
    again = answer(start_webhook, review(out, operation="UPDATE"), {})
    assert "patch" not in again and again["auditAnnotations"] == {"decision": "pin-holds"}
