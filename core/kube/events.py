"""events.k8s.io/v1 Event bodies, shared by every app that records Events. Pure: no API call here.

``eventTime`` is a MicroTime that the API server parses with exactly six fractional digits, while
the client re-serialises the model's ``datetime`` with ``isoformat()``, which drops the fraction
when the microseconds are exactly 0 (the server then answers 400). :func:`event_time` never hands
the client such a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# events.k8s.io/v1 validation limits: note <= 1024 bytes; reason, action, reportingInstance <= 128.
NOTE_LIMIT_BYTES = 1024
SHORT_FIELD_LIMIT = 128
# Keys an ObjectReference may carry (the client's model rejects any other).
REFERENCE_KEYS = ("apiVersion", "kind", "name", "namespace", "uid", "resourceVersion", "fieldPath")


def event_time(now: datetime | None = None) -> datetime:
    """An aware UTC datetime that the client serialises as a valid MicroTime (six fractional digits).

    ``isoformat()`` omits the fraction when microseconds are 0, and the API server rejects that; one
    microsecond later is the same moment for anyone reading an Event.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.replace(microsecond=1) if moment.microsecond == 0 else moment


def trim(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def trim_bytes(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes (the server counts bytes), never splitting a character."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode(errors="ignore") + "…"


def name_prefix(name: str) -> str:
    """A base for generateName from the involved object's name: lowercase, DNS-subdomain characters."""
    base = re.sub(r"[^a-z0-9.-]+", "-", name.lower())[:50].strip(".-")
    return base or "eco-pulse"


def event_body(
    *,
    namespace: str,
    involved: Mapping[str, str],
    reason: str,
    message: str,
    action: str,
    event_type: str,
    reporting_controller: str,
    reporting_instance: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The events.k8s.io/v1 Event as handed to the client (eventTime as a datetime, see module doc)."""
    regarding = {key: involved[key] for key in REFERENCE_KEYS if involved.get(key)}
    regarding.setdefault("namespace", namespace)  # the server requires it to match the Event's
    base = name_prefix(regarding.get("name", ""))
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        # generateName: the server appends five random characters, so names never collide. It must be
        # a DNS-subdomain prefix: a trailing "-" is allowed, a trailing "." is not (422).
        "metadata": {"generateName": f"{base}-", "namespace": namespace},
        "eventTime": event_time(now),
        "regarding": regarding,
        "reason": trim(reason, SHORT_FIELD_LIMIT),
        "note": trim_bytes(message, NOTE_LIMIT_BYTES),
        "action": trim(action, SHORT_FIELD_LIMIT),
        "type": event_type,
        "reportingController": reporting_controller,
        "reportingInstance": trim(reporting_instance, SHORT_FIELD_LIMIT),
    }
