"""What a release pass reads of each held Job, once per version of it (core.deferral_memo), and
that the release loop decides with it exactly as without it."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from core.deferral_hints import JobFacts, job_facts
from core.deferral_memo import PassMemo
from core.policy import EMPTY_POLICY_SET
from rebalancer.release import Asked, plan_releases
from tests.unit.test_fleet_deferral import CONFIG, CREATED, held_job
from tests.unit.test_fleet_deferral_turn import signals
from tests.unit.test_release_forecasts import loop


def test_a_value_is_read_again_only_when_the_job_or_what_it_depends_on_changes() -> None:
    memo: PassMemo[int] = PassMemo()
    reads: list[str] = []

    def read(job: JobFacts) -> int:
        reads.append(job.name)
        return len(reads)

    first = job_facts(held_job("a"))
    annotations = {"x": "1"}
    assert memo.jobs.get(first, (annotations, CONFIG), read) == 1
    assert memo.jobs.get(first, (annotations, CONFIG), read) == 1  # the same record: reused
    assert memo.jobs.get(first, ({"x": "1"}, CONFIG), read) == 1  # an equal copy: reused
    assert memo.jobs.get(first, ({"x": "2"}, CONFIG), read) == 2  # its namespace changed
    again = job_facts(held_job("a"))  # the watch's next version of it
    assert memo.jobs.get(again, ({"x": "2"}, CONFIG), read) == 3
    memo.jobs.keep_only({"nobody"})
    assert len(memo.jobs) == 0


def test_shared_costs_are_forgotten_when_the_configuration_changes() -> None:
    memo: PassMemo[int] = PassMemo()
    kept = memo.extras(CONFIG)
    assert memo.extras(CONFIG) is kept
    changed = dataclasses.replace(CONFIG, deferral=dataclasses.replace(CONFIG.deferral, min_benefit_usd=1.0))
    assert memo.extras(changed) is not kept


def decide(jobs: list[JobFacts], memo: PassMemo[Asked] | None) -> list[tuple[str, str]]:
    now = CREATED + timedelta(minutes=20)
    forecasts = loop().forecasts(signals(now, green_now=False), history=None, now=now)
    decided = plan_releases(
        jobs, forecasts=forecasts, config=CONFIG, namespaces={}, policies=EMPTY_POLICY_SET, now=now, memo=memo
    )
    return sorted(
        [(r.job.name, f"release:{r.reason}:{r.region}") for r in decided.releases]
        + [(w.job.name, f"wait:{w.plan.region}:{w.plan.start:%H}") for w in decided.waiting]
    )


def test_the_release_loop_decides_with_the_memo_as_without_it() -> None:
    jobs = [job_facts(held_job(name)) for name in ("a", "b", "c")]
    memo: PassMemo[Asked] = PassMemo()
    fresh = decide(jobs, None)
    assert [what for _, what in fresh] == ["wait:eu-north-1:19"] * 3
    assert decide(jobs, memo) == fresh
    assert decide(jobs, memo) == fresh  # the second pass reads nothing again
    # A Job edited by hand (its run length gone): its next version is read again.
    edited = held_job("b")
    del edited["metadata"]["annotations"]["ecopulse.io/expected-runtime-hours"]
    jobs[1] = job_facts(edited)
    assert ("b", "release:no-forecast:") in decide(jobs, memo)
    assert decide(jobs, memo) == decide(jobs, None)
