"""The hold at a Job's CREATE (webhook.admission.job): when, and only when, waiting pays and
someone will release. The patches are applied as the API server applies them (jsonpatch)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonpatch
import msgspec
import pytest

from core.config import EcoPulseConfiguration, parse_config_text
from core.deferral_hints import GATE_NAME, KUEUE_GATE_ANNOTATION, NotDeferred
from core.managed import Unmanaged
from core.model import CarbonSignal, ForecastPoint, NamespaceInfo, SignalSnapshot
from tests.factories import ONE_PRICE, THREE_REGIONS
from webhook.admission.job import JobSkip, decide_job
from webhook.admission.review import parse_review

NOW = datetime(2026, 12, 7, 18, 20, tzinfo=UTC)


def config(extra: str = "") -> EcoPulseConfiguration:
    return parse_config_text(
        "apiVersion: ecopulse.io/v1alpha1\nkind: EcoPulseConfiguration\n"
        + THREE_REGIONS
        + ONE_PRICE
        + "economics: {carbonPriceUsdPerTonne: 1000}\n"
        + "rebalancer: {dryRun: false}\n"
        + "deferral: {minBenefitUsd: 0, safetyMarginSeconds: 600, confidenceZ: 0}\n"
        + extra
    )


CONFIG = config()


def signals(now: float, later: float, *, hours: int = 6, region: str = "eu-north-1") -> SignalSnapshot:
    """Every region at ``now`` g/kWh; ``region`` at ``later`` from the next hour on (a perfect forecast)."""
    carbon = {}
    for name in ("us-east-1", "eu-west-1", "eu-north-1"):
        forecast = tuple(
            ForecastPoint(
                at=NOW.replace(minute=0) + timedelta(hours=k),
                carbon_g_per_kwh=later if name == region else now,
            )
            for k in range(1, hours + 1)
        )
        carbon[name] = CarbonSignal(
            region=name,
            zone=name,
            carbon_g_per_kwh=now,
            observed_at=NOW,
            fetched_at=NOW,
            source="test",
            forecast=forecast,
        )
    return SignalSnapshot(taken_at=NOW, provider="test", carbon=carbon)


GREEN_LATER = signals(500, 20)
FLAT = signals(500, 500)


def job(
    annotations: dict[str, str] | None = None,
    *,
    labels: dict[str, str] | None = None,
    namespace: str = "ml",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "train",
            "namespace": namespace,
            "labels": labels or {},
            "annotations": {
                "ecopulse.io/finish-within": "6h",
                "ecopulse.io/expected-runtime-hours": "1",
                **(annotations or {}),
            },
        },
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "8"}}}],
                }
            },
            **spec,
        },
    }


def review(obj: dict[str, Any], *, kind: str = "Job", group: str = "batch", operation: str = "CREATE") -> Any:
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u1",
            "operation": operation,
            "kind": {"group": group, "version": "v1", "kind": kind},
            "namespace": obj["metadata"]["namespace"],
            "object": obj,
        },
    }
    return parse_review(msgspec.json.encode(body))


def decide(obj: dict[str, Any], *, snapshot: SignalSnapshot = GREEN_LATER, **options: Any) -> Any:
    options.setdefault("config", CONFIG)
    options.setdefault("releaser_live", True)
    return decide_job(review(obj), signals=snapshot, now=NOW, **options)


def applied(obj: dict[str, Any], outcome: Any) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(obj, json.loads(json.dumps(outcome.patch)))
    return result


def test_a_job_with_a_deadline_is_held_for_the_green_hour() -> None:
    original = job()
    outcome = decide(original)
    assert outcome.held and outcome.reason is JobSkip.HELD
    assert outcome.plan.region == "eu-north-1" and outcome.plan.start == datetime(2026, 12, 7, 19, tzinfo=UTC)
    held = applied(original, outcome)
    assert held["spec"]["suspend"] is True
    annotations = held["metadata"]["annotations"]
    assert annotations["ecopulse.io/held-at"] == "2026-12-07T18:20:00Z"
    # release-by = creation + 6h - 1h run - 600 s margin
    assert annotations["ecopulse.io/release-by"] == "2026-12-07T23:10:00Z"
    assert annotations["ecopulse.io/deadline"] == "2026-12-08T00:20:00Z"  # resolved, written once
    assert annotations["ecopulse.io/decision"].startswith("held: greener-hour-ahead: start 2026-12-07T19:00Z")
    assert not outcome.warnings


@pytest.mark.parametrize(
    ("obj", "options", "reason", "warned"),
    [
        (job(), {"snapshot": FLAT}, NotDeferred.NOT_WORTH_WAITING, False),
        (job({"ecopulse.io/finish-within": "30m"}), {}, NotDeferred.DEADLINE_TOO_CLOSE, False),
        (job(suspend=True), {}, NotDeferred.USER_SUSPENDED, False),
        (job(managedBy="example.com/mpi"), {}, NotDeferred.MANAGED_BY, False),
        (job({"ecopulse.io/expected-runtime-hours": "x"}), {}, NotDeferred.INVALID, True),
        (job({"ecopulse.io/finish-within": "soon"}), {}, NotDeferred.INVALID, True),
        (job({"ecopulse.io/held-at": "2026-12-07T18:00:00Z"}), {}, JobSkip.ALREADY_HELD, False),
        (job(), {"releaser_live": False}, NotDeferred.NO_RELEASER, False),
        (
            job(),
            {"config": config("rebalancer: {dryRun: true}\n".replace("rebalancer", "fleet"))},
            None,
            False,
        ),
        (job(), {"snapshot": SignalSnapshot(taken_at=NOW, provider="none")}, NotDeferred.NO_FORECAST, False),
        (job(namespace="kube-system"), {}, Unmanaged.SYSTEM_NAMESPACE, False),
        (job({"ecopulse.io/opt-out": "true"}), {}, Unmanaged.OPTED_OUT, False),
    ],
)
def test_never_a_hold_that_no_one_asked_for_or_no_one_would_release(
    obj: dict[str, Any], options: dict[str, Any], reason: Any, warned: bool
) -> None:
    outcome = decide(obj, **options)
    if reason is None:  # the control row: the same Job, held
        assert outcome.held
        return
    assert not outcome.held and outcome.reason is reason
    assert outcome.patch == []
    assert bool(outcome.warnings) is warned


def test_a_dry_run_rebalancer_means_no_hold() -> None:
    dry = parse_config_text(
        "apiVersion: ecopulse.io/v1alpha1\nkind: EcoPulseConfiguration\n" + THREE_REGIONS + ONE_PRICE
    )
    assert dry.rebalancer.dry_run
    assert decide(job(), config=dry).reason is NotDeferred.NO_RELEASER


def test_without_a_runtime_the_job_runs_now_with_a_warning() -> None:
    obj = job()
    del obj["metadata"]["annotations"]["ecopulse.io/expected-runtime-hours"]
    outcome = decide(obj)
    assert outcome.reason is NotDeferred.NO_RUNTIME
    assert "expected-runtime-hours" in outcome.warnings[0]


def test_jobs_without_a_deadline_and_other_kinds_pass_untouched() -> None:
    plain = job()
    plain["metadata"]["annotations"] = {}
    assert decide(plain).reason is JobSkip.NOT_DEFERRABLE
    assert (
        decide_job(
            review(job(), kind="Pod", group=""),
            signals=GREEN_LATER,
            config=CONFIG,
            now=NOW,
            releaser_live=True,
        ).reason
        is JobSkip.NOT_A_JOB
    )
    assert (
        decide_job(
            review(job(), operation="UPDATE"), signals=GREEN_LATER, config=CONFIG, now=NOW, releaser_live=True
        ).reason
        is JobSkip.NOT_CREATE
    )


def test_a_namespace_default_makes_its_jobs_deferrable() -> None:
    obj = job()
    obj["metadata"]["annotations"] = {"ecopulse.io/expected-runtime-hours": "1"}
    info = NamespaceInfo(hint_annotations={"ecopulse.io/finish-within": "6h"})
    outcome = decide(obj, namespace_info=info)
    assert outcome.held
    assert applied(obj, outcome)["metadata"]["annotations"]["ecopulse.io/deadline"] == "2026-12-08T00:20:00Z"


def test_kueue_jobs_are_gated_never_suspended() -> None:
    kueue = job(labels={"kueue.x-k8s.io/queue-name": "user-queue"}, suspend=True)
    outcome = decide(kueue)
    assert outcome.held and outcome.kueue
    gated = applied(kueue, outcome)
    assert gated["spec"]["suspend"] is True  # Kueue's, untouched
    assert gated["metadata"]["annotations"][KUEUE_GATE_ANNOTATION] == GATE_NAME
    theirs = job({KUEUE_GATE_ANNOTATION: "example.com/quota"}, labels={"kueue.x-k8s.io/queue-name": "q"})
    both = applied(theirs, decide(theirs))
    assert both["metadata"]["annotations"][KUEUE_GATE_ANNOTATION] == f"example.com/quota,{GATE_NAME}"
    assert "suspend" not in both["spec"]
