"""Wire the webhook process together: config, signals, TLS that reloads, metrics port, uvicorn."""

from __future__ import annotations

import gc
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from kubernetes.client import ApiClient, BatchV1Api
from starlette.routing import BaseRoute

from core.config import ConfigError
from core.forecast_book import ForecastBook
from core.kube.caches import (
    PolicyCache,
    PolicyRecord,
    lease_reflector,
    namespace_reflector,
    node_region_reflector,
    policy_reflectors,
)
from core.kube.client import load_api_client
from core.kube.lease_watch import lease_fresh
from core.kube.reflector import Reflector
from core.metrics import serve_metrics
from core.model import NamespaceInfo
from core.policy import PolicySet
from core.reload import ConfigSource, FileWatcher
from core.signals.periodic import PeriodicThread
from core.signals.refresher import SignalRefresher, following
from core.startup import log_config_error, read_settings
from webhook.app import WebhookContext, create_app
from webhook.bodies import BodyBudget
from webhook.eventapi import api_poster
from webhook.events import PLACEMENT_EVENTS, EventQueue, PlacementNotices
from webhook.forecasts import forecast_ticker
from webhook.metrics import TLS_RELOADS
from webhook.settings import WebhookSettings
from webhook.transport import ConnectionLimits, protocol_for

log = logging.getLogger("ecopulse.webhook")

GC_YOUNG_THRESHOLD = 10_000


def server_tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The one place our serving TLS settings live: used at start and for every reload."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


class TlsReloader:
    """Serves the current key pair; a reload builds a new context aside and switches to it.

    uvicorn listens with ``listening`` (built once, never changed). Its SNI callback, which OpenSSL
    runs for every ClientHello (with ``server_name`` None when the client sends none), moves the
    handshake onto ``_current``. A reload only replaces that one reference, so no handshake ever
    sees a context half-way through loading (in-place ``load_cert_chain`` on the live context
    failed handshakes and could abort the process). Open connections keep their certificate.
    A half-written or mismatched pair fails to build and the old one stays.
    """

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self._cert_file = cert_file
        self._key_file = key_file
        self._current = server_tls_context(cert_file, key_file)
        self.listening = server_tls_context(cert_file, key_file)
        self.listening.sni_callback = self._select
        self.watcher = FileWatcher([cert_file, key_file], self.reload)

    @property
    def current(self) -> ssl.SSLContext:
        return self._current

    def _select(
        self, ssl_object: ssl.SSLObject, _server_name: str | None, _listening: ssl.SSLContext
    ) -> None:
        ssl_object.context = self._current

    def reload(self) -> None:
        try:
            fresh = server_tls_context(self._cert_file, self._key_file)
        except (OSError, ssl.SSLError) as error:
            TLS_RELOADS.labels(result="invalid").inc()
            log.error(
                "TLS key pair reload refused; keeping the current one",
                extra={"cert_file": str(self._cert_file), "reason": str(error)},
            )
            return
        self._current = fresh  # one reference assignment: the atomic switch
        TLS_RELOADS.labels(result="applied").inc()
        log.info("TLS key pair reloaded", extra={"cert_file": str(self._cert_file)})


@dataclass
class RunningWebhook:
    """Handles on a started webhook, so tests and the CLI stop it the same way."""

    server: uvicorn.Server
    thread: threading.Thread | None
    config: ConfigSource
    refresher: SignalRefresher
    tls: TlsReloader
    port: int
    watches: list[Reflector[Any]] = field(default_factory=list)
    events: EventQueue | None = None
    placements: EventQueue | None = None
    ticker: PeriodicThread | None = None

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.tls.watcher.stop()
        self.config.stop()
        self.refresher.stop()
        if self.ticker is not None:
            self.ticker.stop()
        for watch in self.watches:
            watch.stop()
        for queue in (self.events, self.placements):
            if queue is not None:
                queue.stop()


# /mutate-binding reads one Job within the webhook's own deadline (timeoutSeconds 2 on Karmada).
JOB_READ_TIMEOUT_SECONDS = 1.0


