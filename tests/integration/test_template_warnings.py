"""Issue 29: a misspelt ecopulse.io/ key in a workload's pod template is warned at apply, over real TLS."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest

from tests.conftest import StartWebhook, Webhook
from tests.integration.test_webhook import pod, review
from webhook.admission.review import parse_review
from webhook.admission.templates import FLEET_CRONJOB_WARNING, template_warnings

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


def cron_asking_deferral(annotations: dict[str, str]) -> dict[str, Any]:
    cron = workload("CronJob", {})
    cron["spec"]["jobTemplate"]["metadata"] = {"annotations": annotations}
    return cron


@pytest.mark.parametrize(
    ("annotations", "on_karmada", "warned"),
    [
        ({"ecopulse.io/finish-within": "6h", "ecopulse.io/expected-runtime-hours": "1"}, True, True),
        ({"ecopulse.io/deadline": "2030-01-01T00:00:00Z"}, True, True),
        ({"ecopulse.io/finish-within": "6h"}, False, False),  # one cluster: its Jobs are held here
        ({"ecopulse.io/expected-runtime-hours": "1"}, True, False),  # no deadline: nothing to hold
    ],
)
def test_on_karmada_a_cronjob_asking_for_deferral_is_warned_its_jobs_are_not_held(
    annotations: dict[str, str], on_karmada: bool, warned: bool
) -> None:
    body = review(cron_asking_deferral(annotations), kind="CronJob", group="batch")
    request = parse_review(json.dumps(body).encode(), max_body_bytes=1 << 20)
    found = template_warnings(
        request, known_regions=frozenset({"eu-north-1"}), namespace_info=None, on_karmada=on_karmada
    )
    assert (FLEET_CRONJOB_WARNING in found) is warned
    assert len(FLEET_CRONJOB_WARNING) <= 120
