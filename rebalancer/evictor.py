"""The only code that evicts: limits, dry run, the Eviction API, Events, logs and metrics.

Limits are checked before each call, descheduler-style: per cycle, per namespace, per node and
per workload, so a region turning green does not stampede the cluster. A 429 (a
PodDisruptionBudget says no) is counted and skipped, a 404 (already gone) ignored.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from prometheus_client import Counter

from core.config import RebalancerSettings
from core.kube.events import EventRequest
from rebalancer.explain import explain_move, figure_fields
from rebalancer.kubeapi import EvictionOutcome, EvictionRequest, EvictionResult
from rebalancer.planner import Candidate

log = logging.getLogger("ecopulse.rebalancer")

EVICTIONS = Counter(
    "ecopulse_rebalancer_evictions_total",
    "Eviction attempts by result (evicted, dry-run, blocked, gone, forbidden, error, limit-*) and namespace.",
    ["result", "namespace", "reason"],
)


class Limit(StrEnum):
    CYCLE = "limit-cycle"
    NAMESPACE = "limit-namespace"
    NODE = "limit-node"
    WORKLOAD = "limit-workload"


class EvictionApi(Protocol):
    def evict(self, request: EvictionRequest) -> EvictionResult: ...

    def post_event(self, request: EventRequest) -> bool: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    candidate: Candidate
    result: str  # an EvictionOutcome or a Limit


REASON = "CarbonRebalance"


def explain(candidate: Candidate) -> str:
    """The Event note and log reason: from where to where, intensities, net benefit and its parts."""
    return explain_move(candidate)


_EVICTED_NOTHING = frozenset({EvictionOutcome.BLOCKED, EvictionOutcome.GONE, EvictionOutcome.FORBIDDEN})


class Evictor:
    def __init__(self, *, api: EvictionApi, settings: RebalancerSettings) -> None:
        self._api = api
        self._settings = settings
        self._per_namespace: Tally[str] = Tally()
        self._per_node: Tally[str] = Tally()
        self._per_workload: Tally[str] = Tally()
        self._total = 0

    def _limit(self, candidate: Candidate) -> Limit | None:
        settings = self._settings
        pod = candidate.pod
        if self._total + 1 > settings.max_evictions_per_cycle:
            return Limit.CYCLE
        if self._per_namespace[pod.namespace] + 1 > settings.max_evictions_per_namespace:
            return Limit.NAMESPACE
        if self._per_node[pod.node_name] + 1 > settings.max_evictions_per_node:
            return Limit.NODE
        if (
            pod.workload is not None
            and self._per_workload[pod.workload] + 1 > settings.max_evictions_per_workload
        ):
            return Limit.WORKLOAD
        return None

    def evict(self, candidate: Candidate) -> Attempt:
        pod = candidate.pod
        why = explain(candidate)
        limit = self._limit(candidate)
        if limit is not None:
            return self._record(candidate, str(limit), why)
        dry_run = self._settings.dry_run
        # In dry run the API server still checks the request (RBAC, PDBs) and changes nothing.
        answer = self._api.evict(
            EvictionRequest(
                namespace=pod.namespace,
                name=pod.name,
                uid=pod.uid or None,
                grace_period_seconds=self._settings.eviction_grace_period_seconds,
                dry_run=dry_run,
                reason=f"eco-pulse: {why}"[:250],
            )
        )
        # Only a known refusal evicted nothing; an unknown outcome (a timeout after the server acted)
        # may have evicted, so it uses up the limits as an eviction would.
        if answer.outcome not in _EVICTED_NOTHING:
            self._total += 1
            self._per_namespace[pod.namespace] += 1
            self._per_node[pod.node_name] += 1
            if pod.workload is not None:
                self._per_workload[pod.workload] += 1
        if answer.outcome is EvictionOutcome.EVICTED:
            self._api.post_event(
                EventRequest(
                    namespace=pod.namespace,
                    involved={
                        "kind": "Pod",
                        "apiVersion": "v1",
                        "name": pod.name,
                        "uid": pod.uid,
                        "namespace": pod.namespace,
                    },
                    reason=REASON,
                    message=f"Evicted by eco-pulse, {why}",
                )
            )
            # The owner's apiVersion as its reference gives it (a Job is batch/v1, a
            # ReplicationController v1); without one the Event could not name the object.
            if pod.owner_kind is not None and pod.owner_name is not None and pod.owner_api_version:
                self._api.post_event(
                    EventRequest(
                        namespace=pod.namespace,
                        involved={
                            "kind": pod.owner_kind,
                            "apiVersion": pod.owner_api_version,
                            "name": pod.owner_name,
                            "namespace": pod.namespace,
                        },
                        reason=REASON,
                        message=f"Evicted pod {pod.name}, {why}",
                    )
                )
        return self._record(candidate, str(answer.outcome), why, detail=answer.message)

    def _record(self, candidate: Candidate, result: str, why: str, *, detail: str = "") -> Attempt:
        pod = candidate.pod
        EVICTIONS.labels(result=result, namespace=pod.namespace, reason=REASON).inc()
        log.info(
            "rebalancer decision",
            extra={
                "namespace": pod.namespace,
                "pod": pod.name,
                "node": pod.node_name,
                "decision": result,
                "dry_run": self._settings.dry_run,
                "source_region": candidate.source_region,
                "target_region": candidate.target_region,
                "net_benefit_usd": round(candidate.benefit.net_usd, 6),
                **figure_fields(candidate.figures),
                "reason": why,
                "detail": detail,
                "policy": candidate.policy,
            },
        )
        return Attempt(candidate=candidate, result=result)
