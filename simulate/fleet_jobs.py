"""A fleet's deferrable Jobs replayed by the five policies of one cluster's replay
(``rebalancer.simulate.jobs``), where "region" becomes "member cluster".

Members each sit in one region with their own capacity (several may share one) and may be
NotReady for some hours. A job may run in the members its PropagationPolicy allows (``clusters:``).

- ``carbon-blind``: its home member (the first of its members in its home region), at arrival;
- ``best-region-now``: at arrival, the member best now: ``core.deferral``'s region for starting now
  over the regions of its Ready members with room, and there the member fleet mode picks
  (``fleet.deferral.ready_members``: the first Ready one by name);
- ``threshold-wait``: its home member, at the first hour below the trailing 24-hour mean of the home
  region, or at the latest start;
- ``ecopulse``: fleet mode's choice: every hour, every held run planned by ``core.deferral`` over the
  regions of its Ready members with room (``ready_members``), fed only what the forecast knows then
  and the error its forecasts have shown so far, as one cluster's replay feeds it;
- ``oracle``: perfect knowledge: the (member, start hour) of least cost over the run (the planner's
  objective at the intensities that came), the member Ready throughout the run, finishing by the
  deadline.

Capacity counts per member as in one cluster (a run waits at its member until there is room). A
member that is not Ready is never chosen. What is modelled of a member failing under a run (Karmada's
failover): the hours run there are lost (their emissions and cost counted), and the run restarts
from scratch at the hour the member failed, in the first Ready member it allows with room (by name),
as Karmada's scheduler reschedules by the user's policy; a run whose members are all NotReady waits
(its pods pending). Counted per policy as ``failovers``. Not modelled: a run our release pinned to one
member stays pending there until the member is back (the pin allows no other): see docs/fleet.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from core.config import EcoPulseConfiguration
from core.deferral import DEFAULT_CONFIDENCE_Z, HOUR, HourlyForecast, StartReason, plan_start, plan_starts
from core.forecast import ForecastErrors
from core.trace import Trace
from fleet.deferral import ready_members
from fleet.records import MemberCluster
from rebalancer.simulate.forecast import Forecaster
from rebalancer.simulate.jobs import (
    BEST_REGION_NOW,
    CARBON_BLIND,
    ECOPULSE,
    JOB_POLICIES,
    ORACLE,
    THRESHOLD_WAIT,
    JobReplay,
    JobsResult,
    Room,
    Run,
    RunOutcome,
    time_only_jobs,
    with_regions,
)
from rebalancer.simulate.workload import SimulatedWorkload
from simulate.fleetspec import SimulatedFleet


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetJobsResult:
    jobs: JobsResult  # outcomes carry the member they ran in
    members: tuple[str, ...]
    failovers: dict[str, int]  # per policy: runs restarted elsewhere after their member failed


@dataclass(slots=True, kw_only=True)
class _Lane:
    """One policy's replay: the members' free capacity as its runs take it, and what they did."""

    room: Room
    outcomes: list[RunOutcome] = field(default_factory=list)
    failovers: int = 0


class FleetJobReplay:
    def __init__(
        self,
        *,
        config: EcoPulseConfiguration,
        trace: Trace,
        fleet: SimulatedFleet,
        forecaster: Forecaster,
        min_benefit_usd: float = 0.0,
        confidence_z: float | None = None,
        warm_up: Trace | None = None,
    ) -> None:
        # One cluster's replay does what does not depend on members: the runs, the intensities,
        # the forecasts and their error record, the accounting.
        self.base = JobReplay(
            config=config,
            trace=trace,
            workload=SimulatedWorkload(capacity={}, workloads=(), jobs=fleet.jobs),
            forecaster=forecaster,
            min_benefit_usd=min_benefit_usd,
            confidence_z=confidence_z,
            warm_up=warm_up,
        )
        self.config = config
        self.fleet = fleet
        self.hours = trace.hours
        self.members = fleet.members
        self.names = tuple(member.name for member in self.members)
        self.region_of = tuple(self.base.index[member.region] for member in self.members)
        # ready[m][h], and the first hour from h the member is not Ready (hours past the window: Ready)
        self.ready = [[member.ready_at(h) for h in range(self.hours)] for member in self.members]
        self._down_from = [_next_down(row) for row in self.ready]
        self._index = index = {name: m for m, name in enumerate(self.names)}
        self.allowed = [tuple(index[name] for name in fleet.clusters[job.name]) for job in fleet.jobs]
        self.home = [index[fleet.home_member(job)] for job in fleet.jobs]
        # A run may go only to the regions of the members it allows.
        self.runs = [self._narrowed(run) for run in self.base.runs]

    def _narrowed(self, run: Run) -> Run:
        served = {self.members[m].region for m in self.allowed[run.job]}
        regions = tuple(r for r in run.request.allowed_regions if r in served)
        return replace(run, request=with_regions(run.request, regions))

    # -- where a run may go ---------------------------------------------------------------------

    def ready_through(self, member: int, start: int, span: int) -> bool:
        return self._down_from[member][min(start, self.hours)] >= start + span

    def _span(self, run: Run) -> int:
        return max(1, math.ceil(run.request.runtime_hours))

    def _fits(self, room: Room, run: Run, member: int, hour: int) -> bool:
        job = self.fleet.jobs[run.job]
        return room.fits(member, hour, self._span(run), job.cpu, job.memory_gib)

    def _usable(self, room: Room, run: Run, hour: int) -> dict[str, str]:
        """region -> member, as fleet mode picks it (``ready_members``), among the run's members
        Ready now with room for the whole run (all its Ready members if none has room)."""
        ready = [m for m in self.allowed[run.job] if self.ready[m][hour]]
        fitting = [m for m in ready if self._fits(room, run, m, hour)] or ready
        return ready_members(self._clusters(fitting), None)

    def _clusters(self, members: Iterable[int]) -> list[MemberCluster]:
        return [MemberCluster(name=self.names[m], region=self.members[m].region, ready=True) for m in members]

    def _failover(self, room: Room, run: Run, hour: int) -> int | None:
        """Where Karmada puts a run whose member is not Ready: the first Ready member it allows
        with room, by name (else the first Ready one; None: none is Ready)."""
        ready = [m for m in self.allowed[run.job] if hour >= self.hours or self.ready[m][hour]]
        return next((m for m in ready if self._fits(room, run, m, hour)), ready[0] if ready else None)

    # -- placing and accounting -----------------------------------------------------------------

    def _place(self, lane: _Lane, run: Run, member: int, start: float) -> RunOutcome:
        """Start on ``member`` at ``start``, or when it has room (pods pending); a member that is
        not Ready, or fails under the run, hands it to Karmada's failover (the module docstring).
        A start within an hour (a release at the latest start) holds that hour to the one its run
        ends in; a run that has to wait starts on the hour."""
        room = lane.room
        job = self.fleet.jobs[run.job]
        lost_grams = lost_usd = 0.0
        at: float = start
        m = member
        last = self.hours - 1
        while True:
            hour = math.floor(at)
            span = max(self._span(run), math.ceil(at + run.request.runtime_hours - 1e-9) - hour)
            if hour < self.hours and not self.ready[m][hour]:
                found = self._failover(room, run, hour)
                if found is None and hour < last:
                    at = hour + 1  # no member it allows is Ready: pending
                    continue
                m = found if found is not None else m
            if hour < last and not room.fits(m, hour, span, job.cpu, job.memory_gib):
                at = hour + 1
                continue
            down = self._down_from[m][min(hour, self.hours)]
            if down >= hour + span or down >= self.hours:
                break
            # The member fails under the run: the hours it ran are lost, it restarts elsewhere.
            room.take(m, hour, down - hour, job.cpu, job.memory_gib)
            lost = self.base.run_cost(run, self.region_of[m], at, float(down - at))
            lost_grams += lost.emissions_grams
            lost_usd += lost.compute_usd + lost.egress_usd
            lane.failovers += 1
            at = down
        room.take(m, hour, span, job.cpu, job.memory_gib)
        outcome = self.base.outcome(run, self.region_of[m], at)
        outcome = replace(
            outcome,
            member=self.names[m],
            emissions_grams=outcome.emissions_grams + lost_grams,
            cost_usd=outcome.cost_usd + lost_usd,
        )
        lane.outcomes.append(outcome)
        return outcome

    def _room(self) -> Room:
        return Room(
            [[member.cpu] * self.hours for member in self.members],
            [[member.memory_gib] * self.hours for member in self.members],
        )

    # -- the policies ---------------------------------------------------------------------------

    def run(self, progress: Callable[[int], None] | None = None) -> FleetJobsResult:
        base = self.base
        lanes = {name: _Lane(room=self._room()) for name in JOB_POLICIES}
        errors = ForecastErrors()
        for hour in range(-base.warmed, 0):
            base.forecasts_at(hour, errors)
        by_arrival: dict[int, list[Run]] = {}
        for run in self.runs:
            by_arrival.setdefault(run.arrival, []).append(run)
        held: list[Run] = []
        reasons: dict[str, int] = {}
        for hour in range(self.hours):
            forecasts = base.forecasts_at(hour, errors)
            for run in by_arrival.get(hour, []):
                home = self.home[run.job]
                self._place(lanes[CARBON_BLIND], run, home, hour)
                self._place(
                    lanes[BEST_REGION_NOW],
                    run,
                    self._best_now(lanes[BEST_REGION_NOW], run, hour, forecasts),
                    hour,
                )
                self._place(lanes[THRESHOLD_WAIT], run, home, base.threshold_hour(run))
                self._oracle(lanes[ORACLE], run)
                held.append(run)
            held = self._release(lanes[ECOPULSE], held, hour, forecasts, reasons)
            if progress is not None:
                progress(1)
        for run in held:  # the replay ended first: cannot happen, every deadline is within it
            self._place(lanes[ECOPULSE], run, self.home[run.job], run.arrival)
        result = JobsResult(
            jobs=self.fleet.jobs,
            time_only=time_only_jobs(self.fleet.jobs, self.runs),
            outcomes={name: tuple(lane.outcomes) for name, lane in lanes.items()},
            reasons=dict(sorted(reasons.items())),
            forecast=base.forecaster.describe(),
        )
        return FleetJobsResult(
            jobs=result, members=self.names, failovers={name: lane.failovers for name, lane in lanes.items()}
        )

    def _best_now(self, lane: _Lane, run: Run, hour: int, forecasts: list[HourlyForecast]) -> int:
        """The member best now: the planner's region for starting now, fleet mode's member there."""
        usable = self._usable(lane.room, run, hour)
        regions = _within(run.request.allowed_regions, usable)
        if not regions:
            return self.home[run.job]
        plan = plan_start(
            with_regions(run.request, regions),
            forecasts=forecasts,
            now=self.base.trace.times[hour],
            config=self.config,
        )
        found = usable.get(plan.now_region)
        return self._index[found] if found else self.home[run.job]

    def _release(
        self,
        lane: _Lane,
        held: list[Run],
        hour: int,
        forecasts: list[HourlyForecast],
        reasons: dict[str, int],
    ) -> list[Run]:
        """Fleet mode's pass at ``hour``: every held run re-planned over its usable members; those
        to start now start there. Returns the runs still held, in order."""
        usable = [self._usable(lane.room, run, hour) for run in held]
        asked = [i for i, run in enumerate(held) if _within(run.request.allowed_regions, usable[i])]
        plans = plan_starts(
            [
                with_regions(held[i].request, _within(held[i].request.allowed_regions, usable[i]))
                for i in asked
            ],
            forecasts=forecasts,
            now=self.base.trace.times[hour],
            config=self.config,
            min_benefit_usd=self.base.min_benefit_usd,
            confidence_z=DEFAULT_CONFIDENCE_Z if self.base.confidence_z is None else self.base.confidence_z,
        )
        planned = dict(zip(asked, plans, strict=True))
        still: list[Run] = []
        for i, run in enumerate(held):
            at: float = hour
            plan = planned.get(i)
            if plan is None:
                # No Ready member it may run in: waiting is all there is, until release-by (then
                # unpinned: Karmada places it by the user's policy when a member is back).
                if hour < self.base.latest_hour(run):
                    still.append(run)
                    continue
                reason, member = str(StartReason.RELEASE_BY), self.home[run.job]
            elif not plan.release_now and plan.start >= self.base.trace.times[hour] + HOUR:
                still.append(run)
                continue
            else:
                # The member in that region as room is now: runs released before it in this pass
                # have taken theirs. A plan for its latest start within this hour is released at
                # it, as one cluster's replay does (the live loop asks every cycle).
                found = self._usable(lane.room, run, hour).get(plan.region)
                reason = str(plan.reason if plan.release_now else StartReason.RELEASE_BY)
                member = self._index[found] if found else self.home[run.job]
                if not plan.release_now:
                    at = hour + (plan.start - self.base.trace.times[hour]) / HOUR
            reasons[reason] = reasons.get(reason, 0) + 1
            self._place(lane, run, member, at)
        return still

    def _oracle(self, lane: _Lane, run: Run) -> RunOutcome:
        """The (member, start) of least cost over the run at the intensities that came, the member
        Ready throughout, finishing by the deadline, among those with room."""
        span = self._span(run)
        last = self.base.last_start_hour(run)
        regions = set(run.request.allowed_regions)
        terms = {region: self.base.objective_terms(run, region) for region in regions}
        best: tuple[float, int, str] | None = None
        for m in self.allowed[run.job]:
            region = self.members[m].region
            if region not in regions:
                continue
            base_usd, usd_per_g = terms[region]
            r = self.region_of[m]
            for start in range(run.arrival, last + 1):
                if not self.ready_through(m, start, span) or not self._fits(lane.room, run, m, start):
                    continue
                cost = base_usd + usd_per_g * self.base.mean_intensity(r, start, run.request.runtime_hours)
                if best is None or (cost, start, self.names[m]) < best:
                    best = (cost, start, self.names[m])
        if best is None:  # nowhere Ready with room in time: at home, like the others
            return self._place(lane, run, self.home[run.job], run.arrival)
        return self._place(lane, run, self._index[best[2]], best[1])


def _within(regions: Sequence[str], usable: dict[str, str]) -> tuple[str, ...]:
    return tuple(region for region in regions if region in usable)


def _next_down(ready: list[bool]) -> list[int]:
    """For each hour h (and one past the end), the first hour from h the member is not Ready; past
    the window: a large number (Ready)."""
    out = [1 << 30] * (len(ready) + 1)
    for h in range(len(ready) - 1, -1, -1):
        out[h] = h if not ready[h] else out[h + 1]
    return out
