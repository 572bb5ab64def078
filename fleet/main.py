"""Wire the fleet-mode process: config, signals, watch caches of the Karmada API server, leader
election on a Lease there, the pass loop, metrics."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from kubernetes import client, config

from core.kube import lease
from core.kube.client import load_api_client
from core.metrics import serve_metrics
from core.signals.refresher import following
from core.startup import start_controller, stop_on_signals
from fleet import metrics
from fleet.cycle import FleetAccountant, PassInputs, run_pass
from fleet.deferral_loop import DeferralTurn
from fleet.karmada import FleetCaches, KarmadaApi, fleet_caches
from fleet.planner import FleetSnapshot
from fleet.settings import FleetProcessSettings

log = logging.getLogger("ecopulse.fleet")


class FleetLeaderElector(lease.LeaderElector):
    """Only the holder of the ``eco-pulse-fleet`` Lease (on the Karmada API server) writes placements."""

    default_lease_name = "eco-pulse-fleet"
    leader_gauge = metrics.LEADER


def karmada_api_client(
    settings: FleetProcessSettings, environ: Mapping[str, str] | None = None
) -> client.ApiClient | None:
    """The Karmada API server's client: its own kubeconfig when given, else as every app finds one."""
    if settings.karmada_kubeconfig is not None:
        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(settings.karmada_kubeconfig), client_configuration=configuration
        )
        return client.ApiClient(configuration)
    return load_api_client(environ)


def snapshot_of(caches: FleetCaches) -> FleetSnapshot:
    return FleetSnapshot(
        clusters=caches.clusters.items,
        policies=[*caches.policies.items.values(), *caches.cluster_policies.items.values()],
        workloads=caches.deployments.items,
        bindings={b.resource_key: b for b in caches.bindings.items.values()},
        namespaces=caches.namespaces.items,
    )


def main() -> int:
    started = start_controller(
        log,
        app="fleet",
        title="fleet mode",
        from_env=FleetProcessSettings.from_env,
        dry_run=lambda config: config.fleet.dry_run,
        dry_run_effect="no placement is changed",
        live_effect="policy placements may be changed",
    )
    if started is None:
        return 2
    settings, source = started
    try:
        api_client = karmada_api_client(settings)
    except Exception as error:  # an unreadable kubeconfig: say which, and stop
        log.error("cannot load the Karmada kubeconfig", extra={"error": f"{type(error).__name__}: {error}"})
        return 2
    if api_client is None:
        log.error("no Karmada API server to talk to: set ECOPULSE_KARMADA_KUBECONFIG or KUBECONFIG")
        return 2

    refresher = following(source)
    caches = fleet_caches(api_client)
    for reflector in caches.all():
        reflector.start()

    leader: FleetLeaderElector | None = None
    if settings.leader_election:
        leader = FleetLeaderElector(
            api=client.CoordinationV1Api(api_client),
            namespace=settings.namespace,
            name=settings.lease_name,
            identity=settings.identity,
        )
        leader.start()

    api = KarmadaApi(api_client, reporting_instance=settings.identity)
    deferral = DeferralTurn(
        jobs=lambda: caches.jobs.items,
        # Read each pass: a reflector swaps its items mapping on every change.
        bindings=lambda: tuple(caches.job_bindings.items.values()),
        clusters=lambda: tuple(caches.clusters.items.values()),
        namespace_annotations=lambda: {
            name: info.hint_annotations for name, info in caches.namespaces.items.items()
        },
        api=api,
        synced=lambda: caches.deferral_synced,
    )
    inputs = PassInputs(
        config=lambda: source.current,
        signals=refresher.snapshot,
        snapshot=lambda: snapshot_of(caches),
        synced=lambda: caches.synced,
        is_leader=(lambda: leader.is_leader) if leader is not None else (lambda: True),
        api=api,
        own_namespace=settings.namespace,
        accountant=FleetAccountant(),
        deferral=deferral,
    )
    serve_metrics(port=settings.metrics_port, address=settings.metrics_bind_address, app="fleet")
    refresher.start()
    source.start_watching(interval_seconds=settings.reload_interval_seconds)

    stop = stop_on_signals(log)
    log.info(
        "running",
        extra={
            "interval_seconds": source.current.fleet.interval_seconds,
            "dry_run": source.current.fleet.dry_run,
            "metrics_port": settings.metrics_port,
        },
    )
    # The interval is read each time round, so a reloaded configuration applies from the next pass.
    stop.wait(min(5.0, source.current.fleet.interval_seconds))
    while not stop.is_set():
        run_pass(inputs)
        stop.wait(source.current.fleet.interval_seconds)
    if leader is not None:
        leader.stop()  # releases the Lease so the other replica takes over at once
    for reflector in caches.all():
        reflector.stop()
    refresher.stop()
    source.stop()
    return 0
