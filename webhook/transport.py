"""The webhook's HTTP/1.1 connections: time limits for headers and bodies, a connection cap.

Any pod in the cluster can reach the webhook's port, so a connection is held only while it makes
progress. uvicorn (0.55, httptools) has a keep-alive timeout but no header or body timeout: a
client that never finishes its headers, or trickles a byte every few seconds, stays connected for
ever, and each idle TLS connection costs memory. This subclass of uvicorn's own protocol adds, per
connection:

- a header deadline: from the connection (after the TLS handshake) or the first byte of the next
  request until its headers are complete (``header_timeout_seconds``); headers larger than
  ``max_header_bytes`` are refused (400, by uvicorn's parser error path);
- a body deadline: from the end of the headers until the body is complete (``body_timeout_seconds``);
- a connection cap: a connection beyond ``max_connections`` is closed as soon as it is made.

Whatever is refused is counted in ``ecopulse_webhook_refused_total{reason}`` and the connection is
aborted (no graceful TLS close: a hostile peer could hold that too). uvicorn's ``limit_concurrency``
is not used: it answers 503 only after a request's headers, on a connection already held, and
requests on one connection run one at a time, so in-flight requests never outnumber connections.

The TLS handshake itself is bounded by the event loop (60 s, asyncio's and uvloop's default).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from webhook.metrics import OPEN_CONNECTIONS, REFUSED


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionLimits:
    header_timeout_seconds: float
    body_timeout_seconds: float
    max_connections: int
    max_header_bytes: int = 64 * 1024


class HeadersTooLarge(Exception):
    """Raised from a parser callback; uvicorn answers 400 and closes the connection."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines and the cap above; see ``protocol_for``."""

    limits: ConnectionLimits  # set on the subclass protocol_for makes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One deadline at a time: when it falls (loop time) and what it guards, None when idle.
        self._deadline: float | None = None
        self._deadline_reason = ""
        # One timer per connection, re-armed lazily: a request moves the deadline twice (headers,
        # body) and clears it once; scheduling and cancelling a timer each time cost more than
        # the request's own parsing. The timer fires no later than the deadline; when it finds
        # the deadline moved later, or cleared, it sleeps again or stops.
        self._timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0

    def _arm(self, seconds: float, reason: str) -> None:
        deadline = self.loop.time() + seconds
        self._deadline, self._deadline_reason = deadline, reason
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(deadline, self._check)

    def _disarm(self) -> None:
        self._deadline = None  # the timer, if any, finds nothing to do

    def _check(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        if self.loop.time() < deadline:  # moved later since the timer was set
            self._timer = self.loop.call_at(deadline, self._check)
            return
        self._deadline = None
        if not self.transport.is_closing():
            REFUSED.labels(reason=self._deadline_reason).inc()
            self.transport.abort()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            REFUSED.labels(reason="connection-limit").inc()
            transport.abort()
            return
        OPEN_CONNECTIONS.set(len(self.connections))
        # Until the first request's headers are in; uvicorn's keep-alive timer only starts after
        # a first response.
        self._arm(self.limits.header_timeout_seconds, "header-timeout")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)
        OPEN_CONNECTIONS.set(len(self.connections))

    def data_received(self, data: bytes) -> None:
        # Between requests, any byte (even a bare CRLF the parser skips) starts the header clock:
        # uvicorn stops its keep-alive timer at the first byte and would wait for ever after.
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm(self.limits.header_timeout_seconds, "header-timeout")
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._header_bytes = 0
        if self._deadline is None:  # a pipelined request
            self._arm(self.limits.header_timeout_seconds, "header-timeout")
        super().on_message_begin()

    # Called per header by the parser: counted inline, without a call of its own.
    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        if self._header_bytes > self.limits.max_header_bytes:
            _headers_too_large()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self.limits.max_header_bytes:
            _headers_too_large()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.limits.body_timeout_seconds, "body-timeout")

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()


def _headers_too_large() -> None:
    REFUSED.labels(reason="headers-too-large").inc()
    raise HeadersTooLarge


def protocol_for(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """The protocol class to give uvicorn (``Config(http=...)``), bound to ``limits``."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})
