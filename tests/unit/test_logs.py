"""core.logs: every record is one JSON object on one line, whatever the fields hold."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.logs import (
    JsonFormatter,
    LineBuffer,
    LineWriter,
    _Buffered,
    _timestamp,
    configure_logging,
    stop_logging,
)


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


def test_a_full_buffer_drops_lines_and_the_writer_says_how_many_once() -> None:
    buffer = LineBuffer(max_lines=1)
    handler = _Buffered(buffer)
    for index in range(3):
        handler.handle(
            logging.LogRecord("ecopulse.test", logging.INFO, __file__, 1, "line %d", (index,), None)
        )
    assert buffer.dropped == 2
    stream = io.StringIO()
    writer = LineWriter(buffer, stream=stream)
    writer.flush()
    notice, first = (json.loads(text) for text in stream.getvalue().splitlines())
    assert notice["level"] == "warning" and notice["dropped"] == 2
    assert first["msg"] == "line 0"
    handler.handle(logging.LogRecord("ecopulse.test", logging.INFO, __file__, 1, "line 3", (), None))
    writer.flush()
    assert [json.loads(text)["msg"] for text in stream.getvalue().splitlines()[2:]] == ["line 3"]


def test_the_line_is_formatted_when_logged_not_when_written() -> None:
    buffer = LineBuffer()
    handler = _Buffered(buffer)
    fields: dict[str, object] = {"region": "eu-north-1"}
    record = logging.LogRecord("ecopulse.test", logging.INFO, __file__, 1, "decision", (), None)
    record.fields = fields
    handler.handle(record)
    fields["region"] = "changed later"
    stream = io.StringIO()
    LineWriter(buffer, stream=stream).flush()
    assert json.loads(stream.getvalue())["fields"] == {"region": "eu-north-1"}


def test_the_writer_thread_writes_without_being_woken_and_stops_cleanly() -> None:
    buffer = LineBuffer()
    stream = io.StringIO()
    writer = LineWriter(buffer, interval_seconds=0.01, stream=stream)
    writer.start()
    try:
        buffer.put('{"msg":"one"}')
        deadline = time.monotonic() + 5
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.getvalue() == '{"msg":"one"}\n'
        buffer.put('{"msg":"two"}')
    finally:
        writer.stop()
    assert stream.getvalue().splitlines() == ['{"msg":"one"}', '{"msg":"two"}']


def test_a_closed_stdout_loses_the_lines_and_nothing_else() -> None:
    buffer = LineBuffer()
    stream = io.StringIO()
    stream.close()
    buffer.put('{"msg":"one"}')
    LineWriter(buffer, stream=stream).flush()  # no exception


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))  # up to 2100
def test_the_timestamp_is_iso_8601_utc_to_the_millisecond(created: float) -> None:
    text = _timestamp(created)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", text)
    assert abs(datetime.fromisoformat(text).timestamp() - created) < 0.0011
    assert text[:19] == datetime.fromtimestamp(int(created), UTC).isoformat()[:19]
