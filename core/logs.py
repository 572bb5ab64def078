"""One JSON object per log line: a constant message plus the structured fields passed as ``extra``."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

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
        # msgspec: every admission decision is a log line, and json.dumps cost more than the decision.
        try:
            return _ENCODER.encode(line).decode()
        except (TypeError, ValueError, msgspec.EncodeError):  # e.g. a key msgspec will not take
            return json.dumps(line, default=str, separators=(",", ":"))


def _as_text(value: object) -> str:
    return str(value)


_ENCODER = msgspec.json.Encoder(enc_hook=_as_text)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log would double every request; our decision line is the record.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