def job_reader(api_client: ApiClient | None) -> Callable[[str, str], Mapping[str, object] | None]:
    """One Job read, for /mutate-binding (on the Karmada API server): short, never raising."""
    if api_client is None:
        return lambda _namespace, _name: None
    batch = BatchV1Api(api_client)

    def read(namespace: str, name: str) -> Mapping[str, object] | None:
        try:
            response: Any = batch.read_namespaced_job(
                name, namespace, _preload_content=False, _request_timeout=JOB_READ_TIMEOUT_SECONDS
            )
            found = json.loads(response.data)  # the raw answer: no model, no pydantic
        except Exception as error:
            log.warning(
                "cannot read the Job of a binding",
                extra={"job": f"{namespace}/{name}", "reason": str(error)[:200]},
            )
            return None
        return found if isinstance(found, dict) else None

    return read


def _cluster_client() -> ApiClient | None:
    try:
        api_client = load_api_client()
    except Exception as error:  # a broken kubeconfig must not stop admission: we fail open
        log.error(
            "cannot load a Kubernetes client; namespace hints, policies, NodeNames mode and Events are off",
            extra={"reason": str(error)},
        )
        return None
    if api_client is None:
        log.info("no cluster configured; namespace annotations, policies, NodeNames mode and Events are off")
    return api_client


Watches = tuple[Reflector[NamespaceInfo] | None, Reflector[str] | None, list[Reflector[PolicyRecord]]]


def _cluster_watches(api_client: ApiClient | None) -> Watches:
    """Namespaces (opt-out label, hint annotations), node regions and policies, when there is a cluster."""
    if api_client is None:
        return None, None, []
    namespaces = namespace_reflector(api_client)
    nodes = node_region_reflector(api_client)
    policies = list(policy_reflectors(api_client))
    namespaces.start()
    nodes.start()
    for policy_watch in policies:
        policy_watch.start()
    return namespaces, nodes, policies


