"""The ``SimulatedWorkload`` YAML: a cluster's capacity per region and the workloads it runs.

```yaml
apiVersion: ecopulse.io/v1alpha1
kind: SimulatedWorkload
capacity:                     # per region
  de-frankfurt: {cpu: 400, memory: 1600Gi}
workloads:
  - {name: web, namespace: shop, replicas: 100, cpu: "2", memory: 4Gi, startRegion: de-frankfurt,
     maxUnavailable: 10}      # optional: runtimeHours, maxLatencyMs, dataRegion, egressGbPerHour,
                              # capacityType (on-demand or spot: the price it pays everywhere),
                              # allowedRegions (a list: ecopulse.io/allowed-regions)
```

Every error names its key (``workloads[0].cpu: ...``), all reported together, like core.config.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.model import CapacityType
from core.quantity import QuantityError, cpu_cores, memory_gib
from core.yaml_input import InputProblems, describe, load_yaml_file, not_a_string
from rebalancer.simulate.jobspec import JobTemplate, parse_jobs

API_VERSION = "ecopulse.io/v1alpha1"
KIND = "SimulatedWorkload"
_TOP = {"apiVersion", "kind", "metadata", "capacity", "workloads", "jobs"}
_WORKLOAD_KEYS = {
    "name",
    "namespace",
    "replicas",
    "cpu",
    "memory",
    "startRegion",
    "maxUnavailable",
    "runtimeHours",
    "maxLatencyMs",
    "dataRegion",
    "egressGbPerHour",
    "capacityType",
    "allowedRegions",
}


class WorkloadError(InputProblems):
    """The workload file is invalid; ``problems`` holds one ``key: what is wrong`` line each."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Capacity:
    cpu: float
    memory_gib: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    name: str
    namespace: str
    replicas: int
    cpu: float
    memory_gib: float
    start_region: str
    max_unavailable: int
    runtime_hours: float | None = None
    max_latency_ms: float | None = None
    data_region: str | None = None
    egress_gb_per_hour: float = 0.0
    capacity_type: CapacityType = CapacityType.ON_DEMAND
    allowed_regions: tuple[str, ...] | None = None  # ecopulse.io/allowed-regions

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatedWorkload:
    capacity: Mapping[str, Capacity]
    workloads: tuple[Workload, ...]
    jobs: tuple[JobTemplate, ...] = ()  # deferrable Jobs (rebalancer.simulate.jobs)


def _describe(value: object) -> str:
    return describe(value)


class Checks:
    """The file's checks of one value each: a problem is appended, with its key, and None returned.
    Shared by the fleet file (simulate.fleetspec)."""

    def __init__(self, problems: list[str], regions: frozenset[str] | None) -> None:
        self.problems = problems
        self.regions = regions  # the configuration's: the only names allowed (None: any)

    def region_ok(self, key: str, name: object) -> bool:
        if not isinstance(name, str) or not name:
            self.problems.append(f"{key}: {not_a_string(name)} (a region name)")
            return False
        if self.regions is not None and name not in self.regions:
            self.problems.append(f"{key}: {_describe(name)} is not one of the configured regions")
            return False
        return True

    def quantity(self, key: str, raw: object, parse: str) -> float | None:
        try:
            value = cpu_cores(raw) if parse == "cpu" else memory_gib(raw)
        except (QuantityError, TypeError, ValueError):
            self.problems.append(f"{key}: must be a quantity, got {_describe(raw)}")
            return None
        if not math.isfinite(value) or value < 0:
            self.problems.append(f"{key}: must be >= 0, got {_describe(raw)}")
            return None
        return value

    def number(self, key: str, raw: object, *, positive: bool = False) -> float | None:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(float(raw)):
            self.problems.append(f"{key}: must be a number, got {_describe(raw)}")
            return None
        if raw < 0 or (positive and raw == 0):
            self.problems.append(f"{key}: must be {'>' if positive else '>='} 0, got {raw}")
            return None
        return float(raw)

    def integer(self, key: str, raw: object, minimum: int) -> int | None:
        if isinstance(raw, bool) or not isinstance(raw, int):
            self.problems.append(f"{key}: must be an integer, got {_describe(raw)}")
            return None
        if raw < minimum:
            self.problems.append(f"{key}: must be >= {minimum}, got {raw}")
            return None
        return raw


