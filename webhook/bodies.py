"""Reading request bodies without letting a caller choose how much memory we spend.

Each route has a cap (the largest real request plus a margin: docs/hardening.md). A declared
Content-Length over the cap is refused before a byte of the body is read; a chunked body is counted
as it arrives and refused the moment it passes the cap, so no more than the cap is ever held. All
bodies being read at once also share one budget: beyond it the caller is told to come back (503),
so many concurrent callers cannot add up past the container's memory limit either.

A refused body is answered and the connection closed (``Connection: close``): the rest of the body
is never read. The API server treats any non-200 answer as a failed call and applies the webhook's
``failurePolicy: Ignore`` (the pod is admitted unchanged: fail open); the scheduler treats it as an
error of an ``ignorable`` extender (the node list is left as is).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from webhook.metrics import BODY_MEMORY_BYTES, REFUSED

RETRY_AFTER_SECONDS = 1
# What a body may cost once decoded, per byte received: JSON of tiny strings or objects becomes
# Python objects 8-14x its size (measured: 8 MiB of 3-character NodeNames took 112 MiB to decode;
# 5.5 MiB of one-key env entries 45 MiB to decide). The budget charges every body at this rate.
MEMORY_PER_BODY_BYTE = 14


class BodyRefused(Exception):
    """The body is not read (any further); ``answer()`` says why to a caller that still listens."""

    def __init__(self, *, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def answer(self, *, error: str) -> JSONResponse:
        headers = {"connection": "close"}
        if self.status == 503:
            headers["retry-after"] = str(RETRY_AFTER_SECONDS)
        return JSONResponse(
            {"error": error, "message": self.message}, status_code=self.status, headers=headers
        )


@dataclass
class BodyBudget:
    """The memory request bodies may take right now (``MEMORY_PER_BODY_BYTE`` per byte held),
    across all requests, against one maximum. Used from the event loop only (one thread): no lock."""

    max_bytes: int
    held_bytes: int = 0

    def take(self, size_bytes: int) -> bool:
        if self.held_bytes + size_bytes > self.max_bytes:
            return False
        self.held_bytes += size_bytes
        BODY_MEMORY_BYTES.set(self.held_bytes)
        return True

    def give_back(self, size_bytes: int) -> None:
        self.held_bytes -= size_bytes
        BODY_MEMORY_BYTES.set(self.held_bytes)

    def charge_until_released(self, body_bytes: int) -> Callable[[], None]:
        """Charge a body once more; the returned release may be called from any thread."""
        size_bytes = body_bytes * MEMORY_PER_BODY_BYTE
        self.held_bytes += size_bytes
        BODY_MEMORY_BYTES.set(self.held_bytes)
        loop = asyncio.get_running_loop()

        def release() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the server is gone anyway
                loop.call_soon_threadsafe(self.give_back, size_bytes)

        return release


@dataclass
class Straggler:
    """A decision's worker thread, which may outlive the request that started it.

    A decision abandoned at its deadline still holds its body (and what it decoded from it) until
    its thread ends: ``abandon`` keeps the body charged against the budget until then, so callers
    cannot pile up abandoned decisions past the memory the budget allows."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _finished: bool = False
    _release: Callable[[], None] | None = None

    def finished(self) -> None:
        """Called by the worker thread when the decision ends, however it ends."""
        with self._lock:
            self._finished = True
            release, self._release = self._release, None
        if release is not None:
            release()

    def abandon(self, charge: Callable[[], Callable[[], None]]) -> None:
        """Called on the event loop when the request stops waiting for the decision."""
        with self._lock:
            if not self._finished:
                self._release = charge()


def _refuse(*, status: int, reason: str, message: str) -> BodyRefused:
    REFUSED.labels(reason=reason).inc()
    return BodyRefused(status=status, reason=reason, message=message)


@asynccontextmanager
async def received_body(request: Request, *, max_bytes: int, budget: BodyBudget) -> AsyncIterator[bytes]:
    """The whole body, held against ``budget`` until the block ends; BodyRefused if it cannot be."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _refuse(status=413, reason="body-too-large", message=f"body is larger than {max_bytes} bytes")
    held = size = 0
    try:
        chunks: list[bytes] = []
        try:
            async for chunk in request.stream():
                if size + len(chunk) > max_bytes:
                    raise _refuse(
                        status=413, reason="body-too-large", message=f"body is larger than {max_bytes} bytes"
                    )
                if not budget.take(len(chunk) * MEMORY_PER_BODY_BYTE):
                    raise _refuse(
                        status=503,
                        reason="body-budget",
                        message="too many request bodies are being read at once; retry",
                    )
                held += len(chunk) * MEMORY_PER_BODY_BYTE
                size += len(chunk)
                chunks.append(chunk)
        except ClientDisconnect:
            # Gone (or cut off by the body timeout, counted there): nobody reads an answer.
            raise BodyRefused(
                status=400, reason="client-disconnected", message="client disconnected"
            ) from None
        body = b"".join(chunks)
        del chunks
        yield body
    finally:
        budget.give_back(held)
