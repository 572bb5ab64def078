"""What a deferrable Job asks, read from its JSON and annotations: the deadline, the run's length,
and whether we may hold it at all. Pure.

The webhook reads it at a Job's CREATE (to hold), the rebalancer's release loop and the janitor
read it of the Jobs they watch (to release). One reader, so all three agree.

A Job opts in with ``ecopulse.io/finish-within`` (a Go duration from creation) or
``ecopulse.io/deadline`` (RFC 3339) on itself; its namespace's annotations and the policies that
select it can give ``finish-within`` and ``expected-runtime-hours`` as defaults (the Job's own
win, field by field, as for every hint). A deadline only ever comes from the Job itself: an
absolute instant is no default. A bad value is a named problem and never a hold.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from core.model import (
    DEADLINE_ANNOTATION,
    EXPECTED_RUNTIME_ANNOTATION,
    FINISH_WITHIN_ANNOTATION,
    HELD_AT_ANNOTATION,
    RELEASE_BY_ANNOTATION,
    PodDemand,
)
from core.podspec import MAX_HORIZON_HOURS, as_list, as_mapping, pod_demand, string_map

# Kueue (sigs.k8s.io/kueue v0.17.0, feature gate AdmissionGatedBy): a Job carrying the queue-name
# label is Kueue's, which owns spec.suspend. A comma-separated list of controller names in the
# admission-gated-by annotation, set at creation, keeps its Workload from reserving quota until
# every name is removed (names may only be removed after creation).
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_GATE_ANNOTATION = "kueue.x-k8s.io/admission-gated-by"
GATE_NAME = "ecopulse.io/deferral"

# spec.managedBy's value for the built-in Job controller: the same as not set.
BUILTIN_JOB_CONTROLLER = "kubernetes.io/job-controller"
# A deadline further away than this is a typo (a year), not a plan.
MAX_DEFERRAL_HOURS = float(MAX_HORIZON_HOURS)


class NotDeferred(StrEnum):
    """Why a Job that asked for a deadline is not held (also docs/reasons.md)."""

    INVALID = "deferral-invalid"  # an annotation or policy value we cannot read
    NO_RUNTIME = "no-runtime"  # no expected-runtime-hours: nothing can be planned
    USER_SUSPENDED = "user-suspended"  # created suspended: someone else decides when it starts
    MANAGED_BY = "managed-by"  # spec.managedBy: another controller runs it
    DEADLINE_TOO_CLOSE = "deadline-too-close"  # no slack left after the run and the margin
    NO_RELEASER = "no-releaser"  # the releasing controller's Lease is stale, or it runs dry
    NOT_WORTH_WAITING = "not-worth-waiting"  # the best start found beats now by less than the minimum
    NO_FORECAST = "no-forecast"  # no fresh signals to plan with
    # The saving does not survive the forecast's measured error, or that error is not known yet.
    NOT_ROBUST = "not-robust-to-forecast-error"


# --- values ------------------------------------------------------------------------------------

_GO_UNITS_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def go_duration_seconds(text: str) -> float:
    """Go's time.ParseDuration for non-negative values ("24h", "1h30m", "90s", "0.5h"); ValueError."""
    raw = text.strip()
    if raw.startswith("+"):
        raw = raw[1:]
    if raw == "0":
        return 0.0
    if not raw or raw.startswith("-"):
        raise ValueError(f"not a non-negative Go duration: {text[:30]!r}")
    total, position = 0.0, 0
    while position < len(raw):
        match = _GO_PART.match(raw, position)
        if match is None:
            raise ValueError(f"not a Go duration (like 24h or 1h30m): {text[:30]!r}")
        total += float(match.group(1)) * _GO_UNITS_SECONDS[match.group(2)]
        position = match.end()
    if not math.isfinite(total):
        raise ValueError(f"duration out of range: {text[:30]!r}")
    return total


