"""webhook.admission.review: what is a usable AdmissionReview, and the response we send back."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhook.admission.review import (
    API_VERSION,
    KIND,
    MAX_BODY_BYTES,
    MalformedReview,
    PatchOperation,
    UnreadableObject,
    encode_patch,
    parse_review,
    review_response,
)

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0"}, "spec": {"containers": []}}


def request(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "default",
        "name": "web-0",
        "operation": "CREATE",
        "object": POD,
        "dryRun": False,
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not _DROP}


_DROP: Any = object()


def body(review_request: object = _DROP, **top: Any) -> bytes:
    document: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND}
    document["request"] = request() if review_request is _DROP else review_request
    document.update(top)
    return json.dumps({k: v for k, v in document.items() if v is not _DROP}).encode()


def test_a_pod_create_parses() -> None:
    parsed = parse_review(body())
    assert parsed.uid == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert parsed.operation == "CREATE"
    assert parsed.kind == "/v1/Pod"
    assert parsed.is_pod
    assert parsed.namespace == "default"
    assert parsed.name == "web-0"
    assert parsed.dry_run is False
    assert parsed.object == POD


@pytest.mark.parametrize(
    ("overrides", "field", "expected"),
    [
        ({"dryRun": True}, "dry_run", True),
        ({"dryRun": "true"}, "dry_run", False),
        ({"namespace": _DROP}, "namespace", ""),
        ({"name": 5}, "name", ""),
        ({"object": None}, "object", None),
        ({"subResource": "status"}, "sub_resource", "status"),
        ({"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}}, "kind", "apps/v1/Deployment"),
        ({"kind": {}}, "kind", "//"),
    ],
)
def test_optional_fields(overrides: dict[str, Any], field: str, expected: object) -> None:
    assert getattr(parse_review(body(request(**overrides))), field) == expected


@pytest.mark.parametrize(
    ("overrides", "is_pod"),
    [
        ({}, True),
        ({"subResource": "binding"}, False),
        ({"kind": {"group": "", "version": "v1", "kind": "Node"}}, False),
    ],
)
def test_is_pod_means_a_core_v1_pod_without_subresource(overrides: dict[str, Any], is_pod: bool) -> None:
    assert parse_review(body(request(**overrides))).is_pod is is_pod


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b"", "not JSON", id="empty"),
        pytest.param(b"{nope", "not JSON", id="not JSON"),
        pytest.param(b"\xff\xfe\xfa", "not JSON", id="not UTF-8"),
        pytest.param(b"[1, 2]", "not a JSON object", id="array"),
        pytest.param(b'"review"', "not a JSON object", id="string"),
        pytest.param(b"null", "not a JSON object", id="null"),
        pytest.param(body(apiVersion="admission.k8s.io/v1beta1"), "admission.k8s.io/v1beta1", id="v1beta1"),
        pytest.param(body(apiVersion=_DROP), "expected apiVersion admission.k8s.io/v1", id="no apiVersion"),
        pytest.param(body(kind="Pod"), "'Pod'", id="wrong kind"),
        pytest.param(body(None), "request is missing", id="request null"),
        pytest.param(body(_DROP, request=_DROP), "request is missing", id="no request"),
        pytest.param(body(["x"]), "request is missing or not an object", id="request a list"),
        pytest.param(body(request(uid=_DROP)), "request.uid", id="no uid"),
        pytest.param(body(request(uid="")), "request.uid", id="empty uid"),
        pytest.param(body(request(uid=42)), "request.uid", id="uid a number"),
        pytest.param(body(request(operation=_DROP)), "request.operation", id="no operation"),
        pytest.param(body(request(kind="Pod")), "request.kind", id="kind a string"),
        pytest.param(body(request(object=["pod"])), "request.object is not an object", id="object a list"),
        pytest.param(body(request(object="pod")), "request.object is not an object", id="object a string"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(MalformedReview) as caught:
        parse_review(raw)
    assert message in str(caught.value)


def test_a_body_over_6_mib_is_refused_before_parsing() -> None:
    raw = b" " * (MAX_BODY_BYTES + 1)
    with pytest.raises(MalformedReview, match="larger than"):
        parse_review(raw)
    # 4x the largest review of a pod etcd stores, 2x the API server's 3 MiB request limit
    # (bench/request_sizes.py).
    assert MAX_BODY_BYTES == 6 * 1024 * 1024


def test_a_body_at_the_limit_is_parsed() -> None:
    raw = body()
    padded = raw + b" " * (MAX_BODY_BYTES - len(raw))
    assert parse_review(padded).uid == "705ab4f5-6393-11e8-b7cc-42010a800002"


def test_a_deeply_nested_body_is_malformed() -> None:
    with pytest.raises(MalformedReview):
        parse_review(b"[" * 100_000)


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_malformed(raw: bytes) -> None:
    try:
        parsed = parse_review(raw)
    except MalformedReview:
        return
    assert parsed.uid


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "uid": json_values,
            "operation": json_values,
            "kind": json_values,
            "object": json_values,
            "namespace": json_values,
            "dryRun": json_values,
        },
    )
)
def test_any_request_shape_parses_or_is_malformed(fields: dict[str, Any]) -> None:
    try:
        parsed = parse_review(body(fields))
    except MalformedReview:
        return
    assert isinstance(parsed.uid, str)
    assert parsed.uid
    assert isinstance(parsed.namespace, str)
    assert parsed.object is None or isinstance(parsed.object, dict)


# --- the response ------------------------------------------------------------------------------------


def test_response_without_a_patch_has_no_patch_type() -> None:
    no_patches: tuple[list[PatchOperation] | None, ...] = (None, [])
    for patch in no_patches:
        answer = review_response("u-1", patch_base64=encode_patch(patch) if patch else "")
        assert answer == {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "response": {"uid": "u-1", "allowed": True},
        }


def test_response_with_a_patch_is_base64_json_with_patch_type() -> None:
    patch: list[PatchOperation] = [
        {"op": "add", "path": "/metadata/annotations/a~1b", "value": "é"},
        {"op": "add", "path": "/spec/affinity", "value": {"nodeAffinity": {}}},
    ]
    response = review_response("u-2", patch_base64=encode_patch(patch))["response"]
    assert response["uid"] == "u-2"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"], validate=True)) == patch


def test_response_warnings_are_capped_and_audit_passed_through() -> None:
    response = review_response("u-3", warnings=["w" * 500] * 20, audit={"decision": "mutated:placed"})[
        "response"
    ]
    assert len(response["warnings"]) == 8
    assert all(len(w) == 120 for w in response["warnings"])
    assert response["auditAnnotations"] == {"decision": "mutated:placed"}
    assert "patchType" not in response
    assert "warnings" not in review_response("u-4", warnings=[])["response"]


@pytest.mark.parametrize(
    ("name", "obj", "expected"),
    [
        ("web-0", POD, "web-0"),
        ("", {"metadata": {"name": "named"}}, "named"),
        ("", {"metadata": {"generateName": "web-7d4b9c-"}}, "web-7d4b9c-*"),
        ("", {"metadata": {"name": "", "generateName": "web-"}}, "web-*"),
        ("", {"metadata": ["not", "an", "object"]}, ""),
        ("", {"metadata": {"generateName": 5}}, ""),
        ("", {}, ""),
        ("", None, ""),
    ],
)
def test_the_pod_is_named_for_the_log_without_decoding_it(name: str, obj: object, expected: str) -> None:
    assert parse_review(body(request(name=name, object=obj))).pod_name == expected


def test_the_object_is_kept_as_sent_and_decoded_on_use() -> None:
    sent = json.dumps(POD, separators=(",", ":")).encode()
    raw = body().replace(json.dumps(POD).encode(), sent)
    parsed = parse_review(raw)
    assert parsed.object_json == sent
    assert parsed.object == POD
    assert parse_review(body(request(object=None))).object is None
    assert parse_review(body(request(object=_DROP))).object_json == b"null"


def test_an_object_that_is_not_utf8_parses_as_a_review_and_is_unreadable_on_use() -> None:
    # The envelope skips the object unread, so only its use can find the bad bytes.
    raw = body(request(name="", object={"metadata": {"name": "PLACEHOLDER"}})).replace(
        b"PLACEHOLDER", b"w\xffb"
    )
    parsed = parse_review(raw)
    assert parsed.pod_name == ""  # the decision line still gets written
    with pytest.raises(UnreadableObject):
        _ = parsed.object
