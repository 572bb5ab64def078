"""Issue 29: a misspelt ecopulse.io/ key in a workload's pod template is warned at apply, over real TLS."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from tests.conftest import StartWebhook, Webhook
from tests.integration.test_webhook import pod, review

MISSPELT = {"ecopulse.io/allowed-region": "eu-north-1"}


@pytest.fixture
def webhook(start_webhook: StartWebhook) -> Webhook:
    started = start_webhook()
    started.wait_ready()
    return started


def workload(kind: str, annotations: dict[str, str]) -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": "web"}, "annotations": annotations}, "spec": pod()["spec"]}
    spec: dict[str, Any] = {"template": template}
    if kind == "CronJob":
        spec = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}
    group = "batch" if kind in ("Job", "CronJob") else "apps"
    return {"apiVersion": f"{group}/v1", "kind": kind, "metadata": {"name": "web"}, "spec": spec}


def warn(webhook: Webhook, obj: dict[str, Any], *, operation: str = "CREATE", **kw: Any) -> dict[str, Any]:
    group = obj["apiVersion"].split("/")[0]
    body = review(obj, kind=obj["kind"], group=group, operation=operation, **kw)
    with webhook.client() as client:
        answer = client.post("/warn-templates?timeout=2s", json=body)
    assert answer.status_code == 200, answer.text
    response: dict[str, Any] = answer.json()["response"]
    assert response["uid"] == body["request"]["uid"]
    assert response["allowed"] is True
    assert "patch" not in response and "patchType" not in response  # never a patch
    return response


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "Job", "CronJob"])
@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_a_misspelt_template_key_is_warned(webhook: Webhook, kind: str, operation: str) -> None:
    response = warn(webhook, workload(kind, MISSPELT), operation=operation)
    (warning,) = response["warnings"]
    assert warning.startswith("eco-pulse: ecopulse.io/allowed-region: unknown annotation")
    assert "did you mean ecopulse.io/allowed-regions?" in warning


def test_a_bad_value_is_warned_and_a_good_template_gets_nothing(webhook: Webhook) -> None:
    bad = warn(webhook, workload("Deployment", {"ecopulse.io/max-latency-ms": "fast"}))
    assert any("ecopulse.io/max-latency-ms" in w for w in bad["warnings"])
    good = warn(webhook, workload("Deployment", {"ecopulse.io/allowed-regions": "eu-north-1"}))
    assert "warnings" not in good
    assert "warnings" not in warn(webhook, workload("Deployment", {"team": "shop"}))


def test_opted_out_and_system_templates_are_not_warned(webhook: Webhook) -> None:
    opted_out = workload("Deployment", {**MISSPELT, "ecopulse.io/opt-out": "true"})
    assert "warnings" not in warn(webhook, opted_out)
    assert "warnings" not in warn(webhook, workload("Deployment", MISSPELT), namespace="kube-system")


def test_other_kinds_and_odd_objects_are_allowed_without_warnings(webhook: Webhook) -> None:
    daemonset = workload("Deployment", MISSPELT)
    daemonset["kind"] = "DaemonSet"  # its pods are never placed
    assert "warnings" not in warn(webhook, daemonset)
    broken = copy.deepcopy(workload("Deployment", MISSPELT))
    broken["spec"]["template"] = "not an object"
    assert "warnings" not in warn(webhook, broken)
    assert "warnings" not in warn(webhook, workload("Deployment", MISSPELT), operation="DELETE")


def test_a_malformed_review_is_a_400(webhook: Webhook) -> None:
    with webhook.client() as client:
        answer = client.post("/warn-templates", content=b"{not json")
    assert answer.status_code == 400


def test_each_warned_template_is_one_log_line(webhook: Webhook, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ecopulse.webhook")
    response = warn(webhook, workload("Deployment", MISSPELT))
    assert response["warnings"]
    (line,) = [r for r in caplog.records if r.getMessage() == "template warnings"]
    assert (
        line.__dict__["object"] == "apps/v1/Deployment/" and line.__dict__["warnings"] == response["warnings"]
    )


def test_an_oversized_body_is_a_413_as_for_mutate(webhook: Webhook) -> None:
    with webhook.client() as client:
        answer = client.post("/warn-templates", content=b" " * (8 * 1024 * 1024))
    assert answer.status_code == 413
