"""core.kube.events: the Event body every app writes, and how every raw write's answer is read."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import urllib3
from kubernetes import client

from core.kube.events import EventRecorder, EventRequest, WriteAnswer, call_quietly, event_body, raw_write

NOW = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
POD = {"kind": "Pod", "apiVersion": "v1", "name": "Web_1.", "uid": "u-1", "extra": "dropped"}


def test_the_body_names_the_object_trims_the_fields_and_keeps_the_namespace() -> None:
    body = event_body(
        EventRequest(
            namespace="shop",
            involved=POD,
            reason="R" * 200,
            message="a  note\nover lines",
            action="Evict",
            event_type="Warning",
        ),
        reporting_controller="ecopulse.io/rebalancer",
        reporting_instance="pod-1",
        now=NOW,
    )
    assert body == {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"generateName": "web-1-", "namespace": "shop"},
        "eventTime": body["eventTime"],
        "regarding": {"apiVersion": "v1", "kind": "Pod", "name": "Web_1.", "namespace": "shop", "uid": "u-1"},
        "reason": "R" * 127 + "…",
        "note": "a  note\nover lines",  # the note keeps its layout; only its bytes are capped
        "action": "Evict",
        "type": "Warning",
        "reportingController": "ecopulse.io/rebalancer",
        "reportingInstance": "pod-1",
    }
    assert body["eventTime"] == NOW


def test_the_recorder_fills_in_who_reports_and_a_normal_eviction_by_default() -> None:
    recorder = EventRecorder(
        client.ApiClient(), reporting_controller="ecopulse.io/rebalancer", reporting_instance="i" * 200
    )
    request = EventRequest(namespace="shop", involved=POD, reason="CarbonRebalance", message="moved")
    body = recorder.event_body(request, now=NOW)
    assert (body["type"], body["action"], body["reportingController"]) == (
        "Normal",
        "Evict",
        "ecopulse.io/rebalancer",
    )
    assert body["reportingInstance"] == "i" * 127 + "…"
    assert body == event_body(
        EventRequest(
            namespace="shop",
            involved=POD,
            reason="CarbonRebalance",
            message="moved",
            action="Evict",
            event_type="Normal",
        ),
        reporting_controller="ecopulse.io/rebalancer",
        reporting_instance="i" * 200,
        now=NOW,
    )


def _refusal(status: int, body: dict[str, object] | None) -> Callable[[], object]:
    def call() -> object:
        error = client.ApiException(status=status, reason="Too Many Requests")
        error.body = json.dumps(body) if body is not None else None
        raise error

    return call


def _raises(error: Exception) -> Callable[[], object]:
    def call() -> object:
        raise error

    return call


PDB_REFUSAL: dict[str, object] = {
    "kind": "Status",
    "message": "Cannot evict pod as it would violate the pod's disruption budget.",
    "details": {"causes": [{"reason": "DisruptionBudget", "message": "needs 1 healthy pods"}]},
}


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            _refusal(429, PDB_REFUSAL),
            WriteAnswer(
                accepted=False,
                status=429,
                message="Cannot evict pod as it would violate the pod's disruption budget. (needs 1 healthy pods)",
            ),
        ),
        (_refusal(500, None), WriteAnswer(accepted=False, status=500, message="HTTP 500 Too Many Requests")),
        (_refusal(0, None), WriteAnswer(accepted=False, status=None, message="HTTP 0 Too Many Requests")),
        (
            _raises(urllib3.exceptions.ReadTimeoutError(None, "/x", "Read timed out.")),  # type: ignore[arg-type]
            WriteAnswer(accepted=False, status=None, message="None: Read timed out."),
        ),
        (
            _raises(ConnectionRefusedError(111, "Connection refused")),
            WriteAnswer(accepted=False, status=None, message="[Errno 111] Connection refused"),
        ),
        (_raises(ValueError("bad value")), WriteAnswer(accepted=False, status=None, message="bad value")),
    ],
)
def test_a_write_that_is_refused_or_unanswered_is_an_answer_not_an_exception(
    call: Callable[[], object], expected: WriteAnswer
) -> None:
    assert raw_write(call) == expected
    assert call_quietly("write not made", {}, call) is False


def test_an_accepted_write_is_read_to_the_end_and_its_connection_released() -> None:
    response = urllib3.HTTPResponse(
        body=io.BytesIO(b'{"kind": "Eviction"}'), status=201, preload_content=False
    )
    assert raw_write(lambda: response) == WriteAnswer(accepted=True, status=201)
    assert response.closed  # drained: the body will not keep the connection out of the pool
    assert call_quietly("write not made", {}, lambda: urllib3.HTTPResponse(body=b"", status=200)) is True


def test_only_a_record_swallows_what_the_client_should_never_raise() -> None:
    bug = _raises(KeyError("not an API answer"))
    with pytest.raises(KeyError):
        raw_write(bug)  # an eviction or a policy write must not hide a bug as an unknown outcome
    assert call_quietly("write not made", {}, bug) is False


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (WriteAnswer(accepted=True, status=201), "done"),
        (WriteAnswer(accepted=False, status=429, message="budget"), "blocked"),
        (WriteAnswer(accepted=False, status=409, message="conflict"), "unknown"),  # no name for it here
        (WriteAnswer(accepted=False, status=None, message="timed out"), "unknown"),  # it may have happened
    ],
)
def test_an_answer_names_its_outcome_from_the_app_s_own_table(answer: WriteAnswer, expected: str) -> None:
    assert answer.outcome(accepted="done", refusals={429: "blocked"}, unknown="unknown") == expected


def test_an_answer_logs_one_line_a_warning_unless_it_was_accepted(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("ecopulse.test")
    with caplog.at_level(logging.INFO, logger="ecopulse.test"):
        WriteAnswer(accepted=True, status=201).log(
            logger, "write %s", "done", fields={"pod": "a"}, dry_run=True
        )
        WriteAnswer(accepted=False, status=429, message="budget").log(
            logger, "write %s", "blocked", fields={"pod": "b"}, dry_run=False
        )
    lines = [
        (
            r.levelno,
            r.getMessage(),
            r.__dict__["pod"],
            r.__dict__["status"],
            r.__dict__["detail"],
            r.__dict__["dry_run"],
        )
        for r in caplog.records
    ]
    assert lines == [
        (logging.INFO, "write done", "a", 201, "", True),
        (logging.WARNING, "write blocked", "b", 429, "budget", False),
    ]
