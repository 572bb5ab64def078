"""What the controllers' loops share in core.metrics: counting a run, and the accounting counters."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.accounting import Accrual, Ledger
from core.metrics import BY_PLACE, LOOP_OUTCOMES, AccrualMetrics, LoopMetrics

log = logging.getLogger("tests.loop")


@dataclass(slots=True)
class _Report:
    outcome: str


def _loop(registry: CollectorRegistry) -> LoopMetrics:
    return LoopMetrics(
        runs=Counter("t_runs_total", "Runs.", ["outcome"], registry=registry),
        duration=Histogram("t_duration_seconds", "Time.", registry=registry),
        last_finished=Gauge("t_last_timestamp_seconds", "Last.", registry=registry),
    )


def test_every_outcome_is_there_from_the_start() -> None:
    registry = CollectorRegistry()
    _loop(registry)
    for outcome in LOOP_OUTCOMES:
        assert registry.get_sample_value("t_runs_total", {"outcome": outcome}) == 0


def test_a_run_is_counted_by_its_outcome_timed_and_stamped() -> None:
    registry = CollectorRegistry()
    report = _loop(registry).run(
        lambda: _Report("not-synced"), failed=lambda: _Report("error"), log=log, message="failed"
    )
    assert report == _Report("not-synced")
    assert registry.get_sample_value("t_runs_total", {"outcome": "not-synced"}) == 1
    assert registry.get_sample_value("t_runs_total", {"outcome": "error"}) == 0
    assert registry.get_sample_value("t_duration_seconds_count") == 1
    assert (registry.get_sample_value("t_last_timestamp_seconds") or 0) > 0


def test_a_run_that_raises_is_logged_and_counted_as_failed(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()

    def broken() -> _Report:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="tests.loop"):
        report = _loop(registry).run(broken, failed=lambda: _Report("error"), log=log, message="it failed")
    assert report == _Report("error")
    assert registry.get_sample_value("t_runs_total", {"outcome": "error"}) == 1
    assert registry.get_sample_value("t_duration_seconds_count") == 1
    assert [r.getMessage() for r in caplog.records] == ["it failed"]
    assert caplog.records[0].exc_info is not None


def _accrual_metrics(registry: CollectorRegistry, labels: tuple[str, ...] = BY_PLACE) -> AccrualMetrics:
    def counter(name: str) -> Counter:
        return Counter(name, name, labels, registry=registry)

    return AccrualMetrics(
        running=Gauge("t_running", "t_running", labels, registry=registry),
        emissions=counter("t_emissions_total"),
        cost=counter("t_cost_total"),
        avoided_grams=(counter("t_avoided_total"), counter("t_added_total")),
        saved_usd=(counter("t_saved_total"), counter("t_cost_added_total")),
    )


def test_accounting_metrics_must_be_labelled_by_place() -> None:
    with pytest.raises(ValueError, match="t_running"):
        _accrual_metrics(CollectorRegistry(), labels=("region", "namespace"))


def test_a_ledger_goes_into_its_place_with_both_sides_of_each_signed_figure() -> None:
    registry = CollectorRegistry()
    accrued = _accrual_metrics(registry)
    ledger = Ledger(elapsed_seconds=60.0, baseline_region="us-east-1")
    # Cleaner than the baseline but dearer: avoided > 0, saved < 0.
    ledger.accruals[("shop", "eu-north-1")] = Accrual(
        pods=3, emissions_grams=1.0, baseline_emissions_grams=5.0, cost_usd=0.5, baseline_cost_usd=0.2
    )
    accrued.record(ledger, namespace_label=lambda namespace: namespace.upper())
    place = {"namespace": "SHOP", "region": "eu-north-1"}
    assert registry.get_sample_value("t_running", place) == 3
    assert registry.get_sample_value("t_emissions_total", place) == 1.0
    assert registry.get_sample_value("t_cost_total", place) == 0.5
    assert registry.get_sample_value("t_avoided_total", place) == 4.0
    assert registry.get_sample_value("t_added_total", place) == 0
    assert registry.get_sample_value("t_saved_total", place) == 0
    assert registry.get_sample_value("t_cost_added_total", place) == pytest.approx(0.3)
    accrued.record(Ledger(elapsed_seconds=60.0, baseline_region="us-east-1"))
    assert registry.get_sample_value("t_running", place) is None  # nothing runs there any more
    assert registry.get_sample_value("t_emissions_total", place) == 1.0
    accrued.record(ledger)
    accrued.forget()
    assert registry.get_sample_value("t_running", {"namespace": "shop", "region": "eu-north-1"}) is None
