"""The real webhook keeps deciding when a reload names a trace file that is not there."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import MOCK_CONFIG, StartWebhook
from tests.integration.test_webhook import patched, pod, post, review

MOCK_CARBON = "  provider: mock\n  mock: {us-east-1: 450, eu-west-1: 300, eu-north-1: 30}\n"


def test_a_reload_whose_trace_file_is_missing_is_refused_and_placement_goes_on(
    start_webhook: StartWebhook, tmp_path: Path
) -> None:
    webhook = start_webhook()
    webhook.wait_ready()
    assert MOCK_CARBON in MOCK_CONFIG
    missing = tmp_path / "no-such-trace.csv"
    webhook.config_file.write_text(
        MOCK_CONFIG.replace(MOCK_CARBON, f'  provider: trace\n  trace: {{path: "{missing}"}}\n')
    )
    deadline = time.monotonic() + 10
    while webhook.running.config.last_error is None:
        assert time.monotonic() < deadline, "the reload was applied, not refused"
        time.sleep(0.02)
    assert "carbon.trace.path" in webhook.running.config.last_error
    assert str(webhook.running.config.current.carbon.provider) == "mock"
    result = patched(pod(), post(webhook, review(pod())))
    assert result["metadata"]["annotations"]["ecopulse.io/preferred-region"] == "eu-north-1"
