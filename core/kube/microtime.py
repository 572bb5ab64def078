"""The API server's MicroTime, written once for every writer. Pure.

A MicroTime (Event ``eventTime``, Lease ``acquireTime``/``renewTime``) must carry exactly six
fractional digits, or the API server answers 400. The generated client re-serialises a model's
``datetime`` with ``isoformat()``, which drops the fraction when the microseconds are exactly 0. So:

- a body sent as plain JSON (the Lease) carries :func:`micro_time`, the string itself;
- a body that goes through the client's models (Events) carries :func:`model_micro_time`, a
  datetime the client cannot serialise without its fraction.
"""

from __future__ import annotations

from datetime import UTC, datetime


def micro_time(moment: datetime) -> str:
    """RFC 3339 with exactly six fractional digits, as the API server's MicroTime requires."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: a MicroTime needs a timezone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def model_micro_time(moment: datetime) -> datetime:
    """``moment`` in UTC, one microsecond later when it falls on a whole second (the same moment
    for anyone reading it), so that the client's ``isoformat()`` keeps six fractional digits."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=1) if moment.microsecond == 0 else moment
