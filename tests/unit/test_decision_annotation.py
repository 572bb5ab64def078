"""Issue 29: the ecopulse.io/decision annotation reads whole in `kubectl describe`.

kubectl describe prints an annotation longer than 140 characters (key included) line by line,
each line cut at 138 characters with "..." (k8s.io/kubectl/pkg/describe, maxAnnotationLen): so
the value is written as short lines, never one long one, and its units say what they are.
"""

from __future__ import annotations

import pytest

from core.model import DECISION_ANNOTATION, PlacementHints, PodDemand
from tests.unit.test_planner import config, signals
from webhook.admission.mutate import place

KUBECTL_MAX_ANNOTATION_LEN = 140


def kubectl_describe_lines(key: str, value: str) -> list[str]:
    """What kubectl describe shows of one annotation (its printAnnotationsMultiline, re-stated)."""
    value = value.removesuffix("\n")
    if len(value) + len(key) + 2 > KUBECTL_MAX_ANNOTATION_LEN or "\n" in value:
        limit = KUBECTL_MAX_ANNOTATION_LEN - 2
        return [f"{key}:"] + [s if len(s) <= limit else s[:limit] + "..." for s in value.split("\n")]
    return [f"{key}: {value}"]


@pytest.mark.parametrize(
    "demand", [PodDemand(cpu_cores=4, memory_gib=8), PodDemand(cpu_cores=0.1, memory_gib=0.1)]
)
def test_the_decision_is_short_lines_with_units_that_kubectl_never_cuts(demand: PodDemand) -> None:
    _, _, explanation = place(demand, PlacementHints(), signals(us=450, eu=30), config())
    assert explanation is not None
    text = explanation.annotation
    shown = kubectl_describe_lines(DECISION_ANNOTATION, text)
    assert not any(line.endswith("...") for line in shown), shown
    assert "\n" in text
    assert "30 gCO2/kWh" in text and "450 gCO2/kWh" in text
    assert "USD" in text and "over 6 h" in text
    first = text.splitlines()[0]
    assert first.startswith("preferred eu-north-1")
