"""One JSON object per log line: a constant message plus the structured fields passed as ``extra``.

Lines are written by a background thread. Every admission decision is a line, and stdout in a
pod is a pipe the container runtime drains when it can: a write that waits on it must not wait
on the event loop (it was most of the webhook's p99). The queue is bounded; when it is full a
line is dropped, and the writer says how many with its next line. Pending lines are flushed at
exit.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

# Attributes every LogRecord has; anything else came in through ``extra`` and is a field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:  # rendered before it crossed to the writer thread
            line["exc"] = record.exc_text
        # msgspec: every admission decision is a log line, and json.dumps cost more than the decision.
        try:
            return _ENCODER.encode(line).decode()
        except (TypeError, ValueError, msgspec.EncodeError):  # e.g. a key msgspec will not take
            return json.dumps(line, default=str, separators=(",", ":"))


def _as_text(value: object) -> str:
    return str(value)


_ENCODER = msgspec.json.Encoder(enc_hook=_as_text)


# Enough for a burst of decisions (a few MiB of lines) while the runtime is slow to drain stdout.
MAX_PENDING_LINES = 20_000


class _Enqueue(logging.handlers.QueueHandler):
    """The caller's side: no formatting, no I/O; a full queue drops the line and counts it."""

    def __init__(self, pending: queue.Queue[logging.LogRecord]) -> None:
        super().__init__(pending)
        self.dropped = 0  # only changed under the handler's own lock (Handler.handle)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # Merge arguments and render a traceback now: frames and arguments may change later.
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


class _Stdout(logging.StreamHandler):  # type: ignore[type-arg]
    """JSON lines to whatever sys.stdout is when the line is written (it may be swapped)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self.setFormatter(JsonFormatter())
        self._fixed = False

    def setStream(self, stream: Any) -> Any:
        self._fixed = True
        return super().setStream(stream)

    def emit(self, record: logging.LogRecord) -> None:
        if not self._fixed:
            self.stream = sys.stdout
        super().emit(record)


class _Write(_Stdout):
    """The writer thread's side: format and write, first saying how many lines were dropped."""

    def __init__(self, source: _Enqueue) -> None:
        super().__init__()
        self._source = source
        self._reported = 0

    def emit(self, record: logging.LogRecord) -> None:
        dropped = self._source.dropped
        if dropped > self._reported:
            notice = logging.LogRecord(
                "ecopulse.logs", logging.WARNING, __file__, 0, "log lines dropped: writer too slow", (), None
            )
            notice.dropped = dropped - self._reported
            self._reported = dropped
            super().emit(notice)
        super().emit(record)


_listener: logging.handlers.QueueListener | None = None


def configure_logging(level: str = "INFO") -> None:
    global _listener  # noqa: PLW0603 (one writer per process)
    stop_logging()
    pending: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=MAX_PENDING_LINES)
    enqueue = _Enqueue(pending)
    _listener = logging.handlers.QueueListener(pending, _Write(enqueue))
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [enqueue]
    root.setLevel(level.upper())
    # uvicorn's access log would double every request; our decision line is the record.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def stop_logging() -> None:
    """Write what is pending and stop the writer thread (also run at exit)."""
    global _listener  # noqa: PLW0603
    if _listener is None:
        return
    _listener.stop()
    _listener = None
    # Whatever is logged after this (late in shutdown) is written at once, not queued for nobody.
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _Enqueue)] + [_Stdout()]


atexit.register(stop_logging)
