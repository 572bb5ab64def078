"""One JSON object per log line: a constant message plus the structured fields passed as ``extra``.

Every admission decision is a line, and stdout in a pod is a pipe the container runtime drains
when it can: a write that waits on it must not wait on the event loop (it was most of the
webhook's p99). So the caller formats its line (cheap with msgspec) and appends it to a bounded
buffer; a writer thread wakes a few times a second and writes what has gathered in one write.
The caller never takes a lock the writer holds nor wakes it: a wake-up per line made the
threads hand the GIL to each other in the middle of every request. When the buffer is full a
line is dropped, and the writer says how many with its next write. Pending lines are written
at exit.
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec

# Attributes every LogRecord has; anything else came in through ``extra`` and is a field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = record.__dict__
        for key in fields.keys() - _STANDARD:  # set difference in C: a record has ~25 attributes
            if not key.startswith("_"):
                line[key] = fields[key]
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        # msgspec: every admission decision is a log line, and json.dumps cost more than the decision.
        try:
            return _ENCODER.encode(line).decode()
        except (TypeError, ValueError, msgspec.EncodeError):  # e.g. a key msgspec will not take
            return json.dumps(line, default=str, separators=(",", ":"))


_second: tuple[int, str] = (-1, "")


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC with milliseconds; the part up to the second is worked out once a second."""
    global _second  # noqa: PLW0603 (a cache; a race only recomputes it)
    whole = int(created)
    cached = _second
    if cached[0] != whole:
        cached = _second = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{int((created - whole) * 1000):03d}+00:00"


def _as_text(value: object) -> str:
    return str(value)


_ENCODER = msgspec.json.Encoder(enc_hook=_as_text)


# Enough for a burst of decisions (a few MiB of lines) while the runtime is slow to drain stdout.
MAX_PENDING_LINES = 20_000
# Lines reach stdout at most this late; rare enough wake-ups that they seldom meet a request.
WRITE_INTERVAL_SECONDS = 0.1


class LineBuffer:
    """Formatted lines waiting for the writer. deque.append and popleft are atomic: no lock."""

    def __init__(self, max_lines: int = MAX_PENDING_LINES) -> None:
        self._lines: collections.deque[str] = collections.deque()
        self._max_lines = max_lines
        self.dropped = 0  # only the handler adds to it, under its own lock

    def put(self, line: str) -> None:
        if len(self._lines) >= self._max_lines:
            self.dropped += 1
        else:
            self._lines.append(line)

    def take(self) -> list[str]:
        lines = self._lines
        return [lines.popleft() for _ in range(len(lines))]


class _Buffered(logging.Handler):
    """The caller's side: format now (arguments and frames may change later), append, return."""

    def __init__(self, buffer: LineBuffer) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.buffer = buffer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.buffer.put(line)


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


class LineWriter:
    """The writer thread: every interval, everything pending in one write, after a drop notice."""

    def __init__(
        self,
        buffer: LineBuffer,
        *,
        interval_seconds: float = WRITE_INTERVAL_SECONDS,
        stream: TextIO | None = None,
    ) -> None:
        self._buffer = buffer
        self._interval_seconds = interval_seconds
        self._stream = stream  # None: sys.stdout at the time of each write
        self._reported = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is pending and end the thread."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval_seconds):
            self.flush()

    def flush(self) -> None:
        lines = self._buffer.take()
        dropped = self._buffer.dropped - self._reported
        if dropped > 0:
            self._reported += dropped
            notice = logging.LogRecord(
                "ecopulse.logs", logging.WARNING, __file__, 0, "log lines dropped: writer too slow", (), None
            )
            notice.dropped = dropped
            lines.insert(0, JsonFormatter().format(notice))
        if not lines:
            return
        stream = self._stream or sys.stdout
        try:
            stream.write("\n".join(lines) + "\n")
            stream.flush()
        except (OSError, ValueError):  # stdout closed or gone: nobody is reading these lines
            pass


def log_line(logger: logging.Logger, level: int, msg: str, fields: dict[str, object]) -> None:
    """``logger.log(level, msg, extra=fields)`` without the caller's file and line, which our lines
    never show and which the logging module finds by walking the stack: for the line per request."""
    if logger.isEnabledFor(level):
        logger.handle(logger.makeRecord(logger.name, level, "", 0, msg, (), None, extra=fields))


_writer: LineWriter | None = None


def configure_logging(level: str = "INFO") -> None:
    global _writer  # noqa: PLW0603 (one writer per process)
    stop_logging()
    buffer = LineBuffer()
    _writer = LineWriter(buffer)
    _writer.start()
    root = logging.getLogger()
    root.handlers[:] = [_Buffered(buffer)]
    root.setLevel(level.upper())
    # Our lines show neither thread nor process: do not look them up for every record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # uvicorn's access log would double every request; our decision line is the record.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def stop_logging() -> None:
    """Write what is pending and stop the writer thread (also run at exit)."""
    global _writer  # noqa: PLW0603
    if _writer is None:
        return
    root = logging.getLogger()
    # Whatever is logged from now on (late in shutdown) is written at once, not buffered for nobody.
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _Buffered)] + [_Stdout()]
    _writer.stop()
    _writer = None


atexit.register(stop_logging)
