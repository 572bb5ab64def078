"""/mutate-job through the real webhook (uvicorn, TLS): answered like /mutate, and fail-safe.

Without a cluster the webhook cannot see the releaser's Lease, so it must never hold a Job: a
held Job nobody releases would wait until its release-by for nothing.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import REGISTRY

from tests.conftest import MOCK_CONFIG, StartWebhook
from tests.integration.test_webhook import review
from tests.unit.test_job_hold import job

LIVE = MOCK_CONFIG + "rebalancer: {dryRun: false}\n"


def admissions(outcome: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "ecopulse_deferral_admissions_total", {"outcome": outcome, "reason": reason}
    )
    return value or 0.0


def post(start_webhook: StartWebhook, body: Any) -> Any:
    webhook = start_webhook(LIVE)
    webhook.wait_ready()
    with webhook.client() as client:
        return client.post("/mutate-job", json=body)


def test_without_a_releaser_a_job_with_a_deadline_is_admitted_unchanged(start_webhook: StartWebhook) -> None:
    before = admissions("not-held", "no-releaser")
    answer = post(start_webhook, review(job(), kind="Job", group="batch", namespace="ml"))
    assert answer.status_code == 200
    response = answer.json()["response"]
    assert response["uid"] == "705ab4f5-6393-11e8" and response["allowed"] is True
    assert "patch" not in response
    assert response["auditAnnotations"] == {"decision": "not-held:no-releaser"}
    # Counted after the answer is on the wire (a background task).
    deadline = time.monotonic() + 5
    while admissions("not-held", "no-releaser") < before + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert admissions("not-held", "no-releaser") == before + 1


def test_a_malformed_review_is_a_400(start_webhook: StartWebhook) -> None:
    answer = post(start_webhook, {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})
    assert answer.status_code == 400