def rfc3339(text: str) -> datetime:
    """An RFC 3339 instant with its offset ("2026-12-08T06:00:00Z"); ValueError otherwise."""
    raw = text.strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", raw):
        raise ValueError(f"not an RFC 3339 time (like 2026-12-08T06:00:00Z): {text[:40]!r}")
    return datetime.fromisoformat(raw.replace("z", "Z").replace("Z", "+00:00")).astimezone(UTC)


def stamp(at: datetime) -> str:
    """How our annotations write an instant: RFC 3339, UTC, whole seconds."""
    return at.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --- intent ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DeferralIntent:
    """A Job's deadline and run length, resolved over its namespace and policies."""

    deadline: datetime
    runtime_hours: float | None  # None: not given anywhere (the Job runs now, with a warning)
    # The annotations to write on the Job so it carries its resolved intent (only the absent ones).
    resolved: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeferralProblem:
    """A deferral asked for but unreadable: the Job runs now, and the message says why."""

    reason: NotDeferred
    message: str


def read_intent(
    own: Mapping[str, str], inherited: Mapping[str, str], *, created_at: datetime
) -> DeferralIntent | DeferralProblem | None:
    """The Job's own annotations over ``inherited`` (namespace, then policies, already merged).

    None: the Job asks for no deadline (not deferrable). A deadline on the Job and a
    finish-within both count: the earlier one binds.
    """
    deadlines: list[datetime] = []
    raw_deadline = own.get(DEADLINE_ANNOTATION)
    if raw_deadline is not None:
        try:
            deadlines.append(rfc3339(raw_deadline))
        except ValueError as error:
            return DeferralProblem(reason=NotDeferred.INVALID, message=f"{DEADLINE_ANNOTATION}: {error}")
    raw_within = own.get(FINISH_WITHIN_ANNOTATION, inherited.get(FINISH_WITHIN_ANNOTATION))
    if raw_within is not None:
        try:
            within_seconds = go_duration_seconds(raw_within)
        except ValueError as error:
            return DeferralProblem(reason=NotDeferred.INVALID, message=f"{FINISH_WITHIN_ANNOTATION}: {error}")
        if within_seconds > MAX_DEFERRAL_HOURS * 3600:
            return DeferralProblem(
                reason=NotDeferred.INVALID,
                message=f"{FINISH_WITHIN_ANNOTATION}: over {MAX_DEFERRAL_HOURS:g}h ({raw_within[:20]!r})",
            )
        deadlines.append(created_at + timedelta(seconds=within_seconds))
    if not deadlines:
        return None
    deadline = min(deadlines)
    resolved: dict[str, str] = {}
    if raw_deadline is None:
        resolved[DEADLINE_ANNOTATION] = stamp(deadline)
    runtime: float | None = None
    raw_runtime = own.get(EXPECTED_RUNTIME_ANNOTATION, inherited.get(EXPECTED_RUNTIME_ANNOTATION))
    if raw_runtime is not None:
        try:
            runtime = float(raw_runtime)
        except ValueError:
            runtime = math.nan
        if not math.isfinite(runtime) or not 0 < runtime <= MAX_DEFERRAL_HOURS:
            return DeferralProblem(
                reason=NotDeferred.INVALID,
                message=f"{EXPECTED_RUNTIME_ANNOTATION}: not a number of hours > 0 ({raw_runtime[:20]!r})",
            )
        if EXPECTED_RUNTIME_ANNOTATION not in own:
            resolved[EXPECTED_RUNTIME_ANNOTATION] = raw_runtime
    return DeferralIntent(deadline=deadline, runtime_hours=runtime, resolved=resolved)


