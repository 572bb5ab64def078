"""What a deferrable Job asks (core.deferral_hints): durations, instants, precedence, the Job's facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.deferral_hints import (
    GATE_NAME,
    DeferralIntent,
    DeferralProblem,
    NotDeferred,
    gates_without_ours,
    go_duration_seconds,
    job_facts,
    read_intent,
    rfc3339,
    slim_job,
    split_gates,
    stamp,
)
from core.policy import PolicyError, parse_spec

CREATED = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("24h", 86400.0),
        ("1h30m", 5400.0),
        ("0.5h", 1800.0),
        ("90s", 90.0),
        ("1h0m10s", 3610.0),
        ("0", 0.0),
        ("+2m", 120.0),
        ("1500ms", 1.5),
        (".5h", 1800.0),
    ],
)
def test_go_durations_read_as_go_reads_them(text: str, seconds: float) -> None:
    assert go_duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "24", "1d", "-1h", "h", "1h 30m", "1.2.3h", "one hour", "1H"])
def test_what_go_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        go_duration_seconds(text)


@given(hours=st.integers(0, 10_000), minutes=st.integers(0, 59), seconds=st.integers(0, 59))
def test_any_hms_duration_reads_back(hours: int, minutes: int, seconds: int) -> None:
    assert go_duration_seconds(f"{hours}h{minutes}m{seconds}s") == hours * 3600 + minutes * 60 + seconds


def test_rfc3339_needs_an_offset_and_stamps_round_trip() -> None:
    assert rfc3339("2026-12-08T06:00:00Z") == datetime(2026, 12, 8, 6, tzinfo=UTC)
    assert rfc3339("2026-12-08T07:00:00+01:00") == datetime(2026, 12, 8, 6, tzinfo=UTC)
    for bad in ("2026-12-08T06:00:00", "2026-12-08", "tomorrow", "2026-13-08T06:00:00Z"):
        with pytest.raises(ValueError):
            rfc3339(bad)
    assert rfc3339(stamp(CREATED)) == CREATED


def _intent(own: dict[str, str], inherited: dict[str, str] | None = None) -> Any:
    return read_intent(own, inherited or {}, created_at=CREATED)


def test_no_deadline_is_not_deferrable() -> None:
    assert _intent({}) is None
    assert _intent({"ecopulse.io/expected-runtime-hours": "2"}) is None


@pytest.mark.parametrize(
    ("own", "inherited", "deadline", "runtime"),
    [
        # finish-within from creation
        ({"ecopulse.io/finish-within": "24h", "ecopulse.io/expected-runtime-hours": "4"}, {}, 24, 4.0),
        # the namespace's (or a policy's) default, the Job's own runtime
        ({"ecopulse.io/expected-runtime-hours": "2"}, {"ecopulse.io/finish-within": "12h"}, 12, 2.0),
        # the Job's own finish-within wins over the inherited one, field by field
        (
            {"ecopulse.io/finish-within": "6h"},
            {"ecopulse.io/finish-within": "12h", "ecopulse.io/expected-runtime-hours": "1"},
            6,
            1.0,
        ),
        # a deadline and a finish-within: the earlier binds
        ({"ecopulse.io/deadline": "2026-12-08T02:00:00Z", "ecopulse.io/finish-within": "24h"}, {}, 8, None),
        ({"ecopulse.io/deadline": "2026-12-09T02:00:00Z", "ecopulse.io/finish-within": "3h"}, {}, 3, None),
    ],
)
def test_the_intent_resolves_with_the_policies_precedence(
    own: dict[str, str], inherited: dict[str, str], deadline: int, runtime: float | None
) -> None:
    intent = _intent(own, inherited)
    assert isinstance(intent, DeferralIntent)
    assert intent.deadline == CREATED + timedelta(hours=deadline)
    assert intent.runtime_hours == runtime


def test_the_resolved_intent_is_written_only_where_the_job_lacks_it() -> None:
    intent = _intent({"ecopulse.io/expected-runtime-hours": "2"}, {"ecopulse.io/finish-within": "12h"})
    assert isinstance(intent, DeferralIntent)
    assert intent.resolved == {"ecopulse.io/deadline": "2026-12-08T06:00:00Z"}
    inherited_runtime = _intent(
        {"ecopulse.io/finish-within": "1h"}, {"ecopulse.io/expected-runtime-hours": "0.5"}
    )
    assert isinstance(inherited_runtime, DeferralIntent)
    assert inherited_runtime.resolved["ecopulse.io/expected-runtime-hours"] == "0.5"


@pytest.mark.parametrize(
    "own",
    [
        {"ecopulse.io/finish-within": "tomorrow"},
        {"ecopulse.io/deadline": "2026-12-08 06:00"},
        {"ecopulse.io/finish-within": "24h", "ecopulse.io/expected-runtime-hours": "-1"},
        {"ecopulse.io/finish-within": "24h", "ecopulse.io/expected-runtime-hours": "nan"},
        {"ecopulse.io/finish-within": "24h", "ecopulse.io/expected-runtime-hours": "a while"},
        {"ecopulse.io/finish-within": "100000h"},
    ],
)
def test_a_bad_value_is_a_named_problem_never_a_hold(own: dict[str, str]) -> None:
    problem = _intent(own)
    assert isinstance(problem, DeferralProblem)
    assert problem.reason is NotDeferred.INVALID
    assert problem.message.startswith("ecopulse.io/")


def _job(**overrides: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "train",
            "namespace": "ml",
            "uid": "uid-train",
            "labels": {"team": "ml"},
            "annotations": {"ecopulse.io/finish-within": "24h"},
            "creationTimestamp": "2026-12-07T18:00:00Z",
        },
        "spec": {"template": {"metadata": {"labels": {"app": "train"}}, "spec": {"containers": []}}},
    }
    for key, value in overrides.items():
        job["spec"][key] = value
    return job


def test_job_facts_read_what_holding_and_releasing_need() -> None:
    facts = job_facts(_job(suspend=True, parallelism=3))
    assert (facts.namespace, facts.name, facts.uid) == ("ml", "train", "uid-train")
    assert facts.labels == {"team": "ml", "app": "train"}
    assert facts.suspended and not facts.kueue and not facts.started and facts.parallelism == 3
    assert facts.created_at == CREATED
    assert not facts.held  # suspended, but not by us
    assert job_facts(_job(managedBy="kubernetes.io/job-controller")).managed_by == ""
    assert job_facts(_job(managedBy="example.com/mpi")).managed_by == "example.com/mpi"


def test_held_means_our_record_and_the_job_still_waiting_on_us() -> None:
    job = _job(suspend=True)
    job["metadata"]["annotations"]["ecopulse.io/held-at"] = "2026-12-07T18:00:00Z"
    assert job_facts(job).held
    job["status"] = {"startTime": "2026-12-07T19:00:00Z"}
    assert not job_facts(job).held  # started: the template is frozen, the hold is over
    kueue = _job()
    kueue["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = "user-queue"
    kueue["metadata"]["annotations"]["ecopulse.io/held-at"] = "2026-12-07T18:00:00Z"
    kueue["metadata"]["annotations"]["kueue.x-k8s.io/admission-gated-by"] = f"example.com/a,{GATE_NAME}"
    facts = job_facts(kueue)
    assert facts.kueue and facts.gated_by_us and facts.held
    assert gates_without_ours(facts.gates) == "example.com/a"
    assert gates_without_ours(split_gates(GATE_NAME)) == ""


def test_the_watch_keeps_only_the_jobs_deferral_reads() -> None:
    assert slim_job(_job()) is not None
    plain = _job()
    plain["metadata"]["annotations"] = {}
    assert slim_job(plain) is None


def test_a_policy_gives_deferral_defaults_in_the_annotations_language() -> None:
    _, spec = parse_spec(
        {"deferral": {"finishWithin": "12h", "expectedRuntimeHours": 2}, "expectedRuntimeHours": 6}
    )
    assert spec.finish_within == "12h"
    assert spec.expected_runtime_hours == 2.0  # deferral's wins over the top-level one
    for bad in ({"finishWithin": "soon"}, {"finishWithin": "0s"}, {"expectedRuntimeHours": 0}, {"other": 1}):
        with pytest.raises(PolicyError, match=r"spec\.deferral"):
            parse_spec({"deferral": bad})
