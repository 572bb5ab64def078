"""When a held Job is released, where to, and the one PATCH (rebalancer.release)."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.deferral import HourlyForecast, hour_floor
from core.deferral_hints import GATE_NAME, KUEUE_GATE_ANNOTATION, job_facts, stamp
from core.policy import EMPTY_POLICY_SET
from rebalancer.release import (
    Release,
    ReleaseReason,
    plan_releases,
    release_overdue,
    release_patch,
)
from tests.unit.test_job_hold import CONFIG

CREATED = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)


def held_job(
    name: str = "train",
    *,
    release_by: datetime = CREATED + timedelta(hours=4, minutes=50),
    kueue: bool = False,
    template_spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    annotations = {
        "ecopulse.io/finish-within": "6h",
        "ecopulse.io/deadline": stamp(CREATED + timedelta(hours=6)),
        "ecopulse.io/expected-runtime-hours": "1",
        "ecopulse.io/held-at": stamp(CREATED),
        "ecopulse.io/release-by": stamp(release_by),
    }
    labels: dict[str, str] = {}
    spec: dict[str, Any] = {
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": template_spec
            or {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "resources": {"requests": {"cpu": "8"}}}],
            },
        },
        "suspend": True,
    }
    if kueue:
        labels["kueue.x-k8s.io/queue-name"] = "q"
        annotations[KUEUE_GATE_ANNOTATION] = f"example.com/other,{GATE_NAME}"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": f"uid-{name}",
            "labels": labels,
            "annotations": annotations,
            "creationTimestamp": stamp(CREATED),
        },
        "spec": spec,
    }


def forecasts(now: datetime, *, green_now: bool) -> list[HourlyForecast]:
    """eu-north-1 green from the next hour (or already now), the others dirty throughout."""
    origin = hour_floor(now)
    found = []
    for region in ("us-east-1", "eu-west-1", "eu-north-1"):
        values = [500.0] * 8
        if region == "eu-north-1":
            values = [20.0 if green_now else 500.0] + [20.0] * 7
        found.append(
            HourlyForecast(
                region=region,
                start=origin,
                carbon_g_per_kwh=tuple(values),
                error_g_per_kwh=(0.0,) * 8,
                made_at=now,
            )
        )
    return found


def decide(jobs: list[dict[str, Any]], *, now: datetime, green_now: bool, settings: Any = CONFIG) -> Any:
    return plan_releases(
        [job_facts(j) for j in jobs],
        forecasts=forecasts(now, green_now=green_now),
        config=settings,
        namespaces={},
        policies=EMPTY_POLICY_SET,
        now=now,
    )


def test_a_held_job_waits_then_goes_at_the_green_hour_into_the_green_region() -> None:
    early = decide([held_job()], now=CREATED + timedelta(minutes=10), green_now=False)
    assert early.releases == () and len(early.waiting) == 1
    assert early.waiting[0].plan.region == "eu-north-1"
    green = decide([held_job()], now=CREATED + timedelta(hours=1, minutes=1), green_now=True)
    (release,) = green.releases
    assert release.reason is ReleaseReason.GREEN_HOUR and release.region == "eu-north-1"


def test_a_wait_whose_forecast_error_is_unknown_is_released_at_once() -> None:
    # The webhook held on the forecast as given; the release loop judges the wait by the
    # forecast's measured error, unknown here (no past forecasts): unknown means do nothing.
    strict = dataclasses.replace(CONFIG, deferral=dataclasses.replace(CONFIG.deferral, confidence_z=2.0))
    now = CREATED + timedelta(minutes=10)
    (release,) = decide([held_job()], now=now, green_now=False, settings=strict).releases
    assert release.reason is ReleaseReason.NOT_WORTH_WAITING
    assert decide([held_job()], now=now, green_now=False).releases == ()  # confidence 0: it waits


def test_release_by_is_hard_whatever_the_forecast_says() -> None:
    # The recorded release-by binds, even where the planner would still wait (its own latest
    # start is 22:50, and 22:00 is green).
    by = CREATED + timedelta(hours=3, minutes=50)
    job = held_job(release_by=by)
    # Within one cycle (CONFIG's rebalancer interval, 300 s) of release-by: the next would be late.
    (release,) = decide([job], now=by - timedelta(seconds=299), green_now=False).releases
    assert release.reason is ReleaseReason.RELEASE_BY and release.region == ""
    waiting = decide([job], now=by - timedelta(seconds=600), green_now=False)
    assert waiting.releases == () and waiting.waiting[0].plan.start == CREATED + timedelta(hours=4)


def test_overdue_holds_go_first_and_the_janitor_needs_no_signals() -> None:
    by = CREATED + timedelta(hours=1)
    jobs = [
        job_facts(held_job("a", release_by=by)),
        job_facts(held_job("b", release_by=by + timedelta(hours=1))),
    ]
    (release,) = release_overdue(jobs, now=by, reason=ReleaseReason.JANITOR)
    assert release.job.name == "a" and release.reason is ReleaseReason.JANITOR
    assert release_overdue(jobs, now=by - timedelta(seconds=1), reason=ReleaseReason.JANITOR) == ()


def test_a_job_not_held_by_us_is_never_released() -> None:
    suspended_by_user = held_job()
    del suspended_by_user["metadata"]["annotations"]["ecopulse.io/held-at"]
    started = held_job()
    started["status"] = {"startTime": stamp(CREATED)}
    for obj in (suspended_by_user, started):
        assert decide([obj], now=CREATED + timedelta(hours=5), green_now=True).releases == ()
        assert (
            release_overdue([job_facts(obj)], now=CREATED + timedelta(days=1), reason=ReleaseReason.JANITOR)
            == ()
        )


@settings(max_examples=30, deadline=None)
@given(order=st.permutations(["a", "b", "c", "d"]), minutes=st.integers(0, 300), green_now=st.booleans())
def test_the_same_answer_whatever_the_input_order(order: list[str], minutes: int, green_now: bool) -> None:
    now = CREATED + timedelta(minutes=minutes)
    jobs = [held_job(name, release_by=CREATED + timedelta(hours=i + 1)) for i, name in enumerate("abcd")]
    by_name = {j["metadata"]["name"]: j for j in jobs}
    first = decide(jobs, now=now, green_now=green_now)
    second = decide([by_name[name] for name in order], now=now, green_now=green_now)
    assert first == second


def apply(obj: dict[str, Any], patch: list[dict[str, object]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(obj), json.loads(json.dumps(patch)))
    return result


def test_the_release_patch_unsuspends_pins_the_region_and_records_it() -> None:
    obj = held_job()
    now = CREATED + timedelta(hours=1)
    patch = release_patch(
        job_facts(obj),
        release=Release(job=job_facts(obj), reason=ReleaseReason.GREEN_HOUR, region="eu-north-1"),
        now=now,
    )
    released = apply(obj, patch)
    assert released["spec"]["suspend"] is False
    template = released["spec"]["template"]
    assert template["spec"]["nodeSelector"] == {"topology.kubernetes.io/region": "eu-north-1"}
    assert template["metadata"]["annotations"] == {"ecopulse.io/preferred-region": "eu-north-1"}
    annotations = released["metadata"]["annotations"]
    assert annotations["ecopulse.io/released-at"] == stamp(now)
    assert annotations["ecopulse.io/decision"].startswith("released (green-hour) into eu-north-1")
    # The user released it in between: the test op fails and nothing is written.
    by_hand = copy.deepcopy(obj)
    by_hand["spec"]["suspend"] = False
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        apply(by_hand, patch)


def test_a_release_keeps_the_users_node_selector_and_never_pins_a_constrained_template() -> None:
    spec = {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c"}]}
    obj = held_job(template_spec=spec)
    release = Release(job=job_facts(obj), reason=ReleaseReason.GREEN_HOUR, region="eu-west-1")
    released = apply(obj, release_patch(job_facts(obj), release=release, now=CREATED))
    assert released["spec"]["template"]["spec"]["nodeSelector"] == {
        "disk": "ssd",
        "topology.kubernetes.io/region": "eu-west-1",
    }
    pinned = held_job(
        template_spec={"nodeSelector": {"topology.kubernetes.io/region": "us-east-1"}, "containers": []}
    )
    (release,) = decide([pinned], now=CREATED + timedelta(hours=5), green_now=True).releases
    assert release.region == ""  # the user's own region stays the only constraint


def test_a_kueue_release_removes_only_our_gate() -> None:
    obj = held_job(kueue=True)
    release = Release(job=job_facts(obj), reason=ReleaseReason.RELEASE_BY)
    released = apply(obj, release_patch(job_facts(obj), release=release, now=CREATED))
    assert released["spec"]["suspend"] is True  # Kueue's to lift once it admits
    assert released["metadata"]["annotations"][KUEUE_GATE_ANNOTATION] == "example.com/other"
    alone = held_job(kueue=True)
    alone["metadata"]["annotations"][KUEUE_GATE_ANNOTATION] = GATE_NAME
    release = Release(job=job_facts(alone), reason=ReleaseReason.RELEASE_BY)
    cleared = apply(alone, release_patch(job_facts(alone), release=release, now=CREATED))
    assert KUEUE_GATE_ANNOTATION not in cleared["metadata"]["annotations"]
