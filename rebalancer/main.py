"""Wire the rebalancer process: config, signals, watch caches, leader election, schedule, metrics."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from kubernetes import client

from core.config import EcoPulseConfiguration
from core.history import IntensityHistory
from core.kube.caches import (
    PolicyCache,
    job_reflector,
    namespace_reflector,
    node_reflector,
    pod_reflector,
    policy_reflectors,
)
from core.kube.client import load_api_client
from core.metrics import serve_metrics
from core.signals.refresher import following
from core.startup import start_controller, stop_on_signals
from rebalancer.accounting import Accountant
from rebalancer.cycle import CycleInputs, run_cycle
from rebalancer.kubeapi import KubeApi
from rebalancer.leader import LeaderElector
from rebalancer.policy_status import PolicyStatusWriter
from rebalancer.refusals import RefusalEvents
from rebalancer.release_loop import ReleaseLoop
from rebalancer.releaser import JobReleaser
from rebalancer.schedule import CycleSchedule
from rebalancer.settings import RebalancerProcessSettings

log = logging.getLogger("ecopulse.rebalancer")


def main() -> int:
    started = start_controller(
        log,
        app="rebalancer",
        from_env=RebalancerProcessSettings.from_env,
        dry_run=lambda config: config.rebalancer.dry_run,
        dry_run_effect="nothing is evicted",
        live_effect="pods may be evicted",
    )
    if started is None:
        return 2
    settings, config = started
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
    jobs = job_reflector(api_client)
    for reflector in (pods, nodes, namespaces, jobs):
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
        releases=ReleaseLoop(
            jobs=lambda: jobs.items,
            synced=jobs.synced.is_set,
            releaser=JobReleaser(
                api_client, reporting_instance=settings.identity, clock=lambda: datetime.now(UTC)
            ),
        ),
        refusal_events=RefusalEvents(),
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

    stop = stop_on_signals(log)
    stop.wait()
    schedule.stop()
    if leader is not None:
        leader.stop()  # releases the Lease so the other replica takes over at once
    for reflector in (pods, nodes, namespaces, jobs):
        reflector.stop()
    namespaced_policies.stop()
    cluster_policies.stop()
    refresher.stop()
    config.stop()
    return 0
