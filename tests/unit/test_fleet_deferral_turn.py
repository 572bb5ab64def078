"""The deferral turn of a fleet pass (fleet.deferral_loop): a new leader releases the overdue holds
first, a lost leadership stops the writes, a failed binding write is finished next pass, and the
Events. The writer is a fake speaking fleet.karmada's WriteResults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.deferral import StartReason
from core.deferral_bindings import JobBinding, slim_job_binding
from core.deferral_hints import JobFacts, job_facts
from core.model import CarbonSignal, ForecastPoint, SignalSnapshot
from fleet.deferral import FleetRelease
from fleet.deferral_loop import DeferralTurn
from fleet.karmada import WriteOutcome, WriteResult
from tests.unit.test_fleet_deferral import CONFIG, CREATED, REGIONS, binding, held_job, members

WRITTEN = WriteResult(outcome=WriteOutcome.WRITTEN, status=200)


@dataclass
class FakeKarmada:
    binding_answers: list[WriteResult] = field(default_factory=list)
    released: list[tuple[str, str, StartReason]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)

    def release_job(self, release: FleetRelease, *, now: datetime) -> tuple[WriteResult, WriteResult | None]:
        self.released.append((release.job.name, release.member, release.reason))
        answer = self.binding_answers.pop(0) if self.binding_answers else WRITTEN
        return WRITTEN, answer if release.binding is not None else None

    def post_job_event(self, job: JobFacts, *, reason: str, message: str, action: str) -> bool:
        self.events.append((job.name, reason, message))
        return True


def signals(now: datetime, *, green_now: bool) -> SignalSnapshot:
    """eu-north-1 green from the next hour (or now); the provider's forecast, hour by hour."""
    carbon = {}
    for region in REGIONS:
        green = region == "eu-north-1"
        value = 20.0 if green and green_now else 500.0
        later = 20.0 if green else 500.0
        carbon[region] = CarbonSignal(
            region=region,
            zone=region,
            carbon_g_per_kwh=value,
            observed_at=now,
            fetched_at=now,
            source="test",
            forecast=tuple(
                ForecastPoint(at=now.replace(minute=0, second=0) + timedelta(hours=k), carbon_g_per_kwh=later)
                for k in range(1, 8)
            ),
        )
    return SignalSnapshot(taken_at=now, provider="test", carbon=carbon)


def turn(
    jobs: list[dict[str, Any]], api: FakeKarmada, bound: list[dict[str, Any]] | None = None
) -> DeferralTurn:
    facts = {j["metadata"]["uid"]: job_facts(j) for j in jobs}
    records: list[JobBinding] = [
        r
        for r in (
            slim_job_binding(b)
            for b in (bound if bound is not None else [binding(j["metadata"]["name"]) for j in jobs])
        )
        if r
    ]
    return DeferralTurn(
        jobs=lambda: facts,
        bindings=lambda: records,
        clusters=members,
        namespace_annotations=dict,
        api=api,
    )


def test_a_new_leader_releases_the_overdue_first_then_plans_and_announces_the_holds() -> None:
    api = FakeKarmada()
    now = CREATED + timedelta(minutes=10)
    jobs = [held_job("late", release_by=now - timedelta(minutes=1)), held_job("waits")]
    deferral = turn(jobs, api)
    assert (
        deferral.run(config=CONFIG, signals=signals(now, green_now=False), now=now, is_leader=lambda: True)
        == 1
    )
    assert api.released == [("late", "", StartReason.CONTROLLER_START)]
    assert [(name, reason) for name, reason, _ in api.events] == [("late", "Released"), ("waits", "Held")]
    assert "member-eu-north-1" in api.events[1][2]
    # The next pass (the watch shows "late" released): the hold is announced once, nothing released.
    api.events.clear()
    api.released.clear()
    waiting = job_facts(jobs[1])
    deferral.jobs = lambda: {waiting.uid: waiting}
    deferral.run(config=CONFIG, signals=signals(now, green_now=False), now=now, is_leader=lambda: True)
    assert api.released == [] and api.events == []


def test_no_write_after_leadership_is_lost() -> None:
    api = FakeKarmada()
    now = CREATED + timedelta(hours=1, minutes=1)
    deferral = turn([held_job("a"), held_job("b")], api)
    deferral.started = True
    leading = iter([True, False])
    deferral.run(
        config=CONFIG, signals=signals(now, green_now=True), now=now, is_leader=lambda: next(leading, False)
    )
    assert [name for name, _, _ in api.released] == ["a"]


def test_a_failed_binding_write_is_finished_by_the_next_pass() -> None:
    refused = WriteResult(outcome=WriteOutcome.ERROR, status=None, message="timeout")
    api = FakeKarmada(binding_answers=[refused])
    now = CREATED + timedelta(hours=1, minutes=1)
    job = held_job("train")
    deferral = turn([job], api)
    deferral.started = True
    deferral.run(config=CONFIG, signals=signals(now, green_now=True), now=now, is_leader=lambda: True)
    assert api.released == [("train", "member-eu-north-1", StartReason.GREEN_HOUR)]
    # The API server has the Job released, its binding still suspended (as the watch shows next).
    released = dataclasses.replace(
        job_facts(job),
        suspended=False,
        annotations={
            **job["metadata"]["annotations"],
            "ecopulse.io/released-at": "2026-12-07T19:01:00Z",
            "ecopulse.io/fleet-member": "member-eu-north-1",
        },
    )
    deferral.jobs = lambda: {released.uid: released}
    deferral.run(config=CONFIG, signals=signals(now, green_now=True), now=now, is_leader=lambda: True)
    assert api.released[-1] == ("train", "member-eu-north-1", StartReason.GREEN_HOUR)
    assert [reason for _, reason, _ in api.events].count("Released") == 1  # the Job's release, once


def test_nothing_is_released_before_the_watches_have_listed() -> None:
    api = FakeKarmada()
    now = CREATED + timedelta(minutes=10)
    deferral = turn([held_job("late", release_by=now - timedelta(minutes=1))], api)
    deferral.synced = lambda: False
    assert (
        deferral.run(config=CONFIG, signals=signals(now, green_now=True), now=now, is_leader=lambda: True)
        == 0
    )
    assert api.released == [] and not deferral.started
