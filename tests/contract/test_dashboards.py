"""dashboards/ and the code agree: every metric a dashboard or alert reads is exported, every
exported metric is on a dashboard, the dashboards import anywhere (templated data source, stable
uids), the queries parse and compute what the panels say, and the alert rules pass promtool's
checks and unit tests. The manifests ship the same files as ConfigMaps.

promtool (Debian's `prometheus` package, or any Prometheus >= 2.42) is required: without it these
tests fail and say to run hack/install-prometheus.sh.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.contract.dashboards import (
    ALERTS,
    ALERTS_TEST,
    DASHBOARD_DIR,
    METRIC_MODULES,
    RATE_INTERVAL,
    REPO,
    TEMPLATE_VARIABLES,
    Dashboard,
    alert_queries,
    alert_rules,
    exported_metric_names,
    exported_sample_names,
    grafana_variables,
    iter_panels,
    load_dashboards,
    metric_label_names,
    metric_tokens,
    panel_queries,
    query_of,
    referenced_metric_names,
    render_query,
    variables_used,
)

DASHBOARDS = load_dashboards()
EXPECTED_UIDS = {
    "overview.json": "ecopulse-overview",
    "namespaces.json": "ecopulse-namespaces",
    "operations.json": "ecopulse-operations",
    "fleet.json": "ecopulse-fleet",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
NAMESPACE_QUERY = "label_values(ecopulse_managed_pods, namespace)"
# Fleet mode runs without the one-cluster apps: its namespaces come from its own replicas gauge.
FLEET_NAMESPACE_QUERY = "label_values(ecopulse_fleet_replicas, namespace)"
# Signed savings are pairs of counters: a panel shows gain - loss, never the gain alone.
SIGNED_PAIRS = (
    ("ecopulse_carbon_avoided_grams_total", "ecopulse_carbon_added_grams_total"),
    ("ecopulse_cost_saved_usd_total", "ecopulse_cost_added_usd_total"),
)
REQUIRED_ALERTS = {
    "EcoPulseSignalsStale",
    "EcoPulsePricesStale",
    "EcoPulseFailOpenRising",
    "EcoPulseRebalancerNotCycling",
    "EcoPulseWebhookLatencyHigh",
    # The API server's own admission metrics: the webhook being down moves none of ours (issue 19).
    "EcoPulseWebhookUnreachable",
    "EcoPulseWebhookRejectingPods",
}
# The alerts whose firing alerts.test.yaml must show at least.
UNIT_TESTED_ALERTS = {
    "EcoPulseSignalsStale",
    "EcoPulsePricesStale",
    "EcoPulseRebalancerNotCycling",
    "EcoPulseWebhookUnreachable",
    "EcoPulseWebhookRejectingPods",
}
SEVERITIES = {"critical", "warning", "info"}
MANIFEST_DASHBOARDS = REPO / "manifests" / "base" / "dashboards"
SOURCE_PACKAGES = ("core", "webhook", "rebalancer", "fleet")
RANGE_SECONDS = 3600
WINDOW = re.compile(r"\[([^\]]+)\]")
CONSTRUCTOR = re.compile(
    r"\b(Counter|Gauge|Histogram|Summary|Info|Enum|\w*MetricFamily)\(\s*\"(ecopulse_\w+)\""
)


def all_queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) over every dashboard."""
    for name, dashboard in DASHBOARDS.items():
        for title, expr in panel_queries(dashboard):
            yield name, title, expr


def queried_panels(dashboard: Dashboard) -> list[dict[str, Any]]:
    return [panel for panel in iter_panels(dashboard) if panel.get("type") != "row"]


def template_names(dashboard: Dashboard) -> set[str]:
    return {variable["name"] for variable in dashboard["templating"]["list"]}


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(path, key, value) for every key of every object in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from walk(item, f"{path}[{index}]")


@pytest.fixture(scope="module")
def promtool() -> Path:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed: run hack/install-prometheus.sh (Debian's prometheus package, "
            "or any Prometheus >= 2.42 with promtool on PATH)"
        )
    return Path(found)


