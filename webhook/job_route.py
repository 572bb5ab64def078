"""/mutate-job: the edge of the hold (webhook.admission.job decides). Thin, and fail-open like /mutate.

Any exception, or a decision later than the webhook's deadline, admits the Job unchanged with
a warning: a Job never waits on us, and is never held by accident.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec
from prometheus_client import Counter
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.deferral_hints import NotDeferred
from core.logs import log_line
from core.managed import Unmanaged
from webhook.admission.job import JobOutcome, JobSkip, decide_job
from webhook.admission.review import MalformedReview, parse_review, review_response
from webhook.bodies import BodyRefused, received_body

if TYPE_CHECKING:
    from webhook.app import WebhookContext

log = logging.getLogger("ecopulse.webhook")

JOB_ADMISSIONS = Counter(
    "ecopulse_deferral_admissions_total",
    "Job CREATE reviews answered by /mutate-job, by outcome (held, not-held, failed_open, malformed) "
    "and reason.",
    ["outcome", "reason"],
)
FAIL_OPEN_REASONS = ("deadline-exceeded", "internal-error")
for _reason in (*JobSkip, *NotDeferred, *Unmanaged):
    JOB_ADMISSIONS.labels("held" if _reason is JobSkip.HELD else "not-held", str(_reason))
for _reason in FAIL_OPEN_REASONS:
    JOB_ADMISSIONS.labels("failed_open", _reason)


def job_handler(
    context: WebhookContext,
    *,
    within_deadline: Callable[..., Awaitable[JobOutcome]],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[[Request], Awaitable[Response]]:
    """``within_deadline``: webhook.app's, which runs /mutate's decisions (the app imports us)."""

    async def mutate_job(request: Request) -> Response:
        started = time.perf_counter()
        try:
            async with received_body(
                request, max_bytes=context.admission_max_body_bytes, budget=context.bodies
            ) as body:
                try:
                    review = parse_review(body, max_body_bytes=context.admission_max_body_bytes)
                except MalformedReview as error:
                    JOB_ADMISSIONS.labels("malformed", "").inc()
                    return JSONResponse(
                        {"error": "malformed AdmissionReview", "message": str(error)}, status_code=400
                    )

                def work() -> JobOutcome:
                    config = context.config()
                    return decide_job(
                        review,
                        signals=context.signals(),
                        config=config,
                        now=clock(),
                        releaser_live=context.releaser_live(),
                        releaser_dry_run=context.releaser_dry_run(config),
                        own_namespace=context.own_namespace,
                        namespace_info=context.namespace_info(review.namespace),
                        policies=context.policies(config.known_regions),
                        book=context.forecast_book,
                    )

                outcome: JobOutcome | None = None
                failed = ""
                try:
                    outcome = await within_deadline(
                        work,
                        body_bytes=len(body),
                        deadline_seconds=context.deadline_seconds,
                        started=started,
                        bodies=context.bodies,
                    )
                except TimeoutError:
                    failed = "deadline-exceeded"
                except Exception:
                    log.exception("job decision failed", extra={"uid": review.uid})
                    failed = "internal-error"
        except BodyRefused as refused:
            JOB_ADMISSIONS.labels("malformed", "").inc()
            return refused.answer(error="AdmissionReview refused")
        if outcome is None:
            answer = review_response(
                review.uid, warnings=[f"eco-pulse: Job admitted unchanged, not held ({failed})"]
            )
        else:
            answer = review_response(
                review.uid,
                patch_base64=outcome.patch_base64,
                warnings=outcome.warnings,
                audit={"decision": f"{'held' if outcome.held else 'not-held'}:{outcome.reason}"},
            )
        elapsed = time.perf_counter() - started

        def record() -> None:
            try:
                if outcome is None:
                    JOB_ADMISSIONS.labels("failed_open", failed).inc()
                    return
                JOB_ADMISSIONS.labels("held" if outcome.held else "not-held", str(outcome.reason)).inc()
                if outcome.reason is JobSkip.NOT_A_JOB or not log.isEnabledFor(logging.INFO):
                    return
                fields: dict[str, object] = {
                    "uid": review.uid,
                    "namespace": review.namespace,
                    "job": review.pod_name,
                    "decision": "held" if outcome.held else "not-held",
                    "reason": str(outcome.reason),
                    "dry_run": review.dry_run,
                    "policy": outcome.policy,
                    "duration_ms": round(elapsed * 1000, 3),
                }
                if outcome.plan is not None:
                    fields.update(
                        region=outcome.plan.region,
                        start=outcome.plan.start.isoformat(),
                        why=str(outcome.plan.reason),
                        latest_start=outcome.plan.latest_start.isoformat(),
                        kueue=outcome.kueue,
                    )
                if outcome.warnings:
                    fields["warnings"] = outcome.warnings
                log_line(log, logging.INFO, "job admission decision", fields)
            except Exception:
                log.exception("job admission bookkeeping failed", extra={"uid": review.uid})

        return Response(
            msgspec.json.encode(answer), media_type="application/json", background=BackgroundTask(record)
        )

    return mutate_job
