"""admission.k8s.io/v1 AdmissionReview: the wire types, parsed once into a typed request.

A body that is not an AdmissionReview v1 with a request and a uid is malformed (HTTP 400,
with a message saying what is wrong). Everything after that point answers 200 with the
same uid, whatever the pod inside looks like.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NotRequired, TypedDict

import msgspec

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
# The review of a CREATE of the largest pod etcd stores (1.5 MiB) is 1.5 MiB of JSON
# (bench/request_sizes.py); the API server refuses request bodies over 3 MiB. 6 MiB is 4x the
# first and 2x the second (room for JSON heavier than the stored protobuf). We see CREATE only,
# so never an oldObject.
MAX_BODY_BYTES = 6 * 1024 * 1024


class MalformedReview(ValueError):
    """The body is not a usable AdmissionReview; the message says what is wrong."""


class UnreadableObject(ValueError):
    """request.object is not valid JSON text (say, invalid UTF-8): the envelope was fine."""


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


@dataclass(frozen=True, kw_only=True)
class AdmissionRequest:
    uid: str
    operation: str
    kind: str  # "group/version/Kind", group empty for core
    sub_resource: str
    namespace: str
    name: str
    dry_run: bool
    # The new object exactly as sent (b"null" when there is none): replicas of one template send
    # the same bytes, which is what the decision memo keys on.
    object_json: bytes = b"null"

    @property
    def is_pod(self) -> bool:
        return self.kind == "/v1/Pod" and not self.sub_resource

    @cached_property
    def pod_name(self) -> str:
        """The name for the decision line: the request's, else the object's, else its generateName + "*"."""
        if self.name:
            return self.name
        try:
            metadata = _OBJECT_NAMES.decode(self.object_json).metadata
        except msgspec.DecodeError:  # "metadata" is not an object, or the bytes are not UTF-8
            return ""
        if metadata is None:
            return ""
        if isinstance(metadata.name, str) and metadata.name:
            return metadata.name
        return metadata.generateName + "*" if isinstance(metadata.generateName, str) else ""

    @cached_property
    def object(self) -> Mapping[str, object] | None:
        """The new object, as JSON; decoded on first use (a memoised decision never needs it).

        Raises UnreadableObject when the kept bytes do not decode: the envelope parse skips
        over the object without checking its strings are UTF-8.
        """
        if self.object_json == b"null":
            return None
        try:
            decoded: dict[str, object] = msgspec.json.decode(self.object_json)
        except (msgspec.DecodeError, RecursionError) as error:
            raise UnreadableObject(str(error)[:80]) from None
        return decoded


class _NamesWire(msgspec.Struct):
    name: Any = None
    generateName: Any = None


class _ObjectNamesWire(msgspec.Struct):
    metadata: _NamesWire | None = None


# The decision line names the pod without decoding all of it (a memoised decision never does).
_OBJECT_NAMES = msgspec.json.Decoder(_ObjectNamesWire)


class _RequestWire(msgspec.Struct):
    # Any: the types are checked below, so a wrong one says which field is wrong.
    uid: Any = None
    operation: Any = None
    kind: Any = None
    subResource: Any = None
    namespace: Any = None
    name: Any = None
    dryRun: Any = None
    # Kept as its bytes; oldObject and userInfo are not declared, so they are skipped unread.
    new_object: msgspec.Raw = msgspec.field(name="object", default=msgspec.Raw(b"null"))


class _ReviewWire(msgspec.Struct):
    apiVersion: Any = None
    kind: Any = None
    request: _RequestWire | None = None


_REVIEW = msgspec.json.Decoder(_ReviewWire)


def parse_review(body: bytes, *, max_body_bytes: int = MAX_BODY_BYTES) -> AdmissionRequest:
    if len(body) > max_body_bytes:
        raise MalformedReview(f"body is larger than {max_body_bytes} bytes")
    try:
        # msgspec, typed: the body is parsed on every pod creation, and only the fields we read
        # become Python objects; too deep a nesting is a DecodeError too.
        document = _REVIEW.decode(body)
    except msgspec.ValidationError as error:
        if "$.request" in str(error):
            raise MalformedReview("request is missing or not an object") from None
        raise MalformedReview("body is not a JSON object") from None
    except msgspec.DecodeError as error:
        raise MalformedReview(f"body is not JSON: {str(error)[:80]}") from None
    except RecursionError:
        raise MalformedReview("body is nested too deeply") from None
    if document.apiVersion != API_VERSION or document.kind != KIND:
        raise MalformedReview(
            f"expected apiVersion {API_VERSION} and kind {KIND}, got "
            f"{_short(document.apiVersion)} and {_short(document.kind)}"
        )
    request = document.request
    if request is None:
        raise MalformedReview("request is missing or not an object")
    uid = request.uid
    if not isinstance(uid, str) or not uid:
        raise MalformedReview("request.uid is missing or not a string")
    operation = request.operation
    if not isinstance(operation, str):
        raise MalformedReview("request.operation is missing or not a string")
    kind = request.kind
    if not isinstance(kind, dict):
        raise MalformedReview("request.kind is missing or not an object")
    object_json = bytes(request.new_object)
    # The document parsed, so the value is valid JSON: its first byte says what it is.
    if object_json != b"null" and not object_json.startswith(b"{"):
        raise MalformedReview("request.object is not an object")
    return AdmissionRequest(
        uid=uid,
        operation=operation,
        kind=f"{_text(kind.get('group'))}/{_text(kind.get('version'))}/{_text(kind.get('kind'))}",
        sub_resource=_text(request.subResource),
        namespace=_text(request.namespace),
        name=_text(request.name),
        dry_run=request.dryRun is True,
        object_json=object_json,
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def encode_patch(patch: list[PatchOperation]) -> str:
    """A JSONPatch as AdmissionResponse.patch carries it: base64 of its JSON."""
    return base64.b64encode(msgspec.json.encode(patch)).decode()


def review_response(
    uid: str,
    *,
    patch_base64: str = "",
    warnings: list[str] | None = None,
    audit: dict[str, str] | None = None,
) -> AdmissionReviewResponse:
    """Always allowed: this webhook steers placement and never denies a pod."""
    response: AdmissionResponse = {"uid": uid, "allowed": True}
    if patch_base64:
        response["patchType"] = "JSONPatch"
        response["patch"] = patch_base64
    if warnings:
        # The API server drops warnings past 4096 characters in total; keep each short.
        response["warnings"] = [w[:120] for w in warnings[:8]]
    if audit:
        response["auditAnnotations"] = audit
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}
