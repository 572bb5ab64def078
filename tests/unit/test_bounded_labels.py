"""Label values from callers stay a bounded set (issue 20, defect 5)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from core.metrics import OTHER_LABEL_VALUE, BoundedLabelValues, serve_metrics


def test_values_past_the_cap_become_other_and_seen_ones_stay() -> None:
    labels = BoundedLabelValues(cap=2)
    assert [labels(v) for v in ("a", "b", "c", "a", "d", "b")] == [
        "a",
        "b",
        OTHER_LABEL_VALUE,
        "a",
        "other",
        "b",
    ]


def test_an_unknown_value_never_takes_a_slot() -> None:
    labels = BoundedLabelValues(cap=1)
    assert labels("made-up", known=False) == OTHER_LABEL_VALUE
    assert labels("shop") == "shop"


@pytest.mark.parametrize("count", [0, 1, 5_000, 20_000])
def test_twenty_thousand_made_up_values_make_at_most_cap_plus_one(count: int) -> None:
    labels = BoundedLabelValues(cap=500)
    assert len({labels(f"ns-{i}") for i in range(count)}) <= 501


def test_the_metrics_server_answers_metrics_only() -> None:
    server = serve_metrics(port=0, address="127.0.0.1", app="webhook")
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
            assert answer.status == 200
            assert b"ecopulse_config_reloads_total" in answer.read()
        for path in ("/", "/favicon.ico", "/metrics/extra", "/debug"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{base}{path}", timeout=5)
            assert refused.value.code == 404
    finally:
        server.shutdown()
        server.server_close()
