"""Metrics owned by core (signals, prices, config), exported by whichever app runs them.

Base units and the ``ecopulse_`` prefix. App-specific metrics live in each app. Gauges that
describe the signal cache (age, freshness, intensity, prices) are computed at scrape time by
``core.signals.refresher.SignalMetricsCollector``, so an age never reads stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from core.accounting import Ledger
from core.version import VERSION

OTHER_LABEL_VALUE = "other"


class BoundedLabelValues:
    """Label values that come from callers (a namespace in a review), kept to a bounded set.

    Each distinct value is a series held for ever and sent with every scrape, and anyone who can
    reach the port can invent values. A value is used as is only while fewer than ``cap`` distinct
    values were seen and it is ``known`` (say, the namespace exists in the watch cache); past that,
    it becomes ``other``.
    """

    def __init__(self, *, cap: int) -> None:
        self.cap = cap
        self._seen: set[str] = set()

    def __call__(self, value: str, *, known: bool = True) -> str:
        if value in self._seen:
            return value
        if not known or len(self._seen) >= self.cap:
            return OTHER_LABEL_VALUE
        self._seen.add(value)
        return value


def inc_signed(gain: Counter, loss: Counter, *labels: str, amount: float) -> None:
    """A signed figure as a pair of counters (a counter only goes up): ``gain`` takes it when >= 0,
    ``loss`` its magnitude otherwise. Both children always exist, so ``gain - loss`` never drops a
    series that has only one side."""
    gain_child, loss_child = gain.labels(*labels), loss.labels(*labels)
    if amount >= 0:
        gain_child.inc(amount)
    else:
        loss_child.inc(-amount)


# The labels of every accounting metric, in the order AccrualMetrics passes them.
BY_PLACE = ("namespace", "region")


@dataclass(frozen=True, slots=True, kw_only=True)
class AccrualMetrics:
    """Where an accounting interval's ledger goes, per (namespace, region): what runs there as of
    the last tick (a gauge), emissions and cost, and the signed avoided carbon and saved cost. Each
    app declares its own metrics (names and help differ); this is the one way a ledger goes in."""

    running: Gauge
    emissions: Counter
    cost: Counter
    # The signed figures, each a (gain, loss) pair of counters for inc_signed:
    avoided_grams: tuple[Counter, Counter]  # (carbon avoided, carbon added)
    saved_usd: tuple[Counter, Counter]  # (cost saved, cost added)

    def __post_init__(self) -> None:
        for metric in (self.running, self.emissions, self.cost, *self.avoided_grams, *self.saved_usd):
            if tuple(metric._labelnames) != BY_PLACE:
                raise ValueError(f"{metric._name}: accounting metrics are labelled {BY_PLACE}")

    def record(self, ledger: Ledger, *, namespace_label: Callable[[str], str] = str) -> None:
        self.running.clear()  # a place no longer accounted has nothing running
        for (namespace, region), accrual in ledger.accruals.items():
            space = namespace_label(namespace)  # labels in the order of BY_PLACE
            self.running.labels(space, region).set(accrual.pods)
            self.emissions.labels(space, region).inc(accrual.emissions_grams)
            self.cost.labels(space, region).inc(accrual.cost_usd)
            inc_signed(*self.avoided_grams, space, region, amount=accrual.avoided_grams)
            inc_signed(*self.saved_usd, space, region, amount=accrual.saved_usd)

    def forget(self) -> None:
        """Another replica accounts now: it reports what runs, not us."""
        self.running.clear()


# How every run of a controller loop (a rebalancer cycle, a fleet pass) ends.
LOOP_OUTCOMES = ("completed", "leadership-lost", "not-leader", "not-synced", "error")
LOOP_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class LoopReport(Protocol):
    @property
    def outcome(self) -> str: ...


ReportT = TypeVar("ReportT", bound=LoopReport)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopMetrics:
    """What a controller loop exports about its runs: each run by outcome (one of ``LOOP_OUTCOMES``,
    every child there from the start so an alert on ``error`` sees 0 first), how long it took, and
    when the last one finished (completed or not), for the not-running alert."""

    runs: Counter
    duration: Histogram
    last_finished: Gauge

    def __post_init__(self) -> None:
        for outcome in LOOP_OUTCOMES:
            self.runs.labels(outcome=outcome)

    def run(
        self, step: Callable[[], ReportT], *, failed: Callable[[], ReportT], log: logging.Logger, message: str
    ) -> ReportT:
        """One run of ``step``, counted. A run that raises is logged (``message``) and counted as the
        ``failed()`` report; the loop runs the next one as usual."""
        started = time.perf_counter()
        try:
            report = step()
        except Exception:
            log.exception(message)
            report = failed()
        self.runs.labels(outcome=report.outcome).inc()
        self.duration.observe(time.perf_counter() - started)
        self.last_finished.set_to_current_time()
        return report


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not worth a log line
        pass


BUILD_INFO = Gauge(
    "ecopulse_build_info",
    "Always 1: the labels say which app this process is and which Eco-Pulse version it runs.",
    ["version", "app"],
)


def serve_metrics(*, port: int, address: str, app: str) -> ThreadingWSGIServer:
    """Serve ``/metrics`` (and nothing else: every other path is a 404) from a daemon thread.

    Every app serves its metrics here, so every app's scrape says what it is (``ecopulse_build_info``).
    """
    BUILD_INFO.labels(version=VERSION, app=app).set(1)
    exposition = make_wsgi_app()

    def only_metrics(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"only /metrics is served here\n"]
        answer: Iterable[bytes] = exposition(environ, start_response)
        return answer

    server = make_server(address, port, only_metrics, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


SIGNAL_FETCH_ERRORS = Counter(
    "ecopulse_signal_fetch_errors_total",
    "Failed carbon-intensity fetches by provider, region and kind of failure.",
    ["provider", "region", "kind"],
)
SIGNAL_FETCHES = Counter(
    "ecopulse_signal_fetches_total",
    "Successful carbon-intensity fetches by provider and region.",
    ["provider", "region"],
)
CONFIG_RELOADS = Counter(
    "ecopulse_config_reloads_total",
    "Configuration file reloads by result (applied, invalid, unusable: valid but cannot work).",
    ["result"],
)
for _result in ("applied", "invalid", "unusable"):
    CONFIG_RELOADS.labels(result=_result)
WATCH_RECONNECTS = Counter(
    "ecopulse_watch_reconnects_total",
    "Times a watch of the API server ended and was re-opened, by resource and reason "
    "(closed, too-short, error, expired, list-error).",
    ["resource", "reason"],
)
WATCH_RELISTS = Counter(
    "ecopulse_watch_relists_total",
    "Full lists of a resource from the API server (the first, and after 410 Gone or a failed list).",
    ["resource"],
)
