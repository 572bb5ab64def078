"""The provider protocol: one capability, fetch one region's grid carbon intensity.

Providers are the only code that talks to carbon APIs, and only the refresher calls them,
on its own schedule: nothing on a request path ever reaches a provider.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from core.model import CarbonObservation, Region

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ProviderErrorKind(StrEnum):
    AUTH = "auth"  # 401/403: wrong or missing credentials; retrying will not help soon
    RATE_LIMITED = "rate_limited"  # 429: back off, honour Retry-After
    UNAVAILABLE = "unavailable"  # 5xx, connection refused, DNS
    TIMEOUT = "timeout"
    BAD_RESPONSE = "bad_response"  # 2xx with a body we cannot read
    NOT_FOUND = "not_found"  # the provider does not know this zone
    CONFIG = "config"  # we cannot even ask: missing token, unmapped region


class ProviderError(Exception):
    """A failed fetch, classified so the refresher can count it and decide how to back off."""

    def __init__(
        self, kind: ProviderErrorKind, message: str, *, retry_after_seconds: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after_seconds = retry_after_seconds

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class CarbonProvider(Protocol):
    """Anything that can tell the current (and, where it can, forecast) intensity of a region's grid."""

    @property
    def name(self) -> str: ...

    def fetch(self, region: Region) -> CarbonObservation:
        """Return the latest observation for the region's grid zone, or raise ProviderError."""
        ...

    def close(self) -> None:
        """Release connections; called when the provider is replaced or the app stops."""
        ...