def run_promtool(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


# --- the dashboards import anywhere -----------------------------------------------------------


def test_the_dashboards_have_stable_unique_uids() -> None:
    assert set(DASHBOARDS) == set(EXPECTED_UIDS)
    titles = set()
    for name, dashboard in DASHBOARDS.items():
        assert dashboard["uid"] == EXPECTED_UIDS[name], f"{name}: the uid is its stable URL; do not change it"
        assert dashboard["id"] is None, f"{name}: an exported id would clash on import"
        assert dashboard["schemaVersion"] >= 36, f"{name}: made for Grafana 10+"
        assert isinstance(dashboard["version"], int)
        assert "__inputs" not in dashboard and "__requires" not in dashboard, (
            f"{name}: use the datasource variable, not import-time inputs"
        )
        assert "eco-pulse" in dashboard["tags"]
        titles.add(dashboard["title"])
    assert len(titles) == len(DASHBOARDS)


def test_the_data_source_is_a_variable_everywhere() -> None:
    for name, dashboard in DASHBOARDS.items():
        (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
        assert (variable["type"], variable["query"]) == ("datasource", "prometheus"), name
        for path, key, value in walk(dashboard):
            assert key not in {"datasourceId", "datasourceUid"}, f"{name}{path}: a hard-coded data source"
            if key == "datasource":
                assert value == DATASOURCE, f"{name}{path}: datasource must be {DATASOURCE}, is {value!r}"
            if isinstance(value, str):
                assert "${DS_" not in value, f"{name}{path}: an import-time input, use ${{datasource}}"
        for panel in queried_panels(dashboard):
            assert panel.get("datasource") == DATASOURCE, f"{name}: panel {panel.get('title')!r}"
            for target in panel["targets"]:
                assert target.get("datasource") == DATASOURCE, f"{name}: panel {panel['title']!r}"


def test_every_panel_has_a_query_and_a_place() -> None:
    for name, dashboard in DASHBOARDS.items():
        ids = [panel["id"] for panel in iter_panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in iter_panels(dashboard):
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, (name, panel["title"])
        for panel in queried_panels(dashboard):
            where = f"{name}: panel {panel.get('title')!r}"
            assert panel.get("title"), f"{name}: a panel without a title"
            assert panel.get("description"), f"{where} says what it shows in its description"
            targets = panel.get("targets") or []
            assert targets, f"{where} has no query"
            assert all(str(target.get("expr", "")).strip() for target in targets), f"{where}: empty query"
            refs = [target["refId"] for target in targets]
            assert len(refs) == len(set(refs)), f"{where}: duplicate refIds"


def test_variables_are_defined_and_namespaces_selectable() -> None:
    labels = metric_label_names()
    for name, dashboard in DASHBOARDS.items():
        defined = template_names(dashboard)
        assert defined - {"datasource"} <= set(TEMPLATE_VARIABLES), (
            f"{name}: render_query must know {defined}"
        )
        used = {variable for _, expr in panel_queries(dashboard) for variable in variables_used(expr)}
        assert used <= defined | set(grafana_variables(RANGE_SECONDS)), f"{name}: undefined {used - defined}"
        if "namespace" not in defined:
            continue
        (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "namespace"]
        query = FLEET_NAMESPACE_QUERY if name == "fleet.json" else NAMESPACE_QUERY
        assert variable["type"] == "query" and variable["definition"] == query, name
        assert variable["query"] == query, name
        assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*", name
        for title, expr in panel_queries(dashboard):
            for match in re.finditer(r"(ecopulse_\w+)(\{[^}]*\})?", expr):
                metric, selector = match.group(1), match.group(2) or ""
                if "namespace" in labels.get(metric.removesuffix("_bucket"), frozenset()):
                    assert 'namespace=~"$namespace"' in selector, (
                        f'{name}: panel {title!r} reads {metric} without namespace=~"$namespace"'
                    )


def test_range_stats_are_instant_and_time_series_use_the_rate_interval() -> None:
    for name, dashboard in DASHBOARDS.items():
        for panel in queried_panels(dashboard):
            for target in panel["targets"]:
                where = f"{name}: panel {panel['title']!r} {target['refId']}"
                windows = set(WINDOW.findall(target["expr"]))
                if target.get("instant"):
                    assert not target.get("range"), where
                    assert windows <= {"$__range"}, f"{where}: a stat over the chosen range uses [$__range]"
                else:
                    assert windows <= {"$__rate_interval"}, f"{where}: a time series uses [$__rate_interval]"
                    assert panel["type"] in {"timeseries", "state-timeline"}, where


# --- the dashboards and the code agree --------------------------------------------------------


def test_dashboards_read_only_metrics_the_code_exports() -> None:
    samples = exported_sample_names()
    unknown = {
        f"{name}: {title}: {token}"
        for name, title, expr in all_queries()
        for token in metric_tokens(expr) - samples
    }
    assert not unknown, "queries read metrics no code exports:\n" + "\n".join(sorted(unknown))


def test_alerts_read_only_metrics_the_code_exports() -> None:
    samples = exported_sample_names()
    unknown = {
        f"{alert}: {token}" for alert, expr in alert_queries() for token in metric_tokens(expr) - samples
    }
    assert not unknown, "alerts read metrics no code exports:\n" + "\n".join(sorted(unknown))


def test_every_exported_metric_has_a_panel() -> None:
    shown = {metric for _, _, expr in all_queries() for metric in referenced_metric_names(expr)}
    missing = exported_metric_names() - shown
    assert not missing, "exported metrics that no dashboard panel shows:\n" + "\n".join(sorted(missing))


def test_the_accounting_metrics_are_exported() -> None:
    # The dashboards' purpose; rebalancer.accounting must export them (with the labels they use).
    labels = metric_label_names()
    for metric in (
        "ecopulse_energy_kwh_total",
        "ecopulse_emissions_grams_total",
        "ecopulse_carbon_avoided_grams_total",
        "ecopulse_carbon_added_grams_total",
        "ecopulse_cost_usd_total",
        "ecopulse_cost_saved_usd_total",
        "ecopulse_cost_added_usd_total",
        "ecopulse_managed_pods",
    ):
        assert labels.get(metric) == frozenset({"namespace", "region"}), metric
    assert labels["ecopulse_pod_seconds_total"] == frozenset({"namespace", "region", "cleaner_than_baseline"})
    assert labels["ecopulse_accounting_skipped_pod_seconds_total"] == frozenset({"reason"})


def test_every_module_that_defines_a_metric_is_inspected() -> None:
    exported = exported_metric_names()
    for package in SOURCE_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for kind, metric in CONSTRUCTOR.findall(path.read_text(encoding="utf-8")):
                name = metric if kind != "Counter" or metric.endswith("_total") else metric + "_total"
                assert name in exported, (
                    f"{path.relative_to(REPO)} defines {metric}: add its module to METRIC_MODULES "
                    f"in tests/contract/dashboards.py ({', '.join(METRIC_MODULES)})"
                )


def test_net_savings_are_never_shown_gross() -> None:
    for name, title, expr in all_queries():
        tokens = metric_tokens(expr)
        for gain, loss in SIGNED_PAIRS:
            assert (gain in tokens) == (loss in tokens), (
                f"{name}: panel {title!r} must show net = {gain} - {loss}, not one of them alone"
            )


def test_render_query_fills_every_variable() -> None:
    expr = 'sum(increase(x{namespace=~"$namespace", a=~"${namespace:regex}"}[$__range])) / $__range_s'
    rendered = render_query(expr, range_seconds=7200)
    assert rendered == 'sum(increase(x{namespace=~".*", a=~".*"}[7200s])) / 7200'
    assert render_query("rate(x[$__rate_interval])", range_seconds=60) == f"rate(x[{RATE_INTERVAL}])"
    assert render_query('label_replace(x, "a", "$1", "b", "(.*)")', range_seconds=60).count("$1") == 1
    for _, _, expr in all_queries():
        assert "$" not in render_query(expr, range_seconds=RANGE_SECONDS), expr


def test_referenced_metric_names_are_families() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le) (rate(ecopulse_a_seconds_bucket[5m])))"
        " / ecopulse_a_seconds_count + ecopulse_b_total - ecopulse_b_created + ecopulse_c"
    )
    assert referenced_metric_names(expr) == {"ecopulse_a_seconds", "ecopulse_b_total", "ecopulse_c"}


