"""The policies' status, written by the leader once per cycle through one choke point.

:func:`statuses` is pure: from the policy records (as the watch has them, with the status the
server holds), the resolved policy set, the pod cache, the accounting interval and the recent
moves, it says what each policy's status should be. :class:`PolicyStatusWriter` keeps the moves
of the last hour and patches only the statuses that changed (``KubeApi.write_policy_status``).

- ``Invalid``: the object could not be read, or names a region the configuration does not know;
  the message names the field. Such a policy is ignored (pods are never blocked by it).
- ``Conflict``: it ties with another policy of its layer for some pod (equally specific); the
  oldest applies, and both carry the condition, naming the other.
- ``Ready``: True (reason ``Applied``) when valid and applied where it matches; False with reason
  ``Invalid`` or ``Conflict`` (it lost every tie) otherwise.
- ``podsMatched``: scheduled pods it applies to now; ``podsPlacedLastHour``: pods created in the
  last hour that the webhook placed under it (their ``ecopulse.io/policy`` annotation);
  ``podsMovedLastHour``: pods this leader evicted under it in the last hour (a new leader starts
  from 0: dry runs move nothing and count nothing).
- ``carbonAvoidedGrams`` and ``costSavedUsd``: the totals since creation, carried in the status
  itself (so they survive leader changes) and advanced by each accounting interval.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from core.accounting import Accrual
from core.kube.caches import PolicyRecord
from core.managed import unmanaged
from core.model import NamespaceInfo, PodRecord
from core.policy import Condition, PolicySet, PolicyStatus, resolve

log = logging.getLogger("ecopulse.rebalancer")

HOUR = timedelta(hours=1)
# At most this many moves remembered (the last hour of a very busy cluster).
MAX_REMEMBERED_MOVES = 100_000


@dataclass(slots=True)
class _Tally:
    matched: int = 0
    placed: int = 0
    conflicts_with: set[str] = field(default_factory=set)
    won_a_tie: bool = False


def _utc(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(
    previous: PolicyStatus, wanted: list[tuple[str, bool, str, str]], *, generation: int, now: datetime
) -> tuple[Condition, ...]:
    """(type, true?, reason, message) to conditions, keeping the transition time while unchanged."""
    conditions = []
    for kind, true, reason, message in wanted:
        status = "True" if true else "False"
        before = previous.condition(kind)
        since = before.last_transition_time if before is not None and before.status == status else _utc(now)
        conditions.append(
            Condition(
                type=kind,
                status=status,
                reason=reason,
                message=message[:1000],
                last_transition_time=since,
                observed_generation=generation,
            )
        )
    return tuple(conditions)


def statuses(
    records: Iterable[PolicyRecord],
    *,
    policies: PolicySet,
    pods: Iterable[PodRecord],
    namespaces: Mapping[str, NamespaceInfo],
    accrued: Mapping[str, Accrual],
    moved: Mapping[str, int],
    now: datetime,
    own_namespace: str = "",
) -> dict[str, tuple[PolicyRecord, PolicyStatus]]:
    """ref -> (record, the status it should have). Pure."""
    tallies: dict[str, _Tally] = {}
    for pod in pods:
        if (
            unmanaged(pod.subject, namespace=namespaces.get(pod.namespace), own_namespace=own_namespace)
            is not None
        ):
            continue
        resolution = resolve(policies, namespace=pod.namespace, pod_labels=pod.labels)
        for policy in resolution.applied:
            tallies.setdefault(policy.ref, _Tally()).matched += 1
        conflicts = resolution.conflicts
        for policy in conflicts:
            tally = tallies.setdefault(policy.ref, _Tally())
            tally.conflicts_with.update(p.ref for p in conflicts if p is not policy)
            if policy in resolution.applied:
                tally.won_a_tie = True
        placed = pod.placed
        if placed is not None and placed.created_at is not None and now - placed.created_at <= HOUR:
            for ref in placed.refs.split(","):
                tallies.setdefault(ref, _Tally()).placed += 1

    result: dict[str, tuple[PolicyRecord, PolicyStatus]] = {}
    for record in records:
        ref = record.ref
        tally = tallies.get(ref, _Tally())
        problems = policies.invalid.get(ref, ()) if record.policy is not None else (record.problem,)
        invalid = bool(problems)
        conflict = bool(tally.conflicts_with) and not invalid
        lost = conflict and not tally.won_a_tie
        if invalid:
            ready = (False, "Invalid", "ignored: " + "; ".join(problems))
        elif lost:
            ready = (
                False,
                "Conflict",
                f"an older, equally specific policy applies: {sorted(tally.conflicts_with)[0]}",
            )
        else:
            ready = (True, "Applied", f"applies to {tally.matched} pods")
        wanted = [
            ("Ready", *ready),
            ("Invalid", invalid, "Invalid" if invalid else "Valid", "; ".join(problems)),
            (
                "Conflict",
                conflict,
                "Conflict" if conflict else "NoConflict",
                (
                    "selects the same pods as "
                    + ", ".join(sorted(tally.conflicts_with)[:5])
                    + " with as specific a selector; the oldest applies"
                )
                if conflict
                else "",
            ),
        ]
        previous = record.status
        gained = accrued.get(ref)
        result[ref] = (
            record,
            PolicyStatus(
                observed_generation=record.generation,
                conditions=_conditions(previous, wanted, generation=record.generation, now=now),
                pods_matched=tally.matched,
                pods_placed_last_hour=tally.placed,
                pods_moved_last_hour=moved.get(ref, 0),
                carbon_avoided_grams=previous.carbon_avoided_grams
                + (gained.avoided_grams if gained else 0.0),
                cost_saved_usd=previous.cost_saved_usd + (gained.saved_usd if gained else 0.0),
            ),
        )
    return result


class PolicyStatusApi(Protocol):
    """What the writer needs of the API (rebalancer.kubeapi.KubeApi has it)."""

    def write_policy_status(
        self, *, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> bool: ...


class PolicyStatusWriter:
    """Remembers the last hour's moves; writes each changed status once per cycle (leader only)."""

    def __init__(self, *, api: PolicyStatusApi, records: Callable[[], list[PolicyRecord]]) -> None:
        self._api = api
        self._records = records
        self._moves: deque[tuple[datetime, str]] = deque(maxlen=MAX_REMEMBERED_MOVES)

    def moved(self, policy_refs: str, *, at: datetime) -> None:
        for ref in filter(None, policy_refs.split(",")):
            self._moves.append((at, ref))

    def reset(self) -> None:
        """Leadership lost: the next leader counts its own moves."""
        self._moves.clear()

    def write(
        self,
        *,
        policies: PolicySet,
        pods: Iterable[PodRecord],
        namespaces: Mapping[str, NamespaceInfo],
        accrued: Mapping[str, Accrual],
        now: datetime,
        own_namespace: str = "",
    ) -> int:
        """Patch the statuses that differ from what the server has; returns how many were written."""
        while self._moves and now - self._moves[0][0] > HOUR:
            self._moves.popleft()
        moved: dict[str, int] = {}
        for _, ref in self._moves:
            moved[ref] = moved.get(ref, 0) + 1
        wanted = statuses(
            self._records(),
            policies=policies,
            pods=pods,
            namespaces=namespaces,
            accrued=accrued,
            moved=moved,
            now=now,
            own_namespace=own_namespace,
        )
        written = 0
        for record, status in wanted.values():
            if status.to_wire() == record.status.to_wire():
                continue
            if self._api.write_policy_status(
                kind=record.kind, namespace=record.namespace, name=record.name, status=status.to_wire()
            ):
                written += 1
        return written
