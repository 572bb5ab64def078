"""core.logs: every record is one JSON object on one line, whatever the fields hold."""

from __future__ import annotations

import io
import json
import logging
import queue
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pytest

from core.logs import JsonFormatter, _Enqueue, _Write, configure_logging, stop_logging


class Colour(StrEnum):
    GREEN = "green"


class Opaque:
    def __str__(self) -> str:
        return "opaque!"


def line(fields: dict[str, Any], exc_info: Any = None) -> dict[str, Any]:
    record = logging.LogRecord("ecopulse.test", logging.INFO, __file__, 1, "decision", (), exc_info)
    record.__dict__.update(fields)
    text = JsonFormatter().format(record)
    assert "\n" not in text
    parsed: dict[str, Any] = json.loads(text)
    assert parsed["msg"] == "decision" and parsed["level"] == "info" and parsed["logger"] == "ecopulse.test"
    return parsed


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "text"),
        (1.5, 1.5),
        (None, None),
        (Colour.GREEN, "green"),
        ({"eu-north-1": {"carbon_g_per_kwh": 30.0}}, {"eu-north-1": {"carbon_g_per_kwh": 30.0}}),
        (("a", "b"), ["a", "b"]),
        (datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC), "2026-11-23T01:02:03Z"),
        (Opaque(), "opaque!"),
        ({1: "int key"}, {"1": "int key"}),
        ({(1, 2): "tuple key"}, {"(1, 2)": "tuple key"}),  # msgspec refuses it: the fallback takes it
        ('quote " and newline \n', 'quote " and newline \n'),
    ],
)
def test_fields_become_json_values(value: object, expected: object) -> None:
    assert line({"field": value})["field"] == expected


def test_an_exception_is_one_field_of_the_same_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        parsed = line({"uid": "u"}, exc_info=sys.exc_info())
    assert "RuntimeError: boom" in parsed["exc"]
    assert parsed["uid"] == "u"


def test_lines_are_written_by_the_background_writer_in_order_and_flushed_on_stop(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO")
    try:
        log = logging.getLogger("ecopulse.test")
        for index in range(500):
            log.info("decision", extra={"index": index})
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("failed", extra={"index": -1})
    finally:
        stop_logging()  # flushes what is pending
    lines = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert [line["index"] for line in lines] == [*range(500), -1]
    assert "ValueError: bad" in lines[-1]["exc"]


def test_a_full_queue_drops_lines_and_the_writer_says_how_many() -> None:
    pending: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=1)
    enqueue = _Enqueue(pending)
    for index in range(3):
        enqueue.handle(
            logging.LogRecord("ecopulse.test", logging.INFO, __file__, 1, "line %d", (index,), None)
        )
    assert enqueue.dropped == 2
    writer = _Write(enqueue)
    stream = io.StringIO()
    writer.setStream(stream)
    writer.handle(pending.get_nowait())
    notice, first = (json.loads(text) for text in stream.getvalue().splitlines())
    assert notice["level"] == "warning" and notice["dropped"] == 2
    assert first["msg"] == "line 0"
