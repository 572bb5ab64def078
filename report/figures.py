"""The report's figures from Prometheus query results: PromQL in, rows and cumulative series out (pure).

Totals per (namespace, region) come from one instant query per counter at the end of the range,
``sum by (namespace, region) (increase(M[<range>s]))``; namespace rows and region rows are sums of those,
so both tables and their TOTAL rows agree exactly (a sum of per-series increases is the same whichever
way it is grouped). Net figures are subtracted here, not in PromQL: ``A - B`` between two ``sum by``
results keeps only label sets present on both sides, and a namespace that only ever ran in regions
dirtier than the baseline (only ``added`` series) would vanish instead of showing a negative figure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from report.prometheus import Sample, Series

POD_SECONDS = "ecopulse_pod_seconds_total"
ENERGY = "ecopulse_energy_kwh_total"
EMISSIONS = "ecopulse_emissions_grams_total"
COST = "ecopulse_cost_usd_total"
CARBON_AVOIDED = "ecopulse_carbon_avoided_grams_total"
CARBON_ADDED = "ecopulse_carbon_added_grams_total"
COST_SAVED = "ecopulse_cost_saved_usd_total"
COST_ADDED = "ecopulse_cost_added_usd_total"

# Every counter the tables need (instant queries), and those the cumulative charts need (range queries).
TOTAL_METRICS = (POD_SECONDS, ENERGY, EMISSIONS, COST, CARBON_AVOIDED, CARBON_ADDED, COST_SAVED, COST_ADDED)
TIMELINE_METRICS = (CARBON_AVOIDED, CARBON_ADDED, COST_SAVED, COST_ADDED)

# Which prices priced the figures: the sources of the prices in force at the end of the range
# (core.signals.prices: a provider, config, static, or static(fallback) when a live price went stale).
PRICE_SOURCES_QUERY = "count by (source) (ecopulse_price_usd_per_hour)"

CLEANER_LABEL = "cleaner_than_baseline"
TOTAL = "TOTAL"  # the name of the total row (no namespace or region can be spelt in capitals)

Grouping = Literal["namespace", "region"]

METHODOLOGY = (
    "Each figure is Prometheus' increase() of an Eco-Pulse counter over the whole range, evaluated at its "
    "end, summed over series. increase() adds across counter resets and extrapolates from the first and "
    "last samples inside the range towards its edges, so a figure can differ slightly from the exact "
    "difference of two counter readings. A series that appears inside the range (a new rebalancer leader "
    "exports new series) is counted from its first scraped sample: what it counted before that scrape is "
    "not included. Net avoided CO2 = increase(carbon avoided) - increase(carbon added), both against the "
    "baseline region: negative where a namespace ran dirtier than the baseline overall. Net cost saved = "
    "increase(cost saved) - increase(cost added), likewise. The share of pod-hours cleaner than the "
    'baseline is increase(pod seconds with cleaner_than_baseline="true") / increase(all pod seconds). '
    "Intensities are location-based averages and energy comes from pod requests through the configured "
    "power model (see the Eco-Pulse README). The charts add up increase() over each step, so where they "
    "end can differ slightly from the tables."
)


def promql_string(text: str) -> str:
    """``text`` as a double-quoted PromQL string literal (Go escapes, which JSON's are a subset of)."""
    return json.dumps(text, ensure_ascii=False)


def selector(metric: str, namespace_regex: str | None) -> str:
    if namespace_regex is None:
        return metric
    return f"{metric}{{namespace=~{promql_string(namespace_regex)}}}"


def total_queries(range_seconds: int, namespace_regex: str | None = None) -> dict[str, str]:
    """metric name -> the instant query, at the end of the range, for its increase over the range."""
    queries = {}
    for metric in TOTAL_METRICS:
        by = "namespace, region, " + CLEANER_LABEL if metric == POD_SECONDS else "namespace, region"
        queries[metric] = f"sum by ({by}) (increase({selector(metric, namespace_regex)}[{range_seconds}s]))"
    return queries


def timeline_queries(step_seconds: int, namespace_regex: str | None = None) -> dict[str, str]:
    """metric name -> the range query for its increase over each step, per namespace."""
    return {
        metric: f"sum by (namespace) (increase({selector(metric, namespace_regex)}[{step_seconds}s]))"
        for metric in TIMELINE_METRICS
    }


@dataclass(frozen=True, slots=True)
class Row:
    """One namespace's (or region's) figures over the range. ``share_cleaner`` is a fraction 0..1, None
    when there are no pod-seconds to divide by."""

    name: str
    pod_hours: float
    share_cleaner: float | None
    energy_kwh: float
    emissions_kg: float
    net_carbon_avoided_kg: float
    cost_usd: float
    net_cost_saved_usd: float


@dataclass(slots=True)
class _Sums:
    pod_seconds: float = 0.0
    cleaner_pod_seconds: float = 0.0
    by_metric: dict[str, float] = field(default_factory=dict)

    def add(self, metric: str, sample: Sample) -> None:
        if metric == POD_SECONDS:
            self.pod_seconds += sample.value
            if sample.labels.get(CLEANER_LABEL) == "true":
                self.cleaner_pod_seconds += sample.value
        else:
            self.by_metric[metric] = self.by_metric.get(metric, 0.0) + sample.value

    def row(self, name: str) -> Row:
        m = self.by_metric.get
        return Row(
            name=name,
            pod_hours=self.pod_seconds / 3600.0,
            share_cleaner=self.cleaner_pod_seconds / self.pod_seconds if self.pod_seconds > 0 else None,
            energy_kwh=m(ENERGY, 0.0),
            emissions_kg=m(EMISSIONS, 0.0) / 1000.0,
            net_carbon_avoided_kg=(m(CARBON_AVOIDED, 0.0) - m(CARBON_ADDED, 0.0)) / 1000.0,
            cost_usd=m(COST, 0.0),
            net_cost_saved_usd=m(COST_SAVED, 0.0) - m(COST_ADDED, 0.0),
        )


@dataclass(frozen=True, slots=True)
class Table:
    """Rows by net avoided CO2, largest first (then by name), and the TOTAL row."""

    rows: tuple[Row, ...]
    total: Row


def table(results: Mapping[str, Sequence[Sample]], by: Grouping) -> Table:
    """Rows grouped by the ``by`` label from the instant results of :func:`total_queries` (metric name ->
    samples; a missing metric counts as no series). Samples that are not finite numbers are left out
    (see :func:`unusable`)."""
    groups: dict[str, _Sums] = {}
    total = _Sums()
    for metric, samples in results.items():
        for sample in samples:
            if not math.isfinite(sample.value):
                continue
            groups.setdefault(sample.labels.get(by, ""), _Sums()).add(metric, sample)
            total.add(metric, sample)
    rows = sorted(
        (sums.row(name) for name, sums in groups.items()), key=lambda r: (-r.net_carbon_avoided_kg, r.name)
    )
    return Table(rows=tuple(rows), total=total.row(TOTAL))


def unusable(results: Mapping[str, Sequence[Sample]]) -> list[str]:
    """A warning for each sample that is NaN or infinite (left out of the figures)."""
    return [
        f"{metric}{dict(sample.labels)}: value {sample.value} left out"
        for metric, samples in results.items()
        for sample in samples
        if not math.isfinite(sample.value)
    ]


@dataclass(frozen=True, slots=True)
class Timeline:
    """Cumulative net figures per namespace at ``times`` (start, start + step, ... <= end; 0 at start),
    namespaces in order of their final net avoided CO2, largest first."""

    times: tuple[datetime, ...]
    net_carbon_avoided_kg: dict[str, list[float]]
    net_cost_saved_usd: dict[str, list[float]]


def step_times(start: datetime, end: datetime, step: timedelta) -> tuple[datetime, ...]:
    count = math.floor((end - start) / step)
    return tuple(start + step * k for k in range(count + 1))


def _per_step(
    series: Sequence[Series], start: datetime, step: timedelta, steps: int
) -> dict[str, list[float]]:
    """namespace -> increase over each step (index k: the step ending at start + k*step; index 0 unused)."""
    origin, width = start.timestamp(), step.total_seconds()
    out: dict[str, list[float]] = {}
    for s in series:
        values = out.setdefault(s.labels.get("namespace", ""), [0.0] * (steps + 1))
        for ts, value in s.points:
            k = round((ts - origin) / width)
            if 1 <= k <= steps and math.isfinite(value):
                values[k] += value
    return out


def _cumulative_difference(
    plus: Mapping[str, list[float]], minus: Mapping[str, list[float]], steps: int, scale: float
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    zeros = [0.0] * (steps + 1)
    for namespace in plus.keys() | minus.keys():
        a, b = plus.get(namespace, zeros), minus.get(namespace, zeros)
        running, values = 0.0, [0.0]
        for k in range(1, steps + 1):
            running += a[k] - b[k]
            values.append(running / scale)
        out[namespace] = values
    return out


def timeline(
    results: Mapping[str, Sequence[Series]], *, start: datetime, end: datetime, step: timedelta
) -> Timeline:
    """Cumulative net avoided CO2 (kg) and net cost saved (USD) per namespace from the range results of
    :func:`timeline_queries` evaluated at start + step, start + 2*step, ... <= end."""
    times = step_times(start, end, step)
    steps = len(times) - 1
    per = {metric: _per_step(results.get(metric, ()), start, step, steps) for metric in TIMELINE_METRICS}
    carbon = _cumulative_difference(per[CARBON_AVOIDED], per[CARBON_ADDED], steps, 1000.0)
    cost = _cumulative_difference(per[COST_SAVED], per[COST_ADDED], steps, 1.0)
    for namespace in carbon.keys() | cost.keys():
        carbon.setdefault(namespace, [0.0] * (steps + 1))
        cost.setdefault(namespace, [0.0] * (steps + 1))
    order = sorted(carbon, key=lambda ns: (-carbon[ns][-1], ns))
    return Timeline(
        times=times,
        net_carbon_avoided_kg={ns: carbon[ns] for ns in order},
        net_cost_saved_usd={ns: cost[ns] for ns in order},
    )


def price_sources(samples: Sequence[Sample]) -> list[str]:
    """The price sources named by PRICE_SOURCES_QUERY's answer, sorted."""
    return sorted({sample.labels.get("source", "") for sample in samples} - {""})
