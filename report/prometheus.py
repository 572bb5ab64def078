"""A small typed client for the Prometheus HTTP API (``/api/v1/query`` and ``/api/v1/query_range``).

Responses are decoded once into typed values (msgspec); every failure (connection, timeout, HTTP status,
``"status": "error"``, a body that is not the API's JSON) raises one :class:`PrometheusError` whose
message names the server and the query. The bearer token is sent only as a header and never appears in
a message; credentials in the URL are left out of every message as well.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import msgspec

# Prometheus refuses a range query of more than 11,000 points per series; longer ranges are split.
MAX_POINTS_PER_REQUEST = 10_000
# Error details quoted from an answer are cut at this many characters.
MAX_DETAIL = 500


class PrometheusError(Exception):
    """A query failed; the message names the server and the query, never a credential."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant vector."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    """One element of a range matrix: (unix seconds, value) points in time order."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


# The API's JSON, as far as we read it. `value`/`values` hold [unix seconds, "decimal string"].
class _VectorElement(msgspec.Struct, frozen=True):
    metric: dict[str, str]
    value: tuple[float, str]


class _MatrixElement(msgspec.Struct, frozen=True):
    metric: dict[str, str]
    values: list[tuple[float, str]]


class _Vector(msgspec.Struct, frozen=True, tag_field="resultType", tag="vector"):
    result: list[_VectorElement]


class _Matrix(msgspec.Struct, frozen=True, tag_field="resultType", tag="matrix"):
    result: list[_MatrixElement]


class _Scalar(msgspec.Struct, frozen=True, tag_field="resultType", tag="scalar"):
    result: tuple[float, str]


class _String(msgspec.Struct, frozen=True, tag_field="resultType", tag="string"):
    result: tuple[float, str]


class _Envelope(msgspec.Struct, frozen=True):
    status: str
    data: _Vector | _Matrix | _Scalar | _String | None = None
    errorType: str | None = None  # the API's field name
    error: str | None = None
    warnings: list[str] | None = None


class _ErrorEnvelope(msgspec.Struct, frozen=True):
    status: str
    errorType: str | None = None
    error: str | None = None


_DECODER = msgspec.json.Decoder(_Envelope)
_ERROR_DECODER = msgspec.json.Decoder(_ErrorEnvelope)


def _number(text: str) -> float:
    # Prometheus writes floats as Go does: "1.5", "1e+06", "NaN", "+Inf", "-Inf"; float() reads them all.
    return float(text)


def redact_url(url: str) -> str:
    """``url`` without any user:password part (safe to print and to store in report.json)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "<invalid URL>"
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url


def _unix(at: datetime) -> str:
    return f"{at.timestamp():.3f}"


def _seconds(seconds: float) -> str:
    # the API reads a duration parameter as float seconds first: "3600", "0.5"
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


