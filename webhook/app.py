"""The HTTPS edge: Starlette routes, thin. Parse, hand to the pure decision, answer, log, count.

Whatever happens after the body parses as an AdmissionReview, the answer is 200 with the
request's uid and ``allowed: true``: a bug, an overrun of our own deadline or missing signals
admit the pod unchanged (fail open) with a warning and a metric.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import msgspec
from prometheus_client import Counter, Gauge
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.config import EcoPulseConfiguration
from core.forecast_book import ForecastBook
from core.logs import log_line
from core.managed import Unmanaged
from core.model import NamespaceInfo, SignalSnapshot
from core.podspec import as_mapping
from core.policy import EMPTY_POLICY_SET, PolicySet
from webhook.admission.mutate import (
    Outcome,
    OutcomeMemo,
    PlacementMemo,
    Reason,
    ReviewOutcome,
    decide,
    fail_open,
)
from webhook.admission.review import (
    MAX_BODY_BYTES as ADMISSION_MAX_BODY_BYTES,
)
from webhook.admission.review import (
    AdmissionRequest,
    MalformedReview,
    UnreadableObject,
    parse_review,
    review_response,
)
from webhook.admission.templates import template_warnings
from webhook.binding_route import binding_handler
from webhook.bodies import BodyBudget, BodyRefused, Straggler, received_body
from webhook.events import EventQueue, PlacementNotices, annotation_event
from webhook.extender.decide import (
    FilterReason,
    Judgement,
    NodeRegions,
    all_neutral,
    all_pass,
    as_filter_result,
    as_priorities,
    judge,
    node_regions,
)
from webhook.extender.types import MAX_BODY_BYTES as EXTENDER_MAX_BODY_BYTES
from webhook.extender.types import ExtenderArgs, MalformedArgs, parse_args
from webhook.job_route import job_handler
from webhook.metrics import (
    ADMISSION_DURATION,
    ADMISSION_FAIL_OPEN,
    ADMISSION_REQUESTS,
    ADMISSION_SKIPPED,
    EXTENDER_DURATION,
    EXTENDER_FAIL_OPEN,
    EXTENDER_NODES_FILTERED,
    EXTENDER_REQUESTS,
    NAMESPACE_LABEL_VALUES,
    PLACEMENT_DECISIONS,
    PROJECTED_AVOIDED,
    PROJECTED_NET_BENEFIT,
)

log = logging.getLogger("ecopulse.webhook")
T = TypeVar("T")

ADMISSION_FAIL_OPEN_REASONS = (
    Reason.NO_SIGNALS,
    Reason.BASELINE_UNKNOWN,
    Reason.DEADLINE,
    Reason.UNREADABLE_OBJECT,
    Reason.DEMAND_OUT_OF_RANGE,
    Reason.INTERNAL_ERROR,
)
EXTENDER_FAIL_OPEN_REASONS = ("no-usable-signals", "deadline-exceeded", "internal-error")


def _initialise_metrics() -> None:
    """Create the children we know of at 0, so a dashboard shows 0, not "no data", before the first one."""
    for outcome in (*Outcome, "malformed"):
        ADMISSION_REQUESTS.labels(str(outcome))
    for reason in (*Reason, *Unmanaged):
        if reason in ADMISSION_FAIL_OPEN_REASONS:
            ADMISSION_FAIL_OPEN.labels(str(reason))
        elif reason is not Reason.PLACED:
            ADMISSION_SKIPPED.labels(str(reason))
    for verb in ("filter", "prioritize"):
        EXTENDER_DURATION.labels(verb)
        for extender_outcome in ("decided", "skipped", "failed_open", "malformed"):
            EXTENDER_REQUESTS.labels(verb, extender_outcome)
        for extender_reason in EXTENDER_FAIL_OPEN_REASONS:
            EXTENDER_FAIL_OPEN.labels(verb, extender_reason)
    for filter_reason in FilterReason:
        EXTENDER_NODES_FILTERED.labels(str(filter_reason))


_initialise_metrics()


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookContext:
    """What the routes read: the current config and the current signals, both without I/O."""

    config: Callable[[], EcoPulseConfiguration]
    signals: Callable[[], SignalSnapshot]
    deadline_seconds: float
    own_namespace: str = ""
    ready: Callable[[], bool] = lambda: True
    memo: PlacementMemo = field(default_factory=PlacementMemo)
    outcomes: OutcomeMemo = field(default_factory=OutcomeMemo)
    # Namespace labels and annotations from a watch; None where we know nothing of the namespace.
    namespace_info: Callable[[str], NamespaceInfo | None] = lambda _: None
    # Whether a namespace exists (the watch cache); without a watch every name counts as known.
    namespace_known: Callable[[str], bool] = lambda _: True
    # Node name -> region from a watch, for the extender's NodeNames mode.
    node_region: Callable[[str], str | None] = lambda _: None
    # The policies from a watch (core.kube.caches.PolicyCache), for the configured regions.
    policies: Callable[[frozenset[str]], PolicySet] = lambda _: EMPTY_POLICY_SET
    extender_deadline_seconds: float = 0.5
    admission_max_body_bytes: int = ADMISSION_MAX_BODY_BYTES
    extender_max_body_bytes: int = EXTENDER_MAX_BODY_BYTES
    # One budget for every body being read at once (see webhook.bodies).
    bodies: BodyBudget = field(default_factory=lambda: BodyBudget(max_bytes=128 * 1024 * 1024))
    # Where Events about ignored annotations go (a bounded queue, posted by a thread); None: nowhere.
    annotation_events: EventQueue | None = None
    # Whether the controller that releases held Jobs is alive (its Lease, from a watch): no
    # releaser, no hold (webhook.admission.job).
    releaser_live: Callable[[], bool] = lambda: False
    # Whether that controller runs dry (it then holds nothing): the rebalancer's dryRun, or fleet
    # mode's on the Karmada API server.
    releaser_dry_run: Callable[[EcoPulseConfiguration], bool] = lambda config: config.rebalancer.dry_run
    # The Job a ResourceBinding is for (namespace, name), read from the API server (the Karmada API
    # server, for /mutate-binding); None when it cannot be read.
    read_job: Callable[[str, str], Mapping[str, object] | None] = lambda _namespace, _name: None
    # Where Events saying where a controller's pods were placed go; None: nowhere.
    placement_events: PlacementNotices | None = None
    # The forecast book a hold is judged by (core.forecast_book, fed by webhook.forecasts as the
    # releaser feeds its own); None: the signals' forecasts with no error record, so nothing is
    # held while deferral.confidenceZ > 0.
    forecast_book: ForecastBook | None = None
    # It serves the Karmada API server (ECOPULSE_RELEASER=fleet): warns what fleet mode cannot hold.
    on_karmada: bool = False


async def _extender_call(request: Request, context: WebhookContext, *, verb: str) -> Response:
    """/filter and /prioritize: a body over the cap is a 413 (see webhook.bodies), malformed input
    a 400; anything else we cannot decide in time answers every node / neutral scores (the
    scheduler's own plugins then decide alone)."""
    started = time.perf_counter()
    try:
        async with received_body(
            request, max_bytes=context.extender_max_body_bytes, budget=context.bodies
        ) as body:
            return await _extender_answer(body, context, verb=verb, started=started)
    except BodyRefused as refused:
        _child(EXTENDER_REQUESTS, verb, "malformed").inc()
        log.warning("extender call refused", extra={"verb": verb, "reason": refused.message})
        return refused.answer(error="ExtenderArgs refused")


async def _extender_answer(body: bytes, context: WebhookContext, *, verb: str, started: float) -> Response:
    max_body_bytes = context.extender_max_body_bytes

    def work() -> tuple[ExtenderArgs, NodeRegions, Judgement | None]:
        args = parse_args(body, keep_node_objects=verb == "filter", max_body_bytes=max_body_bytes)
        nodes = node_regions(args, context.node_region)
        namespace = str(as_mapping(args.pod.get("metadata")).get("namespace") or "")
        config = context.config()
        judgement = judge(
            args,
            nodes=nodes,
            signals=context.signals(),
            config=config,
            namespace_info=context.namespace_info(namespace),
            policies=context.policies(config.known_regions),
        )
        return args, nodes, judgement

    outcome, reason = "decided", ""
    args: ExtenderArgs | None = None
    nodes: NodeRegions = ()
    judgement: Judgement | None = None
    try:
        args, nodes, judgement = await within_deadline(
            work,
            body_bytes=len(body),
            deadline_seconds=context.extender_deadline_seconds,
            started=started,
            bodies=context.bodies,
        )
    except MalformedArgs as error:
        _child(EXTENDER_REQUESTS, verb, "malformed").inc()
        log.warning("malformed extender call", extra={"verb": verb, "reason": str(error)})
        return JSONResponse({"error": "malformed ExtenderArgs", "message": str(error)}, status_code=400)
    except TimeoutError:
        outcome, reason = "failed_open", "deadline-exceeded"
    except Exception:
        log.exception("extender decision failed", extra={"verb": verb})
        outcome, reason = "failed_open", "internal-error"
    if args is None:
        # No decision in time (or it failed): parse the body again, only to name the nodes.
        try:
            args = parse_args(body, keep_node_objects=verb == "filter", max_body_bytes=max_body_bytes)
        except MalformedArgs as error:
            return JSONResponse({"error": "malformed ExtenderArgs", "message": str(error)}, status_code=400)
    if judgement is not None:
        outcome = str(judgement.outcome)
        reason = judgement.reason
    if outcome == "failed_open" and judgement is None:
        answer: object = all_pass(args) if verb == "filter" else all_neutral(args)
    elif verb == "filter":
        assert judgement is not None
        answer = as_filter_result(args, judgement)
        for filter_reason, _ in judgement.failed.values():
            _child(EXTENDER_NODES_FILTERED, str(filter_reason)).inc()
    else:
        assert judgement is not None
        answer = as_priorities(nodes, judgement)
    if outcome == "failed_open":
        _child(EXTENDER_FAIL_OPEN, verb, reason).inc()
    _child(EXTENDER_REQUESTS, verb, outcome).inc()
    elapsed = time.perf_counter() - started
    EXTENDER_DURATION.labels(verb=verb).observe(elapsed)
    if log.isEnabledFor(logging.INFO):
        metadata = as_mapping(args.pod.get("metadata"))
        log_line(
            log,
            logging.INFO,
            "extender decision",
            {
                "verb": verb,
                "namespace": metadata.get("namespace"),
                "pod": metadata.get("name"),
                "decision": outcome,
                "reason": reason,
                "nodes": args.node_count,
                "filtered": len(judgement.failed) if judgement is not None else 0,
                "policy": judgement.policy if judgement is not None else "",
                "duration_ms": round(elapsed * 1000, 3),
            },
        )
    return Response(msgspec.json.encode(answer), media_type="application/json")


def _bad_request(message: str) -> JSONResponse:
    ADMISSION_REQUESTS.labels(outcome="malformed").inc()
    log.warning("malformed admission review", extra={"decision": "rejected-malformed", "reason": message})
    return JSONResponse({"error": "malformed AdmissionReview", "message": message}, status_code=400)


def create_app(context: WebhookContext) -> Starlette:
    async def mutate(request: Request) -> Response:
        started = time.perf_counter()
        try:
            async with received_body(
                request, max_bytes=context.admission_max_body_bytes, budget=context.bodies
            ) as body:
                try:
                    review = parse_review(body, max_body_bytes=context.admission_max_body_bytes)
                except MalformedReview as error:
                    return _bad_request(str(error))
                return await answer_review(review, body_bytes=len(body), started=started)
        except BodyRefused as refused:
            # No uid to answer with (the body was not read): the API server's failurePolicy
            # Ignore admits the pod unchanged, as for any failed call. See webhook.bodies.
            ADMISSION_REQUESTS.labels(outcome="malformed").inc()
            log.warning(
                "admission review refused",
                extra={"decision": "rejected-malformed", "reason": refused.message},
            )
            return refused.answer(error="AdmissionReview refused")

    async def answer_review(review: AdmissionRequest, *, body_bytes: int, started: float) -> Response:
        outcome = await _decide_within_deadline(review, context, body_bytes=body_bytes)
        answer = review_response(
            review.uid,
            patch_base64=outcome.patch_base64,
            warnings=outcome.warnings,
            audit={"decision": f"{outcome.outcome}:{outcome.reason}"},
        )
        elapsed = time.perf_counter() - started

        async def record() -> None:
            # The one guard for all bookkeeping: an error here would escape into the server
            # after the answer was sent and drop the keep-alive connection, so the next
            # review on it would go unanswered. Our own bug, so it keeps its traceback.
            try:
                _record(review, outcome, elapsed, namespace_known=context.namespace_known)
                if (
                    outcome.annotation_problems
                    and context.annotation_events is not None
                    and not review.dry_run
                ):
                    pod = review.object or {}
                    context.annotation_events.offer(
                        annotation_event(
                            pod, namespace=review.namespace, problems=outcome.annotation_problems
                        )
                    )
                if (
                    outcome.outcome is Outcome.MUTATED
                    and context.placement_events is not None
                    and not review.dry_run
                ):
                    context.placement_events.offer(
                        review.object_json,
                        namespace=review.namespace,
                        region=outcome.region,
                        decision=outcome.decision,
                        outcome=outcome,
                    )
            except Exception:
                log.exception("admission bookkeeping failed", extra={"uid": review.uid})

        # Metrics and the decision line after the answer is on the wire: the API server waits
        # for the answer, not for our bookkeeping.
        return Response(
            msgspec.json.encode(answer), media_type="application/json", background=BackgroundTask(record)
        )

    async def warn_templates(request: Request) -> Response:
        """A workload's pod template: the warnings its pods' annotations would get, nothing else.

        Always allowed, never a patch: a bad body is a 400 as for /mutate; anything else that goes
        wrong answers without warnings (the entry's failurePolicy is Ignore too).
        """
        try:
            async with received_body(
                request, max_bytes=context.admission_max_body_bytes, budget=context.bodies
            ) as body:
                try:
                    review = parse_review(body, max_body_bytes=context.admission_max_body_bytes)
                except MalformedReview as error:
                    log.warning("malformed template review", extra={"reason": str(error)})
                    return JSONResponse(
                        {"error": "malformed AdmissionReview", "message": str(error)}, status_code=400
                    )
                warnings = _template_warnings(review, context)
                return Response(
                    msgspec.json.encode(review_response(review.uid, warnings=list(warnings))),
                    media_type="application/json",
                )
        except BodyRefused as refused:
            log.warning("template review refused", extra={"reason": refused.message})
            return refused.answer(error="AdmissionReview refused")

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        if not context.ready():
            return JSONResponse({"status": "not ready"}, status_code=503)
        snapshot = context.signals()
        return JSONResponse(
            {
                "status": "ready",
                "provider": snapshot.provider,
                "freshRegions": sorted(snapshot.carbon),
                "maxSignalAgeSeconds": round(snapshot.max_age_seconds(), 1),
            }
        )

    async def filter_nodes(request: Request) -> Response:
        return await _extender_call(request, context, verb="filter")

    async def prioritize(request: Request) -> Response:
        return await _extender_call(request, context, verb="prioritize")

    return Starlette(
        routes=[
            Route("/mutate", mutate, methods=["POST"]),
            Route("/mutate-job", job_handler(context, within_deadline=within_deadline), methods=["POST"]),
            Route("/mutate-binding", binding_handler(context), methods=["POST"]),
            Route("/warn-templates", warn_templates, methods=["POST"]),
            Route("/filter", filter_nodes, methods=["POST"]),
            Route("/prioritize", prioritize, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )


# A typical pod is a few KiB and decides in well under a millisecond: doing that inline is
# cheaper than a thread hand-off. Bigger bodies go to a worker thread under a hard deadline.
INLINE_DECISION_MAX_BYTES = 64 * 1024


async def within_deadline(
    work: Callable[[], T],
    *,
    body_bytes: int,
    deadline_seconds: float,
    started: float,
    bodies: BodyBudget | None = None,
) -> T:
    """Run ``work`` and raise TimeoutError if it finishes later than ``started + deadline_seconds``.

    Small bodies decide inline (cheaper than a thread hand-off); big ones in a worker thread under
    a hard deadline, whose abandoned thread finishes on its own and whose result is dropped. Until
    it does, the body stays charged against ``bodies`` (see webhook.bodies.Straggler).
    """
    if body_bytes <= INLINE_DECISION_MAX_BYTES:
        result = work()
    else:
        straggler = Straggler()

        def tracked() -> T:
            try:
                return work()
            finally:
                straggler.finished()

        try:
            with anyio.fail_after(deadline_seconds):
                result = await anyio.to_thread.run_sync(tracked, abandon_on_cancel=True)
        except TimeoutError:
            if bodies is not None:
                straggler.abandon(lambda: bodies.charge_until_released(body_bytes))
            raise
    if time.perf_counter() - started > deadline_seconds:
        # Late is as bad as wrong: the caller may already have given up on us.
        raise TimeoutError
    return result


async def _decide_within_deadline(
    review: AdmissionRequest, context: WebhookContext, *, body_bytes: int
) -> ReviewOutcome:
    def run() -> ReviewOutcome:
        signals, config = context.signals(), context.config()
        namespace_info = context.namespace_info(review.namespace)
        policies = context.policies(config.known_regions)
        return context.outcomes.outcome(
            review,
            signals=signals,
            config=config,
            namespace_info=namespace_info,
            policies=policies,
            decide=lambda: decide(
                review,
                signals=signals,
                config=config,
                own_namespace=context.own_namespace,
                memo=context.memo,
                namespace_info=namespace_info,
                policies=policies,
            ),
        )

    try:
        return await within_deadline(
            run,
            body_bytes=body_bytes,
            deadline_seconds=context.deadline_seconds,
            started=time.perf_counter(),
            bodies=context.bodies,
        )
    except TimeoutError:
        return fail_open(Reason.DEADLINE, f"decision took longer than {context.deadline_seconds:g}s")
    except Exception:
        log.exception("admission decision failed", extra={"uid": review.uid})
        return fail_open(Reason.INTERNAL_ERROR, "internal error")


def _template_warnings(review: AdmissionRequest, context: WebhookContext) -> tuple[str, ...]:
    """The template's warnings, and a log line when there are any; none on any error of ours."""
    try:
        warnings = template_warnings(
            review,
            known_regions=context.config().known_regions,
            namespace_info=context.namespace_info(review.namespace),
            own_namespace=context.own_namespace,
            on_karmada=context.on_karmada,
        )
        if warnings:
            log.info(
                "template warnings",
                extra={
                    "uid": review.uid,
                    "namespace": review.namespace,
                    "object": f"{review.kind}/{review.name}",
                    "operation": review.operation,
                    "warnings": list(warnings),
                },
            )
    except UnreadableObject as error:
        log.warning("template review: object unreadable", extra={"uid": review.uid, "reason": str(error)})
        return ()
    except Exception:  # our bug: the apply goes on, unwarned
        log.exception("template review failed", extra={"uid": review.uid})
        return ()
    return warnings


_children: dict[tuple[str, ...], Any] = {}


def _child(metric: Counter | Gauge, *labels: str) -> Any:
    """A metric's labelled child, looked up once: labels() takes a lock and builds a key each time."""
    key = (metric._name, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def _record(
    review: AdmissionRequest,
    outcome: ReviewOutcome,
    elapsed_seconds: float,
    *,
    namespace_known: Callable[[str], bool],
) -> None:
    _child(ADMISSION_REQUESTS, str(outcome.outcome)).inc()
    ADMISSION_DURATION.observe(elapsed_seconds)
    if outcome.outcome is Outcome.FAILED_OPEN:
        _child(ADMISSION_FAIL_OPEN, str(outcome.reason)).inc()
    elif outcome.outcome is Outcome.SKIPPED:
        _child(ADMISSION_SKIPPED, str(outcome.reason)).inc()
    best = None
    if outcome.outcome is Outcome.MUTATED:
        namespace = NAMESPACE_LABEL_VALUES(review.namespace, known=namespace_known(review.namespace))
        _child(PLACEMENT_DECISIONS, namespace, outcome.region).inc()
        best = outcome.ranking.assessment(outcome.region) if outcome.ranking is not None else None
        if best is not None and best.versus_baseline is not None and not review.dry_run:
            _child(PROJECTED_NET_BENEFIT, namespace, outcome.region).inc(best.versus_baseline.net_usd)
            _child(PROJECTED_AVOIDED, namespace, outcome.region).inc(best.versus_baseline.avoided_grams)
    if not log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, object] = {
        "uid": review.uid,
        "namespace": review.namespace,
        "pod": review.pod_name,
        "operation": review.operation,
        "decision": str(outcome.outcome),
        "reason": str(outcome.reason),
        "region": outcome.region,
        "duration_ms": round(elapsed_seconds * 1000, 3),
        "dry_run": review.dry_run,
        "policy": outcome.policy,
    }
    if outcome.outcome is Outcome.MUTATED:
        fields["why"] = outcome.decision
        fields.update(outcome.log_fields)
    if outcome.warnings:
        fields["warnings"] = outcome.warnings
    log_line(log, logging.INFO, "admission decision", fields)
