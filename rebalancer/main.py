"""Wire the rebalancer process: config, signals, watch caches, leader election, schedule, metrics."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from types import FrameType

from kubernetes import client

from core.config import ConfigError, EcoPulseConfiguration
from core.history import IntensityHistory
from core.kube.caches import (
    PolicyCache,
    namespace_reflector,
    node_reflector,
    pod_reflector,
    policy_reflectors,
)
from core.kube.client import load_api_client
from core.logs import configure_logging
from core.metrics import serve_metrics
from core.reload import ConfigSource
from core.settings import SettingsError
from core.signals.refresher import following
from core.version import VERSION
from rebalancer.accounting import Accountant
from rebalancer.cycle import CycleInputs, run_cycle
from rebalancer.kubeapi import KubeApi
from rebalancer.leader import LeaderElector
from rebalancer.policy_status import PolicyStatusWriter
from rebalancer.schedule import CycleSchedule
from rebalancer.settings import RebalancerProcessSettings

log = logging.getLogger("ecopulse.rebalancer")


def main() -> int:
    try:
        settings = RebalancerProcessSettings.from_env()
    except SettingsError as error:
        print(f"eco-pulse rebalancer: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        config = ConfigSource.open(settings.config_path)
    except ConfigError as error:
        log.error("configuration invalid", extra={"path": error.source, "problems": error.problems})
        return 2
    # The first line says whether this process may evict, before it touches a cluster.
    dry_run = config.current.rebalancer.dry_run
    log.info(
        "starting eco-pulse rebalancer in dry run mode: nothing is evicted"
        if dry_run
        else "starting eco-pulse rebalancer in LIVE mode: pods may be evicted",
        extra={"mode": "dry-run" if dry_run else "live", "version": VERSION, "settings": settings.redacted()},
    )
    api_client = load_api_client()
    if api_client is None:
        log.error("no cluster to talk to: run in-cluster or set KUBECONFIG")
        return 2

    refresher = following(config)
    pods, nodes, namespaces = (
        pod_reflector(api_client),
        node_reflector(api_client),
        namespace_reflector(api_client),
    )
    for reflector in (pods, nodes, namespaces):
        reflector.start()
    # Policies are not waited for (synced): without the CRDs the set is empty and the
    # rebalancer works as configured.
    namespaced_policies, cluster_policies = policy_reflectors(api_client)
    namespaced_policies.start()
    cluster_policies.start()
    policy_cache = PolicyCache(lambda: namespaced_policies.items, lambda: cluster_policies.items)

    leader: LeaderElector | None = None
    if settings.leader_election:
        leader = LeaderElector(
            api=client.CoordinationV1Api(api_client),
            namespace=settings.namespace,
            name=settings.lease_name,
            identity=settings.identity,
        )
        leader.start()

    api = KubeApi(api_client, reporting_instance=settings.identity)
    inputs = CycleInputs(
        config=lambda: config.current,
        signals=refresher.snapshot,
        pods=lambda: pods.items,
        nodes=lambda: nodes.items,
        namespaces=lambda: namespaces.items,
        synced=lambda: all(r.synced.is_set() for r in (pods, nodes, namespaces)),
        is_leader=(lambda: leader.is_leader) if leader is not None else (lambda: True),
        clock=lambda: datetime.now(UTC),
        api=api,
        own_namespace=settings.namespace,
        accountant=Accountant(),
        policies=policy_cache.policy_set,
        status_writer=PolicyStatusWriter(api=api, records=policy_cache.records),
        history=IntensityHistory(window_hours=config.current.rebalancer.history_window_hours),
    )
    schedule = CycleSchedule(
        lambda: run_cycle(inputs), interval_seconds=config.current.rebalancer.interval_seconds
    )

    def on_config(new: EcoPulseConfiguration) -> None:
        schedule.reschedule(new.rebalancer.interval_seconds)

    config.subscribe(on_config)
    serve_metrics(port=settings.metrics_port, address=settings.metrics_bind_address, app="rebalancer")
    refresher.start()
    config.start_watching(interval_seconds=settings.reload_interval_seconds)
    schedule.start()
    log.info(
        "running",
        extra={
            "interval_seconds": config.current.rebalancer.interval_seconds,
            "dry_run": config.current.rebalancer.dry_run,
            "metrics_port": settings.metrics_port,
        },
    )

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    schedule.stop()
    if leader is not None:
        leader.stop()  # releases the Lease so the other replica takes over at once
    for reflector in (pods, nodes, namespaces):
        reflector.stop()
    namespaced_policies.stop()
    cluster_policies.stop()
    refresher.stop()
    config.stop()
    return 0
