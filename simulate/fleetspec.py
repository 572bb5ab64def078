"""The ``SimulatedFleet`` YAML: member clusters, each in one region with its own capacity and the
hours it is not Ready, and the deferrable Jobs submitted to the fleet.

```yaml
apiVersion: ecopulse.io/v1alpha1
kind: SimulatedFleet
members:
  - {name: fra-1, region: de-frankfurt, capacity: {cpu: 256, memory: 1Ti}}
  - {name: osl-1, region: no-oslo, capacity: {cpu: 96, memory: 384Gi},
     notReady: [{fromHour: 100, hours: 6}]}     # hours from the replay's first hour
jobs:                                           # the jobs: of a SimulatedWorkload, plus
  - {name: train, ..., homeRegion: de-frankfurt,
     clusters: [fra-1, osl-1]}                  # the members its PropagationPolicy allows (default all)
```

A job's home member (where carbon-blind runs it) is the first of its members, by name, in its
``homeRegion``. Every error names its key, all reported together, like the workload file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.yaml_input import describe, load_yaml_file, not_a_string
from rebalancer.simulate.jobspec import JobTemplate, parse_jobs
from rebalancer.simulate.workload import Checks, WorkloadError, read_header

KIND = "SimulatedFleet"
_TOP = {"apiVersion", "kind", "metadata", "members", "jobs"}
_MEMBER_KEYS = {"name", "region", "capacity", "notReady"}
_OUTAGE_KEYS = {"fromHour", "hours"}


class FleetError(WorkloadError):
    """The fleet file is invalid; ``problems`` holds one ``key: what is wrong`` line each."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    name: str
    region: str
    cpu: float
    memory_gib: float
    not_ready: tuple[tuple[int, int], ...] = ()  # (from hour, hours), hours from the replay's first

    def ready_at(self, hour: int) -> bool:
        return not any(start <= hour < start + hours for start, hours in self.not_ready)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatedFleet:
    members: tuple[Member, ...]  # sorted by name
    jobs: tuple[JobTemplate, ...]
    clusters: Mapping[str, tuple[str, ...]]  # job name -> the members it may run in, by name

    def home_member(self, job: JobTemplate) -> str:
        regions = {member.name: member.region for member in self.members}
        return min(name for name in self.clusters[job.name] if regions[name] == job.home_region)


def parse_fleet(
    document: object, *, regions: frozenset[str] | None = None, source: str = ""
) -> SimulatedFleet:
    """Validate a parsed document; ``regions`` (the configuration's) are the only names allowed."""
    document, problems = read_header(document, top=_TOP, kind=KIND, error=FleetError, source=source)
    checks = Checks(problems, regions)
    members = _members(document.get("members"), checks)
    by_name = {member.name: member for member in members}
    raw_jobs = document.get("jobs")
    if not isinstance(raw_jobs, list) or not raw_jobs:
        problems.append(f"jobs: must be a non-empty list, got {describe(raw_jobs)}")
        raw_jobs = []
    # clusters: is the fleet's own key; the rest of an entry is the workload file's job, checked there.
    clusters: list[tuple[str, ...]] = []
    plain: list[object] = []
    for index, entry in enumerate(raw_jobs):
        if not isinstance(entry, Mapping):
            plain.append(entry)
            clusters.append(())
            continue
        plain.append({key: value for key, value in entry.items() if key != "clusters"})
        clusters.append(_clusters(f"jobs[{index}]", entry, by_name, problems))
    jobs = parse_jobs(
        plain,
        problems=problems,
        region_ok=checks.region_ok,
        quantity=checks.quantity,
        number=checks.number,
        capacity={member.region: member for member in members},
    )
    allowed: dict[str, tuple[str, ...]] = {}
    if not problems:  # parse_jobs kept every entry: they line up with clusters
        for index, (job, names) in enumerate(zip(jobs, clusters, strict=True)):
            if not any(by_name[name].region == job.home_region for name in names):
                problems.append(
                    f"jobs[{index}].clusters: none of {', '.join(names)} is in homeRegion {job.home_region}"
                )
            allowed[job.name] = names
    if problems:
        raise FleetError(problems, source=source)
    return SimulatedFleet(members=members, jobs=jobs, clusters=allowed)