# --- the queries parse and compute what the panels say -----------------------------------------


def test_every_dashboard_query_parses(promtool: Path, tmp_path: Path) -> None:
    queries = list(all_queries())
    rules = [
        {
            "record": f"eco_pulse_dashboard_query:{index}",
            "expr": render_query(expr, range_seconds=RANGE_SECONDS),
        }
        for index, (_, _, expr) in enumerate(queries)
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, sort_keys=False))
    done = run_promtool(promtool, "check", "rules", str(path), cwd=tmp_path)
    failed = sorted(
        {int(i) for i in re.findall(r"eco_pulse_dashboard_query:(\d+)", done.stdout + done.stderr)}
    )
    which = "\n".join(f"  {queries[i][0]}: panel {queries[i][1]!r}: {queries[i][2]}" for i in failed)
    assert done.returncode == 0, f"dashboard queries do not parse:\n{which}\n{done.stdout}{done.stderr}"


def test_green_share_and_net_savings_compute_as_documented(promtool: Path, tmp_path: Path) -> None:
    """One hour of accounting: the green gauge, and net = avoided - added, a loss shown as a loss."""

    def counter(metric: str, namespace: str, region: str, per_minute: float, **labels: str) -> dict[str, str]:
        selector = {"job": "eco-pulse", "instance": "rebalancer-a", "namespace": namespace, "region": region}
        selector.update(labels)
        text = ", ".join(f'{key}="{value}"' for key, value in selector.items())
        return {"series": f"{metric}{{{text}}}", "values": f"0+{per_minute}x60"}

    shop, batch = ("shop", "eu-north-1"), ("batch", "ap-south-1")  # cleaner / dirtier than the baseline
    series = [
        counter("ecopulse_pod_seconds_total", *shop, 60, cleaner_than_baseline="true"),
        counter("ecopulse_pod_seconds_total", *shop, 0, cleaner_than_baseline="false"),
        counter("ecopulse_pod_seconds_total", *batch, 180, cleaner_than_baseline="false"),
        counter("ecopulse_pod_seconds_total", *batch, 0, cleaner_than_baseline="true"),
        counter("ecopulse_carbon_avoided_grams_total", *shop, 10),
        counter("ecopulse_carbon_added_grams_total", *shop, 0),
        counter("ecopulse_carbon_avoided_grams_total", *batch, 0),
        counter("ecopulse_carbon_added_grams_total", *batch, 5),
        counter("ecopulse_cost_saved_usd_total", *shop, 0.5),
        counter("ecopulse_cost_added_usd_total", *shop, 0),
        counter("ecopulse_cost_saved_usd_total", *batch, 0),
        counter("ecopulse_cost_added_usd_total", *batch, 1),
    ]
    overview, namespaces = DASHBOARDS["overview.json"], DASHBOARDS["namespaces.json"]
    expected: list[tuple[str, list[tuple[str, float]]]] = [
        # one pod-hour of four in a region cleaner than the baseline
        (query_of(overview, "Green share of pod-hours"), [("{}", 0.25)]),
        (query_of(overview, "Net CO2 avoided"), [("{}", 300)]),  # 600 avoided - 300 added
        (query_of(overview, "Net cost saved"), [("{}", -30)]),  # 30 saved - 60 added: a net loss
        (
            query_of(namespaces, "Net CO2 avoided by namespace"),
            [('{namespace="shop"}', 600), ('{namespace="batch"}', -300)],
        ),
        (
            query_of(namespaces, "Net cost saved by namespace"),
            [('{namespace="shop"}', 30), ('{namespace="batch"}', -60)],
        ),
    ]
    tests = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": render_query(expr, range_seconds=RANGE_SECONDS),
                        "eval_time": f"{RANGE_SECONDS}s",
                        "exp_samples": [{"labels": labels, "value": value} for labels, value in samples],
                    }
                    for expr, samples in expected
                ],
            }
        ],
    }
    path = tmp_path / "dashboard-semantics.test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    done = run_promtool(promtool, "test", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, f"a dashboard query computes something else:\n{done.stdout}{done.stderr}"