def read_header(
    document: object, *, top: set[str], kind: str, error: type[InputProblems], source: str
) -> tuple[Mapping[str, object], list[str]]:
    """The document as a mapping (else ``error`` is raised) and the problems of its top-level keys,
    ``apiVersion`` and ``kind``: the start of every simulate input file's problems."""
    if not isinstance(document, Mapping):
        raise error([f"(top level): must be a mapping, got {_describe(document)}"], source=source)
    problems: list[str] = []
    for unknown in sorted(set(map(str, document)) - top):
        problems.append(f"{unknown}: unknown key (allowed: {', '.join(sorted(top))})")
    if document.get("apiVersion", API_VERSION) != API_VERSION:
        problems.append(f"apiVersion: must be {API_VERSION}, got {_describe(document.get('apiVersion'))}")
    if document.get("kind", kind) != kind:
        problems.append(f"kind: must be {kind}, got {_describe(document.get('kind'))}")
    return document, problems


def parse_workload(
    document: object, *, regions: frozenset[str] | None = None, source: str = ""
) -> SimulatedWorkload:
    """Validate a parsed document; ``regions`` (the config's) are the only names allowed."""
    document, problems = read_header(document, top=_TOP, kind=KIND, error=WorkloadError, source=source)
    checks = Checks(problems, regions)
    region_ok, quantity, number, integer = checks.region_ok, checks.quantity, checks.number, checks.integer

    capacity: dict[str, Capacity] = {}
    raw_capacity = document.get("capacity")
    if not isinstance(raw_capacity, Mapping) or not raw_capacity:
        problems.append(
            f"capacity: must be a non-empty mapping region -> {{cpu, memory}}, got {_describe(raw_capacity)}"
        )
        raw_capacity = {}
    for region, entry in raw_capacity.items():
        key = f"capacity.{region}"
        if not region_ok(key, region):
            continue
        if not isinstance(entry, Mapping):
            problems.append(f"{key}: must be a mapping {{cpu, memory}}, got {_describe(entry)}")
            continue
        for unknown in sorted(set(map(str, entry)) - {"cpu", "memory"}):
            problems.append(f"{key}.{unknown}: unknown key (allowed: cpu, memory)")
        cpu = quantity(f"{key}.cpu", entry.get("cpu"), "cpu")
        memory = quantity(f"{key}.memory", entry.get("memory"), "memory")
        if cpu is not None and memory is not None:
            capacity[str(region)] = Capacity(cpu=cpu, memory_gib=memory)

    workloads: list[Workload] = []
    jobs = parse_jobs(
        document.get("jobs"),
        problems=problems,
        region_ok=region_ok,
        quantity=quantity,
        number=number,
        capacity=raw_capacity,
    )
    raw_workloads = document.get("workloads")
    # A file may hold jobs only (workloads: []).
    if not isinstance(raw_workloads, list) or (not raw_workloads and not document.get("jobs")):
        problems.append(f"workloads: must be a non-empty list, got {_describe(raw_workloads)}")
        raw_workloads = []
    seen: set[str] = set()
    for index, entry in enumerate(raw_workloads):
        key = f"workloads[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{key}: must be a mapping, got {_describe(entry)}")
            continue
        for unknown in sorted(set(map(str, entry)) - _WORKLOAD_KEYS):
            problems.append(f"{key}.{unknown}: unknown key (allowed: {', '.join(sorted(_WORKLOAD_KEYS))})")
        before = len(problems)
        name, namespace = entry.get("name"), entry.get("namespace", "default")
        for field_name, value in (("name", name), ("namespace", namespace)):
            if not isinstance(value, str) or not value:
                problems.append(f"{key}.{field_name}: {not_a_string(value)}")
        replicas = integer(f"{key}.replicas", entry.get("replicas"), 1)
        cpu = quantity(f"{key}.cpu", entry.get("cpu"), "cpu")
        memory = quantity(f"{key}.memory", entry.get("memory", 0), "memory")
        start = entry.get("startRegion")
        region_ok(f"{key}.startRegion", start)
        if isinstance(start, str) and start not in raw_capacity:
            problems.append(f"{key}.startRegion: no capacity given for region {_describe(start)}")
        max_unavailable = integer(f"{key}.maxUnavailable", entry.get("maxUnavailable", 1), 0)
        runtime = latency = None
        if "runtimeHours" in entry:
            runtime = number(f"{key}.runtimeHours", entry["runtimeHours"], positive=True)
        if "maxLatencyMs" in entry:
            latency = number(f"{key}.maxLatencyMs", entry["maxLatencyMs"])
        data_region = entry.get("dataRegion")
        if data_region is not None:
            region_ok(f"{key}.dataRegion", data_region)
        egress = number(f"{key}.egressGbPerHour", entry.get("egressGbPerHour", 0.0)) or 0.0
        allowed: tuple[str, ...] | None = None
        if "allowedRegions" in entry:
            raw_allowed = entry["allowedRegions"]
            if not isinstance(raw_allowed, list) or not raw_allowed:
                problems.append(
                    f"{key}.allowedRegions: must be a non-empty list of region names, "
                    f"got {_describe(raw_allowed)}"
                )
            else:
                # every bad name reported, not only the first
                named = [region_ok(f"{key}.allowedRegions[{i}]", r) for i, r in enumerate(raw_allowed)]
                if all(named):
                    allowed = tuple(str(r) for r in raw_allowed)
        kinds = {str(kind): kind for kind in CapacityType}
        raw_kind = entry.get("capacityType", str(CapacityType.ON_DEMAND))
        kind = kinds.get(raw_kind) if isinstance(raw_kind, str) else None
        if kind is None:
            problems.append(
                f"{key}.capacityType: must be one of {', '.join(kinds)}, got {_describe(raw_kind)}"
            )
        if isinstance(name, str) and isinstance(namespace, str):
            if f"{namespace}/{name}" in seen:
                problems.append(f"{key}.name: duplicate workload {namespace}/{name}")
            seen.add(f"{namespace}/{name}")
        if len(problems) > before or replicas is None or cpu is None or memory is None:
            continue
        if max_unavailable is None or kind is None:
            continue
        workloads.append(
            Workload(
                name=str(name),
                namespace=str(namespace),
                replicas=replicas,
                cpu=cpu,
                memory_gib=memory,
                start_region=str(start),
                max_unavailable=max_unavailable,
                runtime_hours=runtime,
                max_latency_ms=latency,
                data_region=str(data_region) if data_region is not None else None,
                egress_gb_per_hour=egress,
                capacity_type=kind,
                allowed_regions=allowed,
            )
        )
    if not problems:
        # The starting placement must fit: every policy is measured against it.
        for region, room in capacity.items():
            cpu_used = sum(w.cpu * w.replicas for w in workloads if w.start_region == region)
            memory_used = sum(w.memory_gib * w.replicas for w in workloads if w.start_region == region)
            if cpu_used > room.cpu + 1e-9 or memory_used > room.memory_gib + 1e-9:
                problems.append(
                    f"capacity.{region}: the workloads starting there need {cpu_used:g} CPU and "
                    f"{memory_used:g}Gi, more than its {room.cpu:g} CPU and {room.memory_gib:g}Gi"
                )
    if problems:
        raise WorkloadError(problems, source=source)
    return SimulatedWorkload(capacity=capacity, workloads=tuple(workloads), jobs=jobs)


def load_workload(path: Path, *, regions: frozenset[str] | None = None) -> SimulatedWorkload:
    document = load_yaml_file(path, error=WorkloadError)
    return parse_workload(document, regions=regions, source=str(path))