def build(
    settings: WebhookSettings,
    *,
    sock: socket.socket | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    node_region: Callable[[str], str | None] | None = None,
    policies: Callable[[frozenset[str]], PolicySet] | None = None,
    read_job: Callable[[str, str], Mapping[str, object] | None] | None = None,
) -> RunningWebhook:
    """Create everything and start the background threads; the caller serves ``server``.

    ``node_region``, ``policies`` and ``read_job`` replace what the cluster would give (tests, bench).
    """
    config = ConfigSource.open(settings.config_path)
    refresher = following(config)

    api_client = _cluster_client() if settings.watch_cluster else None
    namespaces, nodes, policy_watches = _cluster_watches(api_client)
    lease_namespace, _, lease_name = settings.releaser_lease.partition("/")
    releaser = (
        lease_reflector(api_client, namespace=lease_namespace, name=lease_name)
        if api_client is not None
        else None
    )
    if releaser is not None:
        releaser.start()

    def releaser_live() -> bool:
        if releaser is None:
            return False
        return lease_fresh(
            releaser.items.get(settings.releaser_lease),
            now=datetime.now(UTC),
            tolerance_seconds=config.current.deferral.lease_tolerance_seconds,
        )

    # Lambdas on purpose: a reflector replaces ``items`` on every event.
    policy_cache = PolicyCache(*(lambda w=w: w.items for w in policy_watches))
    events = placements = None
    if api_client is not None:
        poster = api_poster(api_client, reporting_instance=socket.gethostname())
        events = EventQueue(poster)
        # Its own queue: a burst of placements never crowds out an ignored-annotation warning.
        placements = EventQueue(poster, results=PLACEMENT_EVENTS, name="placement-events")
    # The forecasts and error records a hold is judged by, kept as the releaser keeps them: one
    # snapshot each of its cycles (rebalancer.intervalSeconds, or fleet.intervalSeconds).
    book = ForecastBook()
    ticker = forecast_ticker(
        book,
        signals=refresher.snapshot,
        period_seconds=(lambda: config.current.fleet.interval_seconds)
        if settings.releaser == "fleet"
        else (lambda: config.current.rebalancer.interval_seconds),
        clock=lambda: datetime.now(UTC),
    )
    context = WebhookContext(
        config=lambda: config.current,
        signals=refresher.snapshot,
        deadline_seconds=settings.deadline_seconds,
        own_namespace=settings.own_namespace,
        # A lambda on purpose: the reflector replaces ``items`` on every event.
        namespace_info=(lambda name: namespaces.items.get(name))  # noqa: PLW0108
        if namespaces is not None
        else (lambda _: None),
        namespace_known=(lambda name: name in namespaces.items)
        if namespaces is not None
        else (lambda _: True),
        node_region=node_region
        or ((lambda name: nodes.items.get(name)) if nodes is not None else (lambda _: None)),  # noqa: PLW0108
        extender_deadline_seconds=settings.extender_deadline_seconds,
        annotation_events=events,
        placement_events=PlacementNotices(placements) if placements is not None else None,
        admission_max_body_bytes=settings.admission_max_body_bytes,
        extender_max_body_bytes=settings.extender_max_body_bytes,
        bodies=BodyBudget(max_bytes=settings.body_memory_max_bytes),
        policies=policies or policy_cache.policy_set,
        releaser_live=releaser_live,
        read_job=read_job or job_reader(api_client),
        forecast_book=book,
        releaser_dry_run=(lambda c: c.fleet.dry_run)
        if settings.releaser == "fleet"
        else (lambda c: c.rebalancer.dry_run),
        on_karmada=settings.releaser == "fleet",
    )
    app = create_app(context)
    app.router.routes.extend(extra_routes)
    tls = TlsReloader(settings.cert_file, settings.key_file)
    uv_config = uvicorn.Config(
        app,
        host=settings.bind_address,
        port=settings.port,
        # uvicorn serves our listening context as is (see TlsReloader); no context of its own.
        ssl_context_factory=lambda _config, _default: tls.listening,
        log_config=None,
        access_log=False,
        timeout_keep_alive=settings.keep_alive_seconds,
        # uvicorn's own httptools protocol, with header and body deadlines and a connection cap.
        http=protocol_for(
            ConnectionLimits(
                header_timeout_seconds=settings.header_timeout_seconds,
                body_timeout_seconds=settings.body_timeout_seconds,
                max_connections=settings.max_connections,
            )
        ),
        # Never hand a connection to a WebSocket protocol (were a library for it installed): it
        # would escape the deadlines above, and we serve no WebSocket route.
        ws="none",
        lifespan="off",
    )
    uv_config.load()
    server = uvicorn.Server(uv_config)
    port = sock.getsockname()[1] if sock is not None else settings.port

    # Everything built so far lives as long as the process: keep it out of the collector's
    # way so request-path garbage collections stay short (fewer latency spikes).
    gc.freeze()
    # A review keeps a few hundred objects alive while it is decided; at the default threshold
    # (700) a young-generation collection fell inside every thirtieth review. Our garbage is
    # freed by reference counting; the collector only has to find the rare cycle.
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    refresher.start()
    ticker.start()
    for queue in (events, placements):
        if queue is not None:
            queue.start()
    config.start_watching(interval_seconds=settings.reload_interval_seconds)
    tls.watcher.start(interval_seconds=settings.reload_interval_seconds, name="tls-watcher")
    running = RunningWebhook(
        server=server,
        thread=None,
        config=config,
        refresher=refresher,
        tls=tls,
        port=port,
        watches=[watch for watch in (namespaces, nodes, releaser, *policy_watches) if watch is not None],
        events=events,
        placements=placements,
        ticker=ticker,
    )
    if sock is not None:
        running.thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
        )
        running.thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not running.thread.is_alive():
                running.stop()
                raise RuntimeError("webhook server did not start")
            time.sleep(0.01)
    return running


def main() -> int:
    settings = read_settings("webhook", WebhookSettings.from_env)
    if settings is None:
        return 2
    log.info("starting eco-pulse webhook", extra={"settings": settings.redacted()})
    try:
        running = build(settings)
    except ConfigError as error:
        log_config_error(log, error)
        return 2
    except (OSError, ssl.SSLError) as error:
        log.error("cannot load TLS key pair", extra={"tls_dir": str(settings.tls_dir), "reason": str(error)})
        return 2
    serve_metrics(port=settings.metrics_port, address=settings.metrics_bind_address, app="webhook")
    log.info(
        "serving",
        extra={
            "port": settings.port,
            "metrics_port": settings.metrics_port,
            "config": str(settings.config_path or "<embedded default>"),
        },
    )
    try:
        running.server.run()
    finally:
        running.stop()
    return 0
