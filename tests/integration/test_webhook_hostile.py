"""Random and hostile AdmissionReviews at the real /mutate over TLS: never a 5xx, never a bad patch."""

from __future__ import annotations

import base64
import copy
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from tests.conftest import Webhook, launch_webhook

REGION = "topology.kubernetes.io/region"

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_value = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
# Shapes close to real pods, so the interesting paths (affinity, annotations, requests) get hit.
selector_term = st.fixed_dictionaries(
    {},
    optional={
        "matchExpressions": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "key": st.sampled_from(["disktype", REGION, "zone"]),
                        "operator": st.just("In"),
                        "values": st.lists(st.text(max_size=5), max_size=2),
                    }
                ),
                max_size=2,
            ),
            json_value,
        ),
        "matchFields": json_value,
    },
)
node_affinity = st.fixed_dictionaries(
    {},
    optional={
        "requiredDuringSchedulingIgnoredDuringExecution": st.one_of(
            st.fixed_dictionaries({"nodeSelectorTerms": st.lists(selector_term, max_size=3)}), json_value
        ),
        "preferredDuringSchedulingIgnoredDuringExecution": st.one_of(
            st.lists(
                st.fixed_dictionaries({"weight": st.integers(1, 100), "preference": selector_term}),
                max_size=2,
            ),
            json_value,
        ),
    },
)
affinity = st.fixed_dictionaries(
    {}, optional={"nodeAffinity": st.one_of(node_affinity, json_value), "podAntiAffinity": json_value}
)
quantity = st.one_of(st.sampled_from(["100m", "2", "1Gi", "512Mi", "-1", "abc", "1e3", ""]), json_value)
container = st.fixed_dictionaries(
    {"name": st.text(max_size=5)},
    optional={
        "resources": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "requests": st.dictionaries(st.sampled_from(["cpu", "memory"]), quantity, max_size=2),
                    "limits": json_value,
                },
            ),
            json_value,
        )
    },
)
metadata = st.fixed_dictionaries(
    {},
    optional={
        "annotations": st.one_of(
            st.dictionaries(
                st.sampled_from(
                    [
                        "ecopulse.io/max-latency-ms",
                        "ecopulse.io/data-region",
                        "ecopulse.io/opt-out",
                        "ecopulse.io/allowed-regions",
                        "ecopulse.io/egress-gb-per-hour",
                        "ecopulse.io/expected-runtime-hours",
                        "a/b~c",
                        "x",
                    ]
                ),
                st.one_of(st.text(max_size=12), st.sampled_from(["50", "eu-west-1", "true", "1e308", "nan"])),
                max_size=4,
            ),
            json_value,
        ),
        "generateName": st.text(max_size=8),
        "ownerReferences": json_value,
    },
)
spec = st.fixed_dictionaries(
    {},
    optional={
        "containers": st.one_of(st.lists(container, max_size=3), json_value),
        "initContainers": st.lists(container, max_size=2),
        "affinity": st.one_of(affinity, json_value),
        "nodeSelector": st.one_of(
            st.dictionaries(st.sampled_from([REGION, "disktype"]), st.text(max_size=5)), json_value
        ),
        "nodeName": st.one_of(st.just(""), st.text(max_size=5)),
        "overhead": json_value,
    },
)
pod = st.one_of(
    st.fixed_dictionaries({"metadata": metadata, "spec": spec}),
    st.dictionaries(st.text(max_size=5), json_value),
)
request = st.fixed_dictionaries(
    {
        "uid": st.text(min_size=1, max_size=36),
        "operation": st.sampled_from(["CREATE", "CREATE", "CREATE", "UPDATE", "DELETE", "CONNECT", "???"]),
        "kind": st.one_of(
            st.just({"group": "", "version": "v1", "kind": "Pod"}),
            st.fixed_dictionaries({"group": json_value, "version": json_value, "kind": json_value}),
        ),
    },
    optional={
        "object": st.one_of(pod, st.none()),
        "namespace": st.one_of(st.sampled_from(["shop", "kube-system", ""]), json_value),
        "subResource": st.one_of(st.just(""), json_value),
        "dryRun": json_value,
        "name": json_value,
    },
)
valid_review = st.fixed_dictionaries(
    {"apiVersion": st.just("admission.k8s.io/v1"), "kind": st.just("AdmissionReview"), "request": request}
)
any_body = st.one_of(valid_review, json_value, st.dictionaries(st.text(max_size=10), json_value))


@pytest.fixture(scope="module")
def shared_webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    # One server for all examples: hypothesis runs hundreds of them.
    webhook = launch_webhook(tmp_path_factory.mktemp("hostile"))
    webhook.wait_ready()
    yield webhook
    webhook.running.stop()