class PrometheusClient:
    """``instant(query, at)`` and ``range(query, start, end, step)`` against one Prometheus server.

    ``base_url`` is what you would open in a browser (``http://prometheus:9090``, or with a path prefix
    such as ``https://example.org/prometheus``). Warnings Prometheus attaches to answers are collected
    in :attr:`warnings`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float = 30.0,
        bearer_token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._shown_url = redact_url(base_url).rstrip("/")
        self._timeout_seconds = timeout_seconds
        self._secret = bearer_token or None
        headers = {"Accept": "application/json"}
        if bearer_token:
            headers["Authorization"] = f"Bearer {bearer_token}"
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=timeout_seconds,
            transport=transport,
        )
        self.warnings: list[str] = []

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def instant(self, query: str, at: datetime) -> list[Sample]:
        """The instant vector ``query`` evaluates to at ``at``."""
        data = self._get("api/v1/query", query, {"time": _unix(at)})
        if not isinstance(data, _Vector):
            raise self._error(query, f"expected a vector result, got {_kind(data)}")
        return [Sample(labels=e.metric, value=_number(e.value[1])) for e in data.result]

    def range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[Series]:
        """``query`` evaluated at start, start + step, ... up to end (split into several requests when
        that is more points than Prometheus answers at once); series merged by label set."""
        if step.total_seconds() <= 0:
            raise ValueError("step must be positive")
        merged: dict[frozenset[tuple[str, str]], tuple[dict[str, str], list[tuple[float, float]]]] = {}
        chunk = step * (MAX_POINTS_PER_REQUEST - 1)
        begin = start
        while begin <= end:
            until = min(begin + chunk, end)
            data = self._get(
                "api/v1/query_range",
                query,
                {"start": _unix(begin), "end": _unix(until), "step": _seconds(step.total_seconds())},
            )
            if not isinstance(data, _Matrix):
                raise self._error(query, f"expected a matrix result, got {_kind(data)}")
            for element in data.result:
                key = frozenset(element.metric.items())
                _, points = merged.setdefault(key, (element.metric, []))
                points.extend((ts, _number(value)) for ts, value in element.values)
            # the next chunk starts one step after the last point this one can have
            steps_in_chunk = math.floor((until - begin) / step)
            begin = begin + step * (steps_in_chunk + 1)
        return [Series(labels=labels, points=tuple(sorted(points))) for labels, points in merged.values()]

    def _get(
        self, path: str, query: str, params: Mapping[str, str]
    ) -> _Vector | _Matrix | _Scalar | _String | None:
        # `timeout` also asks Prometheus to give up evaluating when we stop waiting.
        all_params = {"query": query, **params, "timeout": _seconds(self._timeout_seconds)}
        try:
            response = self._client.get(path, params=all_params)
        except httpx.TimeoutException:
            raise self._error(query, f"no answer within {self._timeout_seconds:g} s") from None
        except httpx.ConnectError as error:
            raise self._error(query, f"cannot reach it: {_describe(error)}") from None
        except httpx.HTTPError as error:
            raise self._error(query, f"the request failed: {_describe(error)}") from None
        body = response.content
        if response.status_code != 200:
            # Prometheus explains most failures (400 bad_data, 422 execution, 503 timeout) in its JSON.
            try:
                failure = _ERROR_DECODER.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                failure = None
            if failure is not None and failure.status == "error" and failure.error:
                detail = f"{failure.errorType or 'error'}: {failure.error}"
                raise self._error(query, f"HTTP {response.status_code}, {detail}")
            raise self._error(
                query, f"HTTP {response.status_code} {response.reason_phrase}".rstrip() + _body_hint(response)
            )
        try:
            envelope = _DECODER.decode(body)
        except msgspec.ValidationError as error:
            raise self._error(query, f"unexpected answer (not the Prometheus API?): {error}") from None
        except msgspec.DecodeError:
            raise self._error(
                query, "the answer is not JSON (not the Prometheus API?)" + _body_hint(response)
            ) from None
        if envelope.status != "success":
            detail = f"{envelope.errorType or 'error'}: {envelope.error or '(no message)'}"
            raise self._error(query, f"status {envelope.status!r}, {detail}")
        if envelope.data is None:
            raise self._error(query, "the answer has no data")
        for warning in envelope.warnings or ():
            self.warnings.append(f"Prometheus warning: {warning[:MAX_DETAIL]} (query: {query})")
        return envelope.data

    def _error(self, query: str, what: str) -> PrometheusError:
        if len(what) > MAX_DETAIL:
            what = what[:MAX_DETAIL] + "..."
        if self._secret:  # a proxy may echo the credential it refused
            what = what.replace(self._secret, "<redacted>")
        return PrometheusError(f"Prometheus at {self._shown_url}: {what} (query: {query})")


def _kind(data: object) -> str:
    for kind, name in ((_Vector, "vector"), (_Matrix, "matrix"), (_Scalar, "scalar"), (_String, "string")):
        if isinstance(data, kind):
            return name
    return "nothing"


def _describe(error: httpx.HTTPError) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]


def _body_hint(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    return f" ({kind}, {len(response.content)} bytes)"
