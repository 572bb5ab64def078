"""The ``jobs:`` of a ``SimulatedWorkload``: Job templates that arrive again and again, each run
with a deadline, for the deferral replay (``rebalancer.simulate.jobs``).

```yaml
jobs:
  - {name: train, namespace: ml, cpu: "8", memory: 32Gi, homeRegion: de-frankfurt,
     allowedRegions: [de-frankfurt, es-madrid, no-oslo], runtimeHours: 4, finishWithinHours: 24,
     arrivals: {everyHours: 24, firstAtHour: 18}}   # first at 18:00 UTC on the replay's first day
```

Optional: ``allowedRegions`` (default: every configured region), ``maxLatencyMs``, ``dataRegion``,
``egressGbPerHour``, ``capacityType``, as for workloads. Errors name their key, like the rest of
the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.model import CapacityType
from core.yaml_input import describe, not_a_string

_JOB_KEYS = {
    "name",
    "namespace",
    "cpu",
    "memory",
    "homeRegion",
    "allowedRegions",
    "runtimeHours",
    "finishWithinHours",
    "arrivals",
    "maxLatencyMs",
    "dataRegion",
    "egressGbPerHour",
    "capacityType",
}
_ARRIVAL_KEYS = {"everyHours", "firstAtHour"}


@dataclass(frozen=True, slots=True, kw_only=True)
class JobTemplate:
    name: str
    namespace: str
    cpu: float
    memory_gib: float
    home_region: str
    allowed_regions: tuple[str, ...] | None  # None: anywhere placement allows
    runtime_hours: float
    finish_within_hours: float
    every_hours: float
    first_at_hour: float  # hours after 00:00 UTC of the replay's first day
    max_latency_ms: float | None = None
    data_region: str | None = None
    egress_gb_per_hour: float = 0.0
    capacity_type: CapacityType = CapacityType.ON_DEMAND

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_jobs(
    raw: object,
    *,
    problems: list[str],
    region_ok: Callable[[str, object], bool],
    quantity: Callable[[str, object, str], float | None],
    number: Callable[..., float | None],
    capacity: Mapping[str, object],
) -> tuple[JobTemplate, ...]:
    """The templates of ``jobs:``; every problem is appended to ``problems`` with its key. The
    checks are the workload file's own (``region_ok``, ``quantity``, ``number``)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(f"jobs: must be a list, got {describe(raw)}")
        return ()
    out: list[JobTemplate] = []
    seen: set[str] = set()
    for index, entry in enumerate(raw):
        key = f"jobs[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{key}: must be a mapping, got {describe(entry)}")
            continue
        before = len(problems)
        for unknown in sorted(set(map(str, entry)) - _JOB_KEYS):
            problems.append(f"{key}.{unknown}: unknown key (allowed: {', '.join(sorted(_JOB_KEYS))})")
        name, namespace = entry.get("name"), entry.get("namespace", "default")
        for field_name, value in (("name", name), ("namespace", namespace)):
            if not isinstance(value, str) or not value:
                problems.append(f"{key}.{field_name}: {not_a_string(value)}")
        if isinstance(name, str):
            if name in seen:
                problems.append(f"{key}.name: duplicate job {name} (report.json keys jobs by name)")
            seen.add(name)
        cpu = quantity(f"{key}.cpu", entry.get("cpu"), "cpu")
        memory = quantity(f"{key}.memory", entry.get("memory", 0), "memory")
        home = entry.get("homeRegion")
        if region_ok(f"{key}.homeRegion", home) and home not in capacity:
            problems.append(f"{key}.homeRegion: no capacity given for region {describe(home)}")
        allowed: tuple[str, ...] | None = None
        raw_allowed = entry.get("allowedRegions")
        if raw_allowed is not None:
            if not isinstance(raw_allowed, list) or not raw_allowed:
                problems.append(
                    f"{key}.allowedRegions: must be a non-empty list, got {describe(raw_allowed)}"
                )
            else:
                allowed = tuple(str(r) for r in raw_allowed)
                for i, region in enumerate(raw_allowed):
                    region_ok(f"{key}.allowedRegions[{i}]", region)
                if isinstance(home, str) and home not in allowed:
                    problems.append(f"{key}.allowedRegions: must include homeRegion {home}")
        runtime = number(f"{key}.runtimeHours", entry.get("runtimeHours"), positive=True)
        within = number(f"{key}.finishWithinHours", entry.get("finishWithinHours"), positive=True)
        if runtime is not None and within is not None and runtime > within:
            problems.append(f"{key}.finishWithinHours: {within:g} is shorter than runtimeHours {runtime:g}")
        arrivals = entry.get("arrivals")
        every = first = None
        if not isinstance(arrivals, Mapping):
            problems.append(
                f"{key}.arrivals: must be a mapping {{everyHours, firstAtHour}}, got {describe(arrivals)}"
            )
        else:
            for unknown in sorted(set(map(str, arrivals)) - _ARRIVAL_KEYS):
                problems.append(f"{key}.arrivals.{unknown}: unknown key (allowed: everyHours, firstAtHour)")
            every = number(f"{key}.arrivals.everyHours", arrivals.get("everyHours"), positive=True)
            first = number(f"{key}.arrivals.firstAtHour", arrivals.get("firstAtHour", 0))
            for field_name, value in (("everyHours", every), ("firstAtHour", first)):
                if value is not None and value != int(value):
                    problems.append(
                        f"{key}.arrivals.{field_name}: must be a whole number of hours, got {value:g}"
                    )
        latency = None
        if "maxLatencyMs" in entry:
            latency = number(f"{key}.maxLatencyMs", entry["maxLatencyMs"])
        data_region = entry.get("dataRegion")
        if data_region is not None:
            region_ok(f"{key}.dataRegion", data_region)
        egress = number(f"{key}.egressGbPerHour", entry.get("egressGbPerHour", 0.0)) or 0.0
        kinds = {str(kind): kind for kind in CapacityType}
        raw_kind = entry.get("capacityType", str(CapacityType.ON_DEMAND))
        kind = kinds.get(raw_kind) if isinstance(raw_kind, str) else None
        if kind is None:
            problems.append(
                f"{key}.capacityType: must be one of {', '.join(kinds)}, got {describe(raw_kind)}"
            )
        if len(problems) > before:
            continue
        assert cpu is not None and memory is not None and runtime is not None and within is not None
        assert every is not None and first is not None and kind is not None
        out.append(
            JobTemplate(
                name=str(name),
                namespace=str(namespace),
                cpu=cpu,
                memory_gib=memory,
                home_region=str(home),
                allowed_regions=allowed,
                runtime_hours=runtime,
                finish_within_hours=within,
                every_hours=every,
                first_at_hour=first,
                max_latency_ms=latency,
                data_region=str(data_region) if data_region is not None else None,
                egress_gb_per_hour=egress,
                capacity_type=kind,
            )
        )
    return tuple(out)
