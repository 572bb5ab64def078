"""A fleet's deferrable Jobs replayed over (member, hour): the oracle against brute force, NotReady
members, failover, the fleet file's errors, and agreement with one cluster's replay."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.trace import parse_trace
from rebalancer.simulate.forecast import Forecaster, ForecastModel
from rebalancer.simulate.jobs import (
    BEST_REGION_NOW,
    CARBON_BLIND,
    ECOPULSE,
    JOB_POLICIES,
    ORACLE,
    THRESHOLD_WAIT,
    RunOutcome,
)
from simulate.fleet_jobs import FleetJobReplay, FleetJobsResult
from simulate.fleet_report import fleet_jobs_data
from simulate.fleetspec import FleetError, SimulatedFleet, parse_fleet
from tests.unit.test_deferral_simulate import DAY, JOB
from tests.unit.test_deferral_simulate import replay as one_cluster_replay
from tests.unit.test_deferral_simulate import workload as one_cluster_workload
from tests.unit.test_simulate import config, trace_text

CARBON_PRICE_USD_PER_G = 1000.0 / 1_000_000  # the test configuration's carbon price


def member(
    name: str, region: str, cpu: float = 100.0, not_ready: Sequence[tuple[int, int]] = ()
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "region": region, "capacity": {"cpu": cpu, "memory": "100Gi"}}
    if not_ready:
        entry["notReady"] = [{"fromHour": start, "hours": hours} for start, hours in not_ready]
    return entry


def document(members: list[dict[str, Any]], *jobs: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "ecopulse.io/v1alpha1",
        "kind": "SimulatedFleet",
        "members": members,
        "jobs": list(jobs),
    }


def fleet_of(series: dict[str, list[float]], doc: dict[str, Any]) -> SimulatedFleet:
    return parse_fleet(doc, regions=frozenset(config(sorted(series)).region_names))


def replay(
    series: dict[str, list[float]],
    doc: dict[str, Any],
    *,
    model: ForecastModel = ForecastModel.PERFECT,
    confidence_z: float | None = 0.0,
) -> FleetJobsResult:
    cfg = config(sorted(series))
    trace = parse_trace(trace_text(series), zones=set(series))
    return FleetJobReplay(
        config=cfg,
        trace=trace,
        fleet=fleet_of(series, doc),
        forecaster=Forecaster.build(model, hours=24, seed=0, series=series),
        confidence_z=confidence_z,
    ).run()


def placed(result: FleetJobsResult, policy: str) -> list[tuple[float, str]]:
    return [(o.start, o.member) for o in result.jobs.outcomes[policy]]


# rzb is greenest at 6-7 (10 g/kWh), a run there ends exactly at the deadline (8)
TWO = {"ZA": DAY, "ZB": [200.0] * 6 + [10.0, 10.0, 900.0, 900.0]}
ANYWHERE = {**JOB, "allowedRegions": ["rza", "rzb"]}


@pytest.mark.parametrize(
    ("outages", "oracle"),
    [
        pytest.param({}, [(6, "mc")], id="all Ready: rzb at 6-7"),
        # mc down at 6: rzb at 5-6 is not Ready throughout either; rza at 3-4 (110) is next, in the
        # first of its two members by name
        pytest.param({"mc": [(6, 1)]}, [(3, "ma")], id="mc down at 6: rza at 3"),
        # ma down too at 3: the other member in rza takes the same hour
        pytest.param({"mc": [(6, 1)], "ma": [(0, 10)]}, [(3, "mb")], id="ma down: mb at 3"),
    ],
)
def test_the_oracle_picks_member_and_hour_among_ready_members(
    outages: dict[str, list[tuple[int, int]]], oracle: list[tuple[int, str]]
) -> None:
    members = [
        member(name, region, not_ready=outages.get(name, []))
        for name, region in (("ma", "rza"), ("mb", "rza"), ("mc", "rzb"))
    ]
    result = replay(TWO, document(members, ANYWHERE))
    assert placed(result, ORACLE) == oracle
    assert all(o.missed is False for name in JOB_POLICIES for o in result.jobs.outcomes[name])


def test_ecopulse_never_chooses_a_member_that_is_not_ready() -> None:
    # mc (the green rzb) is down until hour 7: ecopulse plans over rza's members only, and its best
    # start there is 3 (110 g/kWh), in ma
    members = [member("ma", "rza"), member("mb", "rza"), member("mc", "rzb", not_ready=[(0, 7)])]
    result = replay(TWO, document(members, ANYWHERE))
    assert placed(result, ECOPULSE) == [(3, "ma")]
    # best-region-now: rzb is greener now (200 against 275) but not Ready: rza's first member
    assert placed(result, BEST_REGION_NOW) == [(0, "ma")]


def test_a_member_failing_under_a_run_restarts_it_elsewhere_and_the_lost_hours_count() -> None:
    # carbon-blind starts at 0 in ma (its home: the first member in rza); ma fails at 1: the hour
    # run is lost (300 g), the run restarts at 1 in mb, the next Ready member (250, 400: 650 g)
    members = [member("ma", "rza", not_ready=[(1, 3)]), member("mb", "rza"), member("mc", "rzb")]
    result = replay(TWO, document(members, {**ANYWHERE, "finishWithinHours": 9}))
    (blind,) = result.jobs.outcomes[CARBON_BLIND]
    assert (blind.start, blind.member) == (1, "mb")
    assert blind.emissions_grams == pytest.approx(300.0 + 650.0)
    assert result.failovers[CARBON_BLIND] == 1
    assert result.failovers[ORACLE] == 0


def test_a_full_member_sends_the_next_run_to_the_other_member_in_its_region() -> None:
    # two runs at once, time only in rza; ma holds one of them: ecopulse's second goes to mb
    members = [member("ma", "rza", cpu=1.0), member("mb", "rza", cpu=1.0)]
    first, second = {**JOB, "name": "first"}, {**JOB, "name": "second"}
    result = replay({"ZA": DAY}, document(members, first, second))
    assert sorted(placed(result, ECOPULSE)) == [(3, "ma"), (3, "mb")]
    assert sorted(placed(result, ORACLE)) == [(3, "ma"), (3, "mb")]
    # carbon-blind's home is ma for both: the second waits for the first
    assert sorted(placed(result, CARBON_BLIND)) == [(0, "ma"), (2, "ma")]


def test_one_member_per_region_always_ready_is_one_cluster_s_replay() -> None:
    series = {"ZA": DAY * 3, "ZB": list(reversed(DAY)) * 3}
    jobs = [
        {**JOB, "allowedRegions": ["rza", "rzb"], "arrivals": {"everyHours": 6, "firstAtHour": 1}},
        {**JOB, "name": "pinned", "homeRegion": "rzb", "allowedRegions": ["rzb"], "runtimeHours": 3},
    ]
    one = one_cluster_replay(
        series, one_cluster_workload(*jobs, zones=("ZA", "ZB")), model=ForecastModel.NOISY
    )
    fleet = replay(
        series, document([member("a", "rza"), member("b", "rzb")], *jobs), model=ForecastModel.NOISY
    ).jobs
    for name in JOB_POLICIES:
        assert [_where(o) for o in fleet.outcomes[name]] == [_where(o) for o in one.outcomes[name]], name
        assert fleet.totals(name).emissions_grams == pytest.approx(one.totals(name).emissions_grams)
    assert fleet.time_only == one.time_only == frozenset({"pinned"})
    assert fleet.reasons == one.reasons


def _where(outcome: RunOutcome) -> tuple[str, int, float]:
    return (outcome.region, outcome.arrival, outcome.start)


def objective(outcome: RunOutcome) -> float:
    return outcome.cost_usd + CARBON_PRICE_USD_PER_G * outcome.emissions_grams


@st.composite
def fleets(draw: st.DrawFn) -> tuple[dict[str, list[float]], dict[str, Any], int]:
    hours = draw(st.integers(min_value=6, max_value=30))
    values = st.lists(st.integers(min_value=0, max_value=900).map(float), min_size=hours, max_size=hours)
    series = {"ZA": draw(values), "ZB": draw(values)}
    members = [member("m0", "rza")]  # one member never fails: every run has somewhere to go
    for i in range(1, draw(st.integers(min_value=1, max_value=3)) + 1):
        start = draw(st.integers(min_value=0, max_value=hours - 1))
        length = draw(st.integers(min_value=1, max_value=hours))
        members.append(member(f"m{i}", draw(st.sampled_from(["rza", "rzb"])), not_ready=[(start, length)]))
    runtime = draw(st.integers(min_value=1, max_value=3))
    within = draw(st.integers(min_value=runtime, max_value=min(hours, runtime + 8)))
    job = {
        **JOB,
        "allowedRegions": ["rza", "rzb"],
        "runtimeHours": runtime,
        "finishWithinHours": within,
        "arrivals": {"everyHours": 48, "firstAtHour": 0},
    }
    return series, document(members, job), runtime


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_the_oracle_is_the_brute_force_optimum_and_never_worse_than_carbon_blind(
    case: tuple[dict[str, list[float]], dict[str, Any], int],
) -> None:
    series, doc, runtime = case
    fleet = fleet_of(series, doc)
    result = replay(series, doc)
    (oracle,) = result.jobs.outcomes[ORACLE]
    (blind,) = result.jobs.outcomes[CARBON_BLIND]
    zone = {"rza": "ZA", "rzb": "ZB"}
    deadline = doc["jobs"][0]["finishWithinHours"]
    # every (member, start) Ready throughout the run and finishing by the deadline, by hand
    feasible = [
        sum(series[zone[m.region]][start : start + runtime])
        for m, start in itertools.product(fleet.members, range(deadline - runtime + 1))
        if all(m.ready_at(h) for h in range(start, start + runtime))
    ]
    assert oracle.emissions_grams == pytest.approx(min(feasible))  # 1 kWh per CPU-hour
    assert not oracle.missed
    (chosen,) = [m for m in fleet.members if m.name == oracle.member]
    start = int(oracle.start)  # the replays start runs on the hour here
    assert all(chosen.ready_at(h) for h in range(start, start + runtime))
    assert result.failovers[ORACLE] == 0
    if not blind.missed:
        assert objective(oracle) <= objective(blind) + 1e-9
    # whatever a policy did, where it ran at the end it was Ready throughout
    for name in JOB_POLICIES:
        for outcome in result.jobs.outcomes[name]:
            (where,) = [m for m in fleet.members if m.name == outcome.member]
            span = max(1, math.ceil(runtime))
            assert all(
                where.ready_at(h)
                for h in range(int(outcome.start), min(len(series["ZA"]), int(outcome.start) + span))
            )


def test_report_json_has_one_cluster_s_jobs_and_a_breakdown_per_member() -> None:
    members = [member("ma", "rza", not_ready=[(1, 3)]), member("mb", "rza"), member("mc", "rzb")]
    data = fleet_jobs_data(replay(TWO, document(members, ANYWHERE)))
    assert set(data["policies"]) == set(JOB_POLICIES)
    assert {"all", "timeOnly", "timeOnlyJobs", "ecopulseReleases", "byMember", "failovers"} <= set(data)
    assert set(data["byMember"][CARBON_BLIND]) == {"ma", "mb", "mc"}
    for name in JOB_POLICIES:
        runs = sum(entry["runs"] for entry in data["byMember"][name].values())
        assert runs == data["policies"][name]["runs"] == 1
    assert data["failovers"][CARBON_BLIND] == 1 and data["failovers"][THRESHOLD_WAIT] == 1


MEMBERS = [member("ma", "rza"), member("mb", "rzb", not_ready=[(2, 3)])]


def _bad(path: str, value: object) -> dict[str, Any]:
    doc = document([dict(m) for m in MEMBERS], dict(ANYWHERE))
    target: Any = doc
    *parents, last = path.split(".")
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is _DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("kind", "SimulatedWorkload", "kind: must be SimulatedFleet, got 'SimulatedWorkload'"),
        ("capacity", {}, "capacity: unknown key"),
        ("members", [], "members: must be a non-empty list, got []"),
        ("members.0.region", "mars", "members[0].region: 'mars' is not one of the configured regions"),
        (
            "members.0.capacity",
            {"cpu": "lots", "memory": "1Gi"},
            "members[0].capacity.cpu: must be a quantity",
        ),
        ("members.0.zone", "ZA", "members[0].zone: unknown key"),
        ("members.1.name", "ma", "members[1].name: duplicate member ma"),
        ("members.1.notReady", [{"fromHour": 2, "hours": 0}], "members[1].notReady[0].hours: must be >= 1"),
        ("members.1.notReady", [{"from": 2, "hours": 1}], "members[1].notReady[0].from: unknown key"),
        ("members.1.notReady", "always", "members[1].notReady: must be a list of {fromHour, hours}"),
        ("jobs", [], "jobs: must be a non-empty list"),
        ("jobs.0.clusters", ["ma", "nope"], "jobs[0].clusters[1]: 'nope' is not a member (members: ma, mb)"),
        ("jobs.0.clusters", ["mb"], "jobs[0].clusters: none of mb is in homeRegion rza"),
        ("jobs.0.clusters", "ma", "jobs[0].clusters: must be a non-empty list of member names"),
        ("jobs.0.runtimeHours", "two", "jobs[0].runtimeHours: must be a number, got 'two'"),
        ("jobs.0.homeRegion", "rzc", "jobs[0].homeRegion: 'rzc' is not one of the configured regions"),
    ],
)
def test_a_bad_fleet_file_names_the_field(path: str, value: object, message: str) -> None:
    with pytest.raises(FleetError) as raised:
        fleet_of(TWO, _bad(path, value))
    assert any(problem.startswith(message) for problem in raised.value.problems), raised.value.problems


def test_a_good_fleet_file() -> None:
    fleet = fleet_of(TWO, document(MEMBERS, ANYWHERE, {**JOB, "name": "pinned", "clusters": ["ma"]}))
    assert [m.name for m in fleet.members] == ["ma", "mb"]
    assert fleet.members[1].not_ready == ((2, 3),)
    assert not fleet.members[1].ready_at(4) and fleet.members[1].ready_at(5)
    assert fleet.clusters == {"batch": ("ma", "mb"), "pinned": ("ma",)}
    assert fleet.home_member(fleet.jobs[0]) == "ma"
