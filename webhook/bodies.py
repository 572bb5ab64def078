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

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from webhook.metrics import BUFFERED_BODY_BYTES, REFUSED

RETRY_AFTER_SECONDS = 1


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
    """Bytes of request bodies held right now, across all requests, against one maximum.

    Used from the event loop only (one thread), so no lock."""

    max_bytes: int
    held_bytes: int = 0

    def take(self, size_bytes: int) -> bool:
        if self.held_bytes + size_bytes > self.max_bytes:
            return False
        self.held_bytes += size_bytes
        BUFFERED_BODY_BYTES.set(self.held_bytes)
        return True

    def give_back(self, size_bytes: int) -> None:
        self.held_bytes -= size_bytes
        BUFFERED_BODY_BYTES.set(self.held_bytes)


def _refuse(*, status: int, reason: str, message: str) -> BodyRefused:
    REFUSED.labels(reason=reason).inc()
    return BodyRefused(status=status, reason=reason, message=message)


@asynccontextmanager
async def received_body(request: Request, *, max_bytes: int, budget: BodyBudget) -> AsyncIterator[bytes]:
    """The whole body, held against ``budget`` until the block ends; BodyRefused if it cannot be."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _refuse(status=413, reason="body-too-large", message=f"body is larger than {max_bytes} bytes")
    held = 0
    try:
        chunks: list[bytes] = []
        try:
            async for chunk in request.stream():
                if held + len(chunk) > max_bytes:
                    raise _refuse(
                        status=413, reason="body-too-large", message=f"body is larger than {max_bytes} bytes"
                    )
                if not budget.take(len(chunk)):
                    raise _refuse(
                        status=503,
                        reason="body-budget",
                        message="too many request bodies are being read at once; retry",
                    )
                held += len(chunk)
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
