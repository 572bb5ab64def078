"""admission.k8s.io/v1 AdmissionReview: the wire types, parsed once into a typed request.

A body that is not an AdmissionReview v1 with a request and a uid is malformed (HTTP 400,
with a message saying what is wrong). Everything after that point answers 200 with the
same uid, whatever the pod inside looks like.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import msgspec

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
# The API server refuses objects over 3 MiB; a review carries the object twice at most.
MAX_BODY_BYTES = 7 * 1024 * 1024


class MalformedReview(ValueError):
    """The body is not a usable AdmissionReview; the message says what is wrong."""


class GroupVersionKind(TypedDict):
    group: str
    version: str
    kind: str


class PatchOperation(TypedDict):
    op: str
    path: str
    value: NotRequired[object]


class AdmissionResponse(TypedDict):
    uid: str
    allowed: bool
    patchType: NotRequired[str]
    patch: NotRequired[str]
    warnings: NotRequired[list[str]]
    auditAnnotations: NotRequired[dict[str, str]]


class AdmissionReviewResponse(TypedDict):
    apiVersion: str
    kind: str
    response: AdmissionResponse


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmissionRequest:
    uid: str
    operation: str
    kind: str  # "group/version/Kind", group empty for core
    sub_resource: str
    namespace: str
    name: str
    dry_run: bool
    object: Mapping[str, object] | None  # the new object, as JSON

    @property
    def is_pod(self) -> bool:
        return self.kind == "/v1/Pod" and not self.sub_resource


def parse_review(body: bytes) -> AdmissionRequest:
    if len(body) > MAX_BODY_BYTES:
        raise MalformedReview(f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        # msgspec: the body is parsed on every pod creation, several times faster than the
        # standard library; too deep a nesting is a DecodeError too.
        document: Any = msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        raise MalformedReview(f"body is not JSON: {str(error)[:80]}") from None
    except RecursionError:
        raise MalformedReview("body is nested too deeply") from None
    if not isinstance(document, dict):
        raise MalformedReview("body is not a JSON object")
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        raise MalformedReview(
            f"expected apiVersion {API_VERSION} and kind {KIND}, got "
            f"{_short(document.get('apiVersion'))} and {_short(document.get('kind'))}"
        )
    request = document.get("request")
    if not isinstance(request, dict):
        raise MalformedReview("request is missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise MalformedReview("request.uid is missing or not a string")
    operation = request.get("operation")
    if not isinstance(operation, str):
        raise MalformedReview("request.operation is missing or not a string")
    kind = request.get("kind")
    if not isinstance(kind, dict):
        raise MalformedReview("request.kind is missing or not an object")
    obj = request.get("object")
    if obj is not None and not isinstance(obj, dict):
        raise MalformedReview("request.object is not an object")
    return AdmissionRequest(
        uid=uid,
        operation=operation,
        kind=f"{_text(kind.get('group'))}/{_text(kind.get('version'))}/{_text(kind.get('kind'))}",
        sub_resource=_text(request.get("subResource")),
        namespace=_text(request.get("namespace")),
        name=_text(request.get("name")),
        dry_run=request.get("dryRun") is True,
        object=obj,
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def review_response(
    uid: str,
    *,
    patch: list[PatchOperation] | None = None,
    warnings: list[str] | None = None,
    audit: dict[str, str] | None = None,
) -> AdmissionReviewResponse:
    """Always allowed: this webhook steers placement and never denies a pod."""
    response: AdmissionResponse = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(msgspec.json.encode(patch)).decode()
    if warnings:
        # The API server drops warnings past 4096 characters in total; keep each short.
        response["warnings"] = [w[:120] for w in warnings[:8]]
    if audit:
        response["auditAnnotations"] = audit
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}
