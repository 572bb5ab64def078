"""The Grafana dashboards and alert rules of dashboards/, and the metrics the code exports.

Helpers for test_dashboards.py: load the dashboards, list every panel's PromQL, render Grafana's
variables the way a Prometheus data source would (so that promtool can parse and evaluate a
query), and list the metric families that core, webhook and rebalancer export.

Metric names are compared as a query writes them: a counter as ``<name>_total``, a gauge or a
histogram by its family name (a histogram is queried through ``_bucket``, ``_sum`` or
``_count``).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Collection, Iterator, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

import core.signals.prices.refresher
import core.signals.refresher

Dashboard = dict[str, Any]
Panel = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "dashboards"
ALERTS = DASHBOARD_DIR / "alerts.yaml"
ALERTS_TEST = DASHBOARD_DIR / "alerts.test.yaml"

PREFIX = "ecopulse_"
# Every module that creates metrics in prometheus_client's default registry when imported. The
# scrape-time signal gauges are added from core.signals.refresher (its collector is only
# registered by a running process). test_dashboards.py checks that no module is missing here.
METRIC_MODULES = (
    "core.metrics",
    "core.signals.prices.refresher",
    "webhook.metrics",
    "webhook.events",
    "rebalancer.cycle",
    "rebalancer.evictor",
    "rebalancer.leader",
    "rebalancer.accounting",
    "fleet.metrics",
)
# The sample names Prometheus scrapes for each type of family, after the family name.
SAMPLE_SUFFIXES: Mapping[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}
# What a Prometheus data source substitutes for Grafana's own variables (a 15 s scrape interval).
RATE_INTERVAL = "1m"
INTERVAL = "15s"
# The dashboards' own query variables: rendered as "All" (allValue .*).
TEMPLATE_VARIABLES = ("namespace",)

_METRIC_TOKEN = re.compile(r"ecopulse_[a-zA-Z0-9_:]*")
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


# --- dashboards -------------------------------------------------------------------------------


def load_dashboards() -> dict[str, Dashboard]:
    """Every dashboard of DASHBOARD_DIR by file name (``overview.json``: its JSON model)."""
    dashboards: dict[str, Dashboard] = {}
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
        assert isinstance(document, dict), f"{path.name} is not a JSON object"
        dashboards[path.name] = document
    return dashboards


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def iter_panels(dashboard: Dashboard) -> Iterator[Panel]:
    """Every panel, rows included, and the panels nested in (collapsed) rows."""
    stack: list[Panel] = list(reversed(dashboard.get("panels", [])))
    while stack:
        panel = stack.pop()
        yield panel
        stack.extend(reversed(panel.get("panels", [])))


def panel_queries(dashboard: Dashboard) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query target of every panel, in the dashboard's order."""
    return [
        (str(panel.get("title", "")), str(target["expr"]))
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def query_of(dashboard: Dashboard, title: str) -> str:
    """The single query of the panel titled ``title``."""
    queries = [expr for panel_title, expr in panel_queries(dashboard) if panel_title == title]
    assert len(queries) == 1, f"expected one query in panel {title!r}, found {len(queries)}"
    return queries[0]


def grafana_variables(range_seconds: int) -> dict[str, str]:
    return {
        "__range": f"{range_seconds}s",
        "__range_s": str(range_seconds),
        "__range_ms": str(range_seconds * 1000),
        "__rate_interval": RATE_INTERVAL,
        "__interval": INTERVAL,
        "__interval_ms": str(_seconds(INTERVAL) * 1000),
    }


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(duration[:-1]) * units[duration[-1]]


def variables_used(expr: str) -> set[str]:
    """Names of the Grafana variables in ``expr`` ($x, ${x}, ${x:format}, [[x]])."""
    names = {next(group for group in match.groups() if group) for match in _VARIABLE.finditer(expr)}
    return {name for name in names if not name.isdigit()}  # $1 in label_replace is not a variable


def render_query(expr: str, *, range_seconds: int, variables: Collection[str] = TEMPLATE_VARIABLES) -> str:
    """``expr`` as Grafana sends it: our variables set to All (.*), Grafana's own to real durations.

    Variables that are neither are left as they are, so that a typo fails to parse.
    """
    builtins = grafana_variables(range_seconds)

    def substitute(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name in builtins:
            return builtins[name]
        if name in variables:
            return ".*"
        return match.group(0)

    return _VARIABLE.sub(substitute, expr)


# --- PromQL names -----------------------------------------------------------------------------


def metric_tokens(expr: str) -> set[str]:
    """Every ``ecopulse_`` sample name in ``expr``, as written."""
    return set(_METRIC_TOKEN.findall(expr))


def referenced_metric_names(expr: str) -> set[str]:
    """The families ``expr`` reads, named as exported_metric_names() names them.

    ``_bucket``, ``_sum`` and ``_count`` are a histogram's samples: the family is the name without
    them. ``_created`` is taken as a counter's (``x_created`` -> ``x_total``); no panel needs a
    histogram's ``_created``.
    """
    names: set[str] = set()
    for token in metric_tokens(expr):
        if token.endswith(_HISTOGRAM_SUFFIXES):
            names.add(token.rsplit("_", 1)[0])
        elif token.endswith("_created"):
            names.add(token.removesuffix("_created") + "_total")
        else:
            names.add(token)
    return names


# --- what the code exports --------------------------------------------------------------------


def metric_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in METRIC_MODULES]


@cache
def exported_families() -> dict[str, str]:
    """prometheus_client family name (a counter's without ``_total``) -> type, ``ecopulse_`` only."""
    metric_modules()
    families: dict[str, str] = {}
    scrape_time: tuple[Metric, ...] = (
        *core.signals.refresher._families(),
        *core.signals.prices.refresher._families(),
    )
    for metric in (*REGISTRY.collect(), *scrape_time):
        if metric.name.startswith(PREFIX):
            families[metric.name] = metric.type
    return families


def query_name(family: str, kind: str) -> str:
    """The name a query uses for a family: ``x_total`` for a counter, ``x_info`` for an info."""
    if kind == "counter":
        return family + "_total"
    if kind == "info":
        return family + "_info"
    return family


def exported_metric_names() -> set[str]:
    """Every metric family the code exports, as a query names it (counters with ``_total``)."""
    return {query_name(family, kind) for family, kind in exported_families().items()}


def exported_sample_names() -> set[str]:
    """Every sample name Prometheus can scrape from us (``_bucket``, ``_created``... included)."""
    return {
        family + suffix for family, kind in exported_families().items() for suffix in SAMPLE_SUFFIXES[kind]
    }


def metric_label_names() -> dict[str, frozenset[str]]:
    """Query name -> label names, for the metrics the modules define and the scrape-time gauges."""
    labels: dict[str, frozenset[str]] = {}
    for module in metric_modules():
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                labels[query_name(value._name, value._type or "unknown")] = frozenset(value._labelnames)
    for family in core.signals.refresher._families():
        labels[query_name(family.name, family.type)] = frozenset(family._labelnames)
    return labels


# --- alert rules ------------------------------------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of every group of alerts.yaml."""
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "alerts.yaml is not a rule file"
    return [rule for group in document["groups"] for rule in group["rules"]]


def alert_queries() -> list[tuple[str, str]]:
    """(alert or record name, PromQL) for every rule of alerts.yaml."""
    return [(str(rule.get("alert") or rule.get("record")), str(rule["expr"])) for rule in alert_rules()]
