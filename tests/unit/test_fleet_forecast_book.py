"""Fleet mode keeps the grid's history and the forecasts' error record as the rebalancer does
(core.forecast_book): with the default deferral.confidenceZ (2) a wait whose forecasts have come
true is kept, not released at the first pass; while the record is unknown the wait goes."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from core.deferral import StartReason
from core.model import SignalSnapshot
from fleet.cycle import PassInputs, run_pass
from fleet.planner import FleetSnapshot
from tests.unit.test_deferral_agreement import snapshot_at
from tests.unit.test_fleet_deferral import CONFIG, CREATED, held_job
from tests.unit.test_fleet_deferral_turn import FakeKarmada, turn

DEFAULT_Z = dataclasses.replace(CONFIG, deferral=dataclasses.replace(CONFIG.deferral, confidence_z=2.0))
NOW = CREATED + timedelta(minutes=20)  # 18:20 UTC: eu-north-1 green from 19:00 (snapshot_at's grid)
HOUR = int(NOW.timestamp() // 3600)


def test_without_a_record_a_wait_is_not_robust_and_goes_at_the_first_pass() -> None:
    api = FakeKarmada()
    deferral = turn([held_job("waits")], api)
    deferral.run(config=DEFAULT_Z, signals=snapshot_at(HOUR), now=NOW, is_leader=lambda: True)
    assert api.released == [("waits", "member-eu-north-1", StartReason.NOT_ROBUST)]


def test_with_two_days_of_forecasts_come_true_the_wait_is_kept() -> None:
    api = FakeKarmada()
    deferral = turn([held_job("waits")], api)
    for hour in range(HOUR - 48, HOUR):
        past = snapshot_at(hour)
        deferral.observe(signals=past, now=past.taken_at)
    deferral.run(config=DEFAULT_Z, signals=snapshot_at(HOUR), now=NOW, is_leader=lambda: True)
    assert api.released == []
    assert [reason for _, reason, _ in api.events] == ["Held"]
    assert all(f.error_samples >= 24 for f in deferral.book.latest)


def test_every_replica_keeps_the_record_leader_or_not() -> None:
    deferral = turn([held_job("waits")], FakeKarmada())
    seen: list[SignalSnapshot] = []

    def signals() -> SignalSnapshot:
        seen.append(snapshot_at(HOUR))
        return seen[-1]

    report = run_pass(
        PassInputs(
            config=lambda: DEFAULT_Z,
            signals=signals,
            snapshot=lambda: FleetSnapshot(
                clusters={}, policies=[], workloads={}, bindings={}, namespaces={}
            ),
            synced=lambda: True,
            is_leader=lambda: False,
            api=None,  # type: ignore[arg-type]  # a follower writes nothing
            clock=lambda: NOW,
            deferral=deferral,
        )
    )
    assert report.outcome == "not-leader"
    assert deferral.book.history.value("eu-north-1", HOUR) == 500.0
    assert {f.region for f in deferral.book.latest} == {"us-east-1", "eu-west-1", "eu-north-1"}