# --- alert rules -------------------------------------------------------------------------------


def test_the_alert_rules_are_complete_and_explained() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS
    for rule in rules:
        name = rule["alert"]
        assert rule.get("for"), f"{name}: a for: duration, so that a blip does not page"
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations.get("summary"), name
        description = annotations.get("description", "")
        for part in ("Meaning:", "Impact:", "Check:", "Fix"):
            assert part in description, f"{name}: the description is a runbook ({part} missing)"


def test_the_alert_rules_pass_promtool_check(promtool: Path) -> None:
    done = run_promtool(promtool, "check", "rules", str(ALERTS), cwd=DASHBOARD_DIR)
    assert done.returncode == 0, f"promtool check rules {ALERTS.name}:\n{done.stdout}{done.stderr}"


def test_the_alert_rules_pass_their_unit_tests(promtool: Path) -> None:
    document = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))
    assert document["rule_files"] == [ALERTS.name]
    fired = {
        case["alertname"]
        for test in document["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert fired >= UNIT_TESTED_ALERTS, f"alerts.test.yaml must show {UNIT_TESTED_ALERTS - fired} firing"
    done = run_promtool(promtool, "test", "rules", ALERTS_TEST.name, cwd=DASHBOARD_DIR)
    assert done.returncode == 0, f"promtool test rules {ALERTS_TEST.name}:\n{done.stdout}{done.stderr}"


def test_the_install_script_is_there() -> None:
    script = REPO / "hack" / "install-prometheus.sh"
    assert script.is_file() and os.access(script, os.X_OK), f"{script} must exist and be executable"


# --- the manifests ship the same files --------------------------------------------------------


def generators() -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load((REPO / "manifests" / "base" / "kustomization.yaml").read_text())
    return {generator["name"]: generator for generator in spec.get("configMapGenerator", [])}


def test_the_base_ships_the_dashboards_and_rules_as_config_maps() -> None:
    found = generators()
    dashboards = found["eco-pulse-dashboards"]
    assert sorted(Path(source).name for source in dashboards["files"]) == sorted(DASHBOARDS)
    assert dashboards["options"]["labels"] == {"grafana_dashboard": "1"}  # the Grafana sidecar's default
    assert dashboards["options"]["disableNameSuffixHash"] is True
    rules = found["eco-pulse-alert-rules"]
    assert [Path(source).name for source in rules["files"]] == [ALERTS.name]
    assert rules["options"]["disableNameSuffixHash"] is True
    # kustomize reads only files under the kustomization: manifests/base/dashboards holds copies.
    for source in [*dashboards["files"], *rules["files"]]:
        copy = REPO / "manifests" / "base" / source
        assert copy.parent == MANIFEST_DASHBOARDS, source
        assert copy.read_bytes() == (DASHBOARD_DIR / copy.name).read_bytes(), (
            f"manifests/base/{source} differs from dashboards/{copy.name}: "
            f"cp dashboards/{copy.name} manifests/base/{source}"
        )


def test_the_config_maps_render(kubectl: Path) -> None:
    done = subprocess.run(
        [str(kubectl), "kustomize", str(REPO / "manifests" / "base")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    objects = {
        obj["metadata"]["name"]: obj
        for obj in yaml.safe_load_all(done.stdout)
        if obj is not None and obj["kind"] == "ConfigMap"
    }
    dashboards = objects["eco-pulse-dashboards"]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboards["metadata"]["namespace"] == "eco-pulse"
    assert dashboards["data"] == {
        name: (DASHBOARD_DIR / name).read_text(encoding="utf-8") for name in DASHBOARDS
    }
    rules = objects["eco-pulse-alert-rules"]
    assert rules["data"] == {ALERTS.name: ALERTS.read_text(encoding="utf-8")}