@pytest.fixture(scope="module")
def client(shared_webhook: Webhook) -> Iterator[httpx.Client]:
    with shared_webhook.client() as c:
        yield c


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=valid_review)
def test_valid_envelopes_always_answer_200_with_the_same_uid_and_an_applicable_patch(
    client: httpx.Client, body: dict[str, Any]
) -> None:
    answer = client.post("/mutate", content=json.dumps(body))
    assert answer.status_code == 200, answer.text
    response = answer.json()["response"]
    assert response["uid"] == body["request"]["uid"]
    assert response["allowed"] is True
    assert ("patch" in response) == ("patchType" in response)
    if "patch" in response:
        ops = json.loads(base64.b64decode(response["patch"]))
        assert all(op["op"] == "add" for op in ops)
        jsonpatch.apply_patch(copy.deepcopy(body["request"]["object"]), ops)  # raises if it cannot apply


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=any_body)
def test_any_json_body_gets_200_or_400_never_5xx(client: httpx.Client, body: object) -> None:
    answer = client.post("/mutate", content=json.dumps(body))
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 400:
        assert answer.json()["message"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=512))
def test_any_bytes_get_200_or_400_never_5xx(client: httpx.Client, raw: bytes) -> None:
    answer = client.post("/mutate", content=raw)
    assert answer.status_code in (200, 400)


def _pod_review(uid: str, obj: bytes) -> bytes:
    """A review whose object is given as raw bytes, so a test can put in what JSON text cannot."""
    return (
        b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"'
        + uid.encode()
        + b'","operation":"CREATE","namespace":"shop","kind":{"group":"","version":"v1","kind":"Pod"},'
        + b'"object":'
        + obj
        + b"}}"
    )


def _fail_open_count(reason: str) -> float:
    return REGISTRY.get_sample_value("ecopulse_admission_fail_open_total", {"reason": reason}) or 0.0


def _decision_lines(caplog: pytest.LogCaptureFixture, uid: str) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.getMessage() == "admission decision" and getattr(r, "uid", None) == uid
    ]


GOOD_POD = (
    b'{"metadata":{"name":"web"},"spec":{"containers":[{"name":"c","resources":{"requests":{"cpu":"1"}}}]}}'
)


def test_invalid_utf8_in_the_object_is_answered_and_the_connection_keeps_working(
    shared_webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    before = _fail_open_count("unreadable-object")
    bad_pod = b'{"metadata":{"name":"w\xff\xfeb"},"spec":{"containers":[{"name":"\xc3"}]}}'
    # One client, one keep-alive connection: the second review must come back on it.
    with shared_webhook.client() as client:
        first = client.post("/mutate", content=_pod_review("bad-utf8", bad_pod))
        second = client.post("/mutate", content=_pod_review("after-bad-utf8", GOOD_POD))
    assert first.status_code == 200, first.text
    response = first.json()["response"]
    assert response["uid"] == "bad-utf8"
    assert response["allowed"] is True
    assert "patch" not in response
    assert response["warnings"]
    assert second.status_code == 200, second.text
    assert second.json()["response"]["uid"] == "after-bad-utf8"
    assert "patch" in second.json()["response"]
    assert _fail_open_count("unreadable-object") == before + 1
    assert len(_decision_lines(caplog, "bad-utf8")) == 1
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(("resource", "value"), [("cpu", "1e308"), ("memory", "1e308"), ("cpu", "2e6")])
def test_an_absurd_request_fails_open_with_its_own_reason_and_no_traceback(
    client: httpx.Client, caplog: pytest.LogCaptureFixture, resource: str, value: str
) -> None:
    caplog.set_level(logging.INFO)
    before = _fail_open_count("demand-out-of-range")
    internal_before = _fail_open_count("internal-error")
    pod = {
        "metadata": {"name": "huge"},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {resource: value}}}]},
    }
    uid = f"huge-{resource}-{value}"
    answer = client.post("/mutate", content=_pod_review(uid, json.dumps(pod).encode()))
    assert answer.status_code == 200, answer.text
    response = answer.json()["response"]
    assert response["uid"] == uid
    assert response["allowed"] is True
    assert "patch" not in response
    assert response["warnings"]
    # Recorded after the answer: the next request on the connection sees it done.
    assert client.get("/healthz").status_code == 200
    assert _fail_open_count("demand-out-of-range") == before + 1
    assert _fail_open_count("internal-error") == internal_before
    assert len(_decision_lines(caplog, uid)) == 1
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]