def _members(raw: object, checks: Checks) -> tuple[Member, ...]:
    problems = checks.problems
    if not isinstance(raw, list) or not raw:
        problems.append(f"members: must be a non-empty list, got {describe(raw)}")
        return ()
    out: dict[str, Member] = {}
    for index, entry in enumerate(raw):
        key = f"members[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{key}: must be a mapping {{name, region, capacity}}, got {describe(entry)}")
            continue
        before = len(problems)
        for unknown in sorted(set(map(str, entry)) - _MEMBER_KEYS):
            problems.append(f"{key}.{unknown}: unknown key (allowed: {', '.join(sorted(_MEMBER_KEYS))})")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{key}.name: {not_a_string(name)}")
        elif name in out:
            problems.append(f"{key}.name: duplicate member {name}")
        region = entry.get("region")
        checks.region_ok(f"{key}.region", region)
        capacity = entry.get("capacity")
        cpu = memory = None
        if not isinstance(capacity, Mapping):
            problems.append(f"{key}.capacity: must be a mapping {{cpu, memory}}, got {describe(capacity)}")
        else:
            for unknown in sorted(set(map(str, capacity)) - {"cpu", "memory"}):
                problems.append(f"{key}.capacity.{unknown}: unknown key (allowed: cpu, memory)")
            cpu = checks.quantity(f"{key}.capacity.cpu", capacity.get("cpu"), "cpu")
            memory = checks.quantity(f"{key}.capacity.memory", capacity.get("memory"), "memory")
        outages = _outages(f"{key}.notReady", entry.get("notReady", []), checks)
        if len(problems) > before or cpu is None or memory is None:
            continue
        out[str(name)] = Member(
            name=str(name), region=str(region), cpu=cpu, memory_gib=memory, not_ready=outages
        )
    return tuple(out[name] for name in sorted(out))


def _outages(key: str, raw: object, checks: Checks) -> tuple[tuple[int, int], ...]:
    if not isinstance(raw, list):
        checks.problems.append(f"{key}: must be a list of {{fromHour, hours}}, got {describe(raw)}")
        return ()
    out: list[tuple[int, int]] = []
    for index, entry in enumerate(raw):
        at = f"{key}[{index}]"
        if not isinstance(entry, Mapping):
            checks.problems.append(f"{at}: must be a mapping {{fromHour, hours}}, got {describe(entry)}")
            continue
        for unknown in sorted(set(map(str, entry)) - _OUTAGE_KEYS):
            checks.problems.append(f"{at}.{unknown}: unknown key (allowed: fromHour, hours)")
        start = checks.integer(f"{at}.fromHour", entry.get("fromHour"), 0)
        hours = checks.integer(f"{at}.hours", entry.get("hours"), 1)
        if start is not None and hours is not None:
            out.append((start, hours))
    return tuple(sorted(out))


def _clusters(
    key: str, entry: Mapping[str, object], members: Mapping[str, Member], problems: list[str]
) -> tuple[str, ...]:
    raw = entry.get("clusters")
    if raw is None:
        return tuple(sorted(members))
    if not isinstance(raw, list) or not raw:
        problems.append(f"{key}.clusters: must be a non-empty list of member names, got {describe(raw)}")
        return ()
    names: list[str] = []
    for index, name in enumerate(raw):
        if not isinstance(name, str) or name not in members:
            problems.append(
                f"{key}.clusters[{index}]: {describe(name)} is not a member "
                f"(members: {', '.join(sorted(members)) or 'none'})"
            )
        else:
            names.append(name)
    return tuple(sorted(set(names)))


def load_fleet(path: Path, *, regions: frozenset[str] | None = None) -> SimulatedFleet:
    document = load_yaml_file(path, error=FleetError)
    return parse_fleet(document, regions=regions, source=str(path))
