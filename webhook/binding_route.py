"""/mutate-binding: the edge of a fleet hold's second half, on the Karmada API server
(webhook.admission.binding decides). Thin, and fail-open: any exception, an unreadable Job or a
decision past the deadline admits the binding unchanged (Karmada then places the Job, suspended,
by its policy; the release lifts the suspension where it runs, unpinned)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import anyio
import msgspec
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.logs import log_line
from webhook.admission.binding import BindingOutcome, BindingSkip, decide_binding, wants_job
from webhook.admission.review import MalformedReview, parse_review, review_response
from webhook.bodies import BodyRefused, received_body

if TYPE_CHECKING:
    from webhook.app import WebhookContext

log = logging.getLogger("ecopulse.webhook")

BINDING_ADMISSIONS = Counter(
    "ecopulse_fleet_deferral_binding_admissions_total",
    "ResourceBinding reviews answered by /mutate-binding (Karmada API server), by reason.",
    ["reason"],
)
for _reason in (*BindingSkip, "failed_open", "malformed"):
    BINDING_ADMISSIONS.labels(str(_reason))


def binding_handler(context: WebhookContext) -> Callable[[Request], Awaitable[Response]]:
    async def mutate_binding(request: Request) -> Response:
        try:
            async with received_body(
                request, max_bytes=context.admission_max_body_bytes, budget=context.bodies
            ) as body:
                try:
                    review = parse_review(body, max_body_bytes=context.admission_max_body_bytes)
                except MalformedReview as error:
                    BINDING_ADMISSIONS.labels("malformed").inc()
                    return JSONResponse(
                        {"error": "malformed AdmissionReview", "message": str(error)}, status_code=400
                    )
        except BodyRefused as refused:
            BINDING_ADMISSIONS.labels("malformed").inc()
            return refused.answer(error="AdmissionReview refused")
        outcome: BindingOutcome | None = None
        try:
            job: Mapping[str, object] | None = None
            wanted = wants_job(review)
            if wanted is not None:
                # The one read on a request path, off the event loop, under the webhook's deadline.
                with anyio.fail_after(context.deadline_seconds):
                    job = await anyio.to_thread.run_sync(
                        context.read_job, wanted[0], wanted[1], abandon_on_cancel=True
                    )
            outcome = decide_binding(review, job=job)
        except Exception:  # includes TimeoutError: fail open
            log.exception("binding decision failed", extra={"uid": review.uid})
        if outcome is None:
            BINDING_ADMISSIONS.labels("failed_open").inc()
            answer = review_response(review.uid, warnings=["eco-pulse: binding admitted unchanged"])
        else:
            BINDING_ADMISSIONS.labels(str(outcome.reason)).inc()
            answer = review_response(
                review.uid, patch_base64=outcome.patch_base64, audit={"decision": str(outcome.reason)}
            )
            if outcome.patched:
                log_line(
                    log,
                    logging.INFO,
                    "binding admission decision",
                    {
                        "uid": review.uid,
                        "namespace": review.namespace,
                        "binding": review.name,
                        "decision": str(outcome.reason),
                    },
                )
        return Response(msgspec.json.encode(answer), media_type="application/json")

    return mutate_binding
