"""decide() names ignored ecopulse.io/ annotations whatever else happens to the pod (issue 19)."""

from __future__ import annotations

import pytest

from core.model import SignalSnapshot
from tests.unit.test_outcome_memo import CONFIG, GRID, T0, pod, request
from webhook.admission.mutate import Outcome, decide

NO_SIGNALS = SignalSnapshot(taken_at=T0, provider="test", carbon={})
MISSPELT = {"ecopulse.io/allowed-region": "eu-north-1"}


@pytest.mark.parametrize(
    ("signals", "outcome"),
    [
        pytest.param(GRID, Outcome.MUTATED, id="placed"),
        # No fresh signal: admitted unchanged, but the misspelt residency key is still named.
        pytest.param(NO_SIGNALS, Outcome.FAILED_OPEN, id="no signals"),
    ],
)
def test_a_misspelt_key_is_named_whatever_the_outcome(signals: SignalSnapshot, outcome: Outcome) -> None:
    decided = decide(request(pod(**MISSPELT)), signals=signals, config=CONFIG)
    assert decided.outcome is outcome
    assert any("did you mean ecopulse.io/allowed-regions?" in p for p in decided.annotation_problems)
    assert any("did you mean ecopulse.io/allowed-regions?" in w for w in decided.warnings)
    if outcome is Outcome.FAILED_OPEN:
        assert any("admitted unchanged" in w for w in decided.warnings)


def test_a_pod_with_good_annotations_has_no_problems() -> None:
    decided = decide(request(pod()), signals=NO_SIGNALS, config=CONFIG)
    assert decided.annotation_problems == ()