# --- the Job object ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFacts:
    """What holding and releasing read of a batch/v1 Job as JSON."""

    namespace: str
    name: str
    uid: str
    annotations: Mapping[str, str]
    labels: Mapping[str, str]  # the Job's labels under its pod template's (what policies select)
    suspended: bool
    managed_by: str
    queue_name: str  # Kueue's queue-name label, "" when Kueue does not manage it
    gates: tuple[str, ...]  # the names in Kueue's admission-gated-by annotation
    started: bool  # it has run a pod (status.startTime): its template is frozen for good
    finished_at: datetime | None  # the Complete condition's time, or status.completionTime
    created_at: datetime | None
    template: Mapping[str, object]  # spec.template, for the pods' region constraints
    parallelism: int = 1  # pods running at once
    # Read once per watch event, not once per cycle: one pod's demand, and our hold's instants
    # (None when absent or unreadable: an unreadable release-by counts as past).
    demand: PodDemand = field(default_factory=lambda: PodDemand(cpu_cores=0.0, memory_gib=0.0))
    held_at: datetime | None = None
    release_by: datetime | None = None

    @property
    def kueue(self) -> bool:
        return bool(self.queue_name)

    @property
    def gated_by_us(self) -> bool:
        return GATE_NAME in self.gates

    @property
    def held(self) -> bool:
        """Our hold is on: we recorded it, and the Job still waits on us (suspended or gated)."""
        if HELD_AT_ANNOTATION not in self.annotations or self.started:
            return False
        return self.gated_by_us if self.kueue else self.suspended


def _instant(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        return rfc3339(raw)
    except ValueError:
        return None


def split_gates(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


def gates_without_ours(gates: tuple[str, ...]) -> str:
    """The annotation's value once our name is removed ("" means: remove the annotation)."""
    return ",".join(gate for gate in gates if gate != GATE_NAME)


_DEFERRAL_KEYS = (HELD_AT_ANNOTATION, DEADLINE_ANNOTATION, FINISH_WITHIN_ANNOTATION)


def slim_job(job: Mapping[str, Any]) -> JobFacts | None:
    """A watched Job, kept only if deferral reads it: held once, or asking for a deadline."""
    annotations = as_mapping(as_mapping(job.get("metadata")).get("annotations"))
    if not any(key in annotations for key in _DEFERRAL_KEYS):
        return None
    return job_facts(job)


def job_facts(job: Mapping[str, object]) -> JobFacts:
    metadata = as_mapping(job.get("metadata"))
    spec = as_mapping(job.get("spec"))
    status = as_mapping(job.get("status"))
    template = as_mapping(spec.get("template"))
    labels = string_map(metadata.get("labels"))
    annotations = string_map(metadata.get("annotations"))
    managed_by = _text(spec.get("managedBy"))
    finished_at = _instant(_text(status.get("completionTime")))
    for condition in as_list(status.get("conditions")):
        fields = as_mapping(condition)
        if fields.get("type") == "Complete" and fields.get("status") == "True" and finished_at is None:
            finished_at = _instant(_text(fields.get("lastTransitionTime")))
    return JobFacts(
        namespace=_text(metadata.get("namespace")),
        name=_text(metadata.get("name")),
        uid=_text(metadata.get("uid")),
        annotations=annotations,
        labels={**labels, **string_map(as_mapping(template.get("metadata")).get("labels"))},
        suspended=spec.get("suspend") is True,
        managed_by="" if managed_by == BUILTIN_JOB_CONTROLLER else managed_by,
        queue_name=labels.get(KUEUE_QUEUE_LABEL, ""),
        gates=split_gates(annotations.get(KUEUE_GATE_ANNOTATION)),
        started=status.get("startTime") is not None,
        finished_at=finished_at,
        created_at=_instant(_text(metadata.get("creationTimestamp"))),
        template=template,
        parallelism=_count(spec.get("parallelism")),
        demand=pod_demand({"spec": as_mapping(template.get("spec"))}),
        held_at=_instant(annotations.get(HELD_AT_ANNOTATION)),
        release_by=_instant(annotations.get(RELEASE_BY_ANNOTATION)),
    )


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def overdue(job: JobFacts, *, now: datetime, slack_seconds: float = 0.0) -> bool:
    """At or past release-by (or within ``slack_seconds`` of it); an unreadable one counts as past.
    The rule of every releaser: one cluster's release loop and janitor, fleet mode's and its janitor."""
    by = job.release_by
    return by is None or now + timedelta(seconds=slack_seconds) >= by
