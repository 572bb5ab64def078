"""webhook.admission.mutate.OutcomeMemo: identical requests share one outcome, and nothing else does."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import EcoPulseConfiguration, parse_config_text
from core.model import CarbonSignal, NamespaceInfo, SignalSnapshot
from webhook.admission.mutate import OutcomeMemo, ReviewOutcome, decide
from webhook.admission.review import AdmissionRequest

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NAMES = ("us-east-1", "eu-west-1", "eu-north-1")


def config() -> EcoPulseConfiguration:
    doc = {
        "apiVersion": "ecopulse.io/v1alpha1",
        "kind": "EcoPulseConfiguration",
        "regions": [{"name": name} for name in NAMES],
        "baselineRegion": "us-east-1",
        # Equal prices: carbon alone decides, so the test reads plainly.
        "prices": {
            name: {"vcpuHour": 0.04, "gibHour": 0.005, "spotVcpuHour": 0.015, "spotGibHour": 0.002}
            for name in NAMES
        },
    }
    return parse_config_text(yaml.safe_dump(doc))


def snapshot(values: dict[str, float]) -> SignalSnapshot:
    return SignalSnapshot(
        taken_at=T0,
        provider="test",
        carbon={
            name: CarbonSignal(
                region=name, zone="Z", carbon_g_per_kwh=value, observed_at=T0, fetched_at=T0, source="test"
            )
            for name, value in values.items()
        },
    )


GRID = snapshot({"us-east-1": 450, "eu-west-1": 300, "eu-north-1": 30})
CONFIG = config()


def pod(cpu: str = "500m", **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {"generateName": "web-", "annotations": annotations},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}]},
    }


def request(
    obj: object, *, namespace: str = "shop", operation: str = "CREATE", uid: str = "u"
) -> AdmissionRequest:
    return AdmissionRequest(
        uid=uid,
        operation=operation,
        kind="/v1/Pod",
        sub_resource="",
        namespace=namespace,
        name="",
        dry_run=False,
        object_json=json.dumps(obj).encode(),
    )


class Counting:
    """decide() for one request, counting the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(
        self, review: AdmissionRequest, signals: SignalSnapshot, info: NamespaceInfo | None
    ) -> ReviewOutcome:
        self.calls += 1
        return decide(review, signals=signals, config=CONFIG, namespace_info=info)


def through(
    memo: OutcomeMemo,
    counting: Counting,
    review: AdmissionRequest,
    *,
    signals: SignalSnapshot = GRID,
    info: NamespaceInfo | None = None,
) -> ReviewOutcome:
    return memo.outcome(
        review,
        signals=signals,
        config=CONFIG,
        namespace_info=info,
        decide=lambda: counting(review, signals, info),
    )


def test_replicas_of_one_template_are_decided_once() -> None:
    memo, counting = OutcomeMemo(), Counting()
    first = through(memo, counting, request(pod(), uid="a"))
    second = through(memo, counting, request(pod(), uid="b"))
    assert counting.calls == 1
    assert second is first
    assert first.region == "eu-north-1" and first.patch_base64


def test_a_different_pod_namespace_or_operation_is_decided_again() -> None:
    memo, counting = OutcomeMemo(), Counting()
    through(memo, counting, request(pod()))
    through(memo, counting, request(pod(cpu="2")))
    through(memo, counting, request(pod(), namespace="other"))
    through(memo, counting, request(pod(), operation="UPDATE"))
    assert counting.calls == 4


def test_new_signals_or_namespace_labels_forget_what_was_decided() -> None:
    memo, counting = OutcomeMemo(), Counting()
    through(memo, counting, request(pod()))
    flipped = snapshot({"us-east-1": 450, "eu-west-1": 20, "eu-north-1": 300})
    assert through(memo, counting, request(pod()), signals=flipped).region == "eu-west-1"
    opted_out = NamespaceInfo(opted_out=True)
    assert through(memo, counting, request(pod()), signals=flipped, info=opted_out).patch_base64 == ""
    assert counting.calls == 3


def test_big_objects_are_never_remembered() -> None:
    memo, counting = OutcomeMemo(), Counting()
    big = pod(note="x" * OutcomeMemo.MAX_OBJECT_BYTES)
    through(memo, counting, request(big))
    through(memo, counting, request(big))
    assert counting.calls == 2


def test_the_memo_is_bounded() -> None:
    memo, counting = OutcomeMemo(max_entries=4), Counting()
    for index in range(10):
        through(memo, counting, request(pod(cpu=f"{index + 1}00m")))
    assert len(memo._entries) <= 4


hint_values = st.sampled_from(["", "eu-west-1", "us-east-1,eu-north-1", "nowhere", "5"])


@settings(max_examples=150)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["100m", "2", "bad"]),
            st.sampled_from(
                ["ecopulse.io/allowed-regions", "ecopulse.io/opt-out", "ecopulse.io/max-latency-ms"]
            ),
            hint_values,
            st.sampled_from(["shop", "kube-system", "other"]),
            st.sampled_from(["CREATE", "UPDATE"]),
            st.sampled_from(
                [
                    None,
                    NamespaceInfo(opted_out=True),
                    NamespaceInfo(hint_annotations={"ecopulse.io/allowed-regions": "eu-west-1"}),
                ]
            ),
        ),
        max_size=12,
    )
)
def test_through_the_memo_every_outcome_is_what_deciding_afresh_gives(
    requests: list[tuple[str, str, str, str, str, NamespaceInfo | None]],
) -> None:
    memo, counting = OutcomeMemo(), Counting()
    for cpu, key, value, namespace, operation, info in requests:
        review = request(pod(cpu, **{key: value}), namespace=namespace, operation=operation)
        remembered = through(memo, counting, review, info=info)
        fresh = decide(review, signals=GRID, config=CONFIG, namespace_info=info)
        assert remembered == fresh
