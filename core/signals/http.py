"""HTTP plumbing shared by the carbon providers: send (capped, https only), classify a failure, read JSON,
and HttpProvider, the part of a provider that is not about its API (client, base URL, the one way out).

Nothing here ever quotes a credential or a response body in a message. Callers pass `what`
(e.g. "electricitymaps zone DE"), which names a request by its public parts only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from core.signals.base import Clock, ProviderError, ProviderErrorKind, utc_now

# Anything above this is not a grid: the dirtiest coal plants emit about 1,200 g/kWh.
MAX_PLAUSIBLE_G_PER_KWH = 5000.0
DEFAULT_TIMEOUT_SECONDS = 10.0
USER_AGENT = "eco-pulse/0.1"
# The largest answer we ever ask for is a 72-hour forecast: 864 five-minute WattTime points are
# about 50 KiB, 72 hourly Electricity Maps points a few KiB. 4 MiB leaves a ~80x margin for
# verbose metadata while keeping a hostile or broken provider from filling the pod's memory.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# Loopback fakes in tests speak plain HTTP; everywhere else a credential must not travel in clear.
ALLOW_INSECURE_ENV = "ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS"


class Secret:
    """A credential that prints as *** in reprs, f-strings and logs; call reveal() only to send it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self._value)


def default_client(
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS, *, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """The client every provider gets: bounded timeouts, no redirects (a credential must not follow
    one), our user agent. ``transport`` is the tests' seam (a MockTransport)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout_seconds),
        follow_redirects=False,
        headers={"user-agent": USER_AGENT},
        transport=transport,
    )


def allow_insecure_from_env(env: Mapping[str, str]) -> bool:
    """ECOPULSE_ALLOW_INSECURE_PROVIDER_URLS: "true" allows http:// provider URLs; unset/"false" not."""
    value = env.get(ALLOW_INSECURE_ENV, "").strip().lower()
    if value in ("", "false"):
        return False
    if value == "true":
        return True
    raise ProviderError(ProviderErrorKind.CONFIG, f"{ALLOW_INSECURE_ENV} must be true or false")


def require_secure_url(base_url: str, *, provider: str, setting: str, allow_insecure: bool) -> None:
    """CONFIG unless base_url is https:// (or http:// with the explicit opt-in): tokens ride in headers."""
    scheme = base_url.partition("://")[0].lower() if "://" in base_url else ""
    if scheme == "https" or (scheme == "http" and allow_insecure):
        return
    if scheme == "http":
        raise ProviderError(
            ProviderErrorKind.CONFIG,
            f"{provider}: {setting} is plain http://, which would send the credentials in clear; "
            f"use https:// (set {ALLOW_INSECURE_ENV}=true only for local test servers)",
        )
    raise ProviderError(ProviderErrorKind.CONFIG, f"{provider}: {setting} must be an https:// URL")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a provider's API is, once the environment has had its say."""

    base_url: str
    allow_insecure_http: bool


def endpoint_from_env(env: Mapping[str, str], *, base_url_env: str, base_url: str) -> Endpoint:
    """``base_url_env`` (when set) overrides the configured ``base_url``; ALLOW_INSECURE_ENV says whether
    http:// may do. Callers read it after their credentials, so a missing credential is named first."""
    return Endpoint(
        base_url=env.get(base_url_env, "").strip() or base_url,
        allow_insecure_http=allow_insecure_from_env(env),
    )


@dataclass(frozen=True, slots=True)
class Reply:
    """A provider's answer, read whole but never beyond MAX_RESPONSE_BYTES; content is empty unless 2xx."""

    status_code: int
    headers: httpx.Headers
    content: bytes


def send(
    client: httpx.Client,
    url: str,
    *,
    what: str,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | None = None,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> Reply:
    """GET url; transport failures become ProviderError (TIMEOUT, UNAVAILABLE, CONFIG, BAD_RESPONSE).

    The body is streamed and the connection dropped as soon as it passes max_bytes (BAD_RESPONSE),
    or before reading if Content-Length already says so. Error answers' bodies are never read: no
    caller uses them, and they are the easiest place to hide a flood.

    Only timeouts and connect errors keep their cause: their text comes from the OS, never from our
    headers. Other httpx errors (an invalid header quotes its value) are reported by class name only.
    """
    try:
        with client.stream(
            "GET",
            url,
            params=dict(params) if params is not None else None,
            headers=dict(headers) if headers is not None else None,
            auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
        ) as response:
            content = _read_capped(response, what=what, max_bytes=max_bytes)
            return Reply(status_code=response.status_code, headers=response.headers, content=content)
    except httpx.TimeoutException as exc:
        raise ProviderError(ProviderErrorKind.TIMEOUT, f"{what}: timed out ({type(exc).__name__})") from exc
    except httpx.ConnectError as exc:
        detail = str(exc)[:80]
        described = f"ConnectError: {detail}" if detail else "ConnectError"
        message = f"{what}: connection failed ({described})"
        raise ProviderError(ProviderErrorKind.UNAVAILABLE, message) from exc
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL, UnicodeEncodeError):
        raise ProviderError(
            ProviderErrorKind.CONFIG, f"{what}: request cannot be sent (check the base URL and credentials)"
        ) from None
    except httpx.DecodingError:
        raise ProviderError(ProviderErrorKind.BAD_RESPONSE, f"{what}: undecodable body") from None
    except httpx.HTTPError as exc:  # ReadError, RemoteProtocolError, ProxyError, TooManyRedirects, ...
        raise ProviderError(
            ProviderErrorKind.UNAVAILABLE, f"{what}: connection failed ({type(exc).__name__})"
        ) from None


def _read_capped(response: httpx.Response, *, what: str, max_bytes: int) -> bytes:
    if not 200 <= response.status_code < 300:
        return b""
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise bad_response(what, f"response body exceeds {max_bytes} bytes (Content-Length {int(declared)})")
    chunks: list[bytes] = []
    size = 0
    # Decoded bytes are counted, so a compressed body is capped by what it expands to.
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise bad_response(what, f"response body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait per a Retry-After header (delay-seconds or HTTP-date); None if absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC without a claim about local time
        when = when.replace(tzinfo=UTC)
    try:
        return max(0.0, (when - now).total_seconds())
    except OverflowError:
        return None


def error_for_status(response: Reply, *, what: str, now: datetime) -> ProviderError | None:
    """None for a 2xx answer; otherwise the classified error. Never quotes the body."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    message = f"{what}: HTTP {status}"
    if status in (401, 403):
        return ProviderError(ProviderErrorKind.AUTH, message)
    if status == 404:
        return ProviderError(ProviderErrorKind.NOT_FOUND, message)
    if status == 408:
        return ProviderError(ProviderErrorKind.TIMEOUT, message)
    if status == 429:
        retry = parse_retry_after(response.headers.get("retry-after"), now=now)
        return ProviderError(ProviderErrorKind.RATE_LIMITED, message, retry_after_seconds=retry)
    if status >= 500:
        retry = parse_retry_after(response.headers.get("retry-after"), now=now)
        return ProviderError(ProviderErrorKind.UNAVAILABLE, message, retry_after_seconds=retry)
    if 300 <= status < 400:
        return ProviderError(ProviderErrorKind.CONFIG, f"{message} (redirect: check the base URL)")
    if 400 <= status < 500:  # 400, 405, 422, ...: the provider rejects the request as we build it
        return ProviderError(ProviderErrorKind.CONFIG, f"{message} (request rejected)")
    return ProviderError(ProviderErrorKind.BAD_RESPONSE, message)


def bad_response(what: str, detail: str) -> ProviderError:
    return ProviderError(ProviderErrorKind.BAD_RESPONSE, f"{what}: {detail}")


def read_json(response: Reply, *, what: str) -> object:
    """The decoded body, typed as object so callers must narrow it; BAD_RESPONSE if it is not JSON."""
    try:
        body: object = json.loads(response.content)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise bad_response(what, "body is not JSON") from None
    return body


def as_object(value: object) -> dict[str, object] | None:
    if isinstance(value, dict):
        return {str(key): item for key, item in value.items()}
    return None


def as_list(value: object) -> list[object] | None:
    if isinstance(value, list):
        return [item for item in value]  # noqa: C416 - narrows list[Any] to list[object]
    return None


def object_items(obj: Mapping[str, object], key: str, *, what: str) -> Iterator[dict[str, object]]:
    """The JSON objects listed under ``obj[key]``; BAD_RESPONSE names the key if it is not a list (now)
    or when iteration reaches an item that is not an object (then: earlier points are judged first)."""
    items = as_list(obj.get(key))
    if items is None:
        raise bad_response(what, f"{key} is not a list")
    return _each_object(items, key=key, what=what)


def _each_object(items: list[object], *, key: str, what: str) -> Iterator[dict[str, object]]:
    for item in items:
        point = as_object(item)
        if point is None:
            raise bad_response(what, f"{key} point is not an object")
        yield point


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def as_finite_number(value: object) -> float | None:
    """A JSON number as a finite float; None for bools, strings, NaN, ±Infinity, ints too big for a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def is_plausible_intensity(g_per_kwh: float) -> bool:
    return 0.0 <= g_per_kwh <= MAX_PLAUSIBLE_G_PER_KWH


def parse_instant(value: object) -> datetime | None:
    """An ISO 8601 timestamp as an aware UTC datetime; a naive one is taken as UTC; None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


class HttpProvider:
    """What every HTTP carbon provider shares; subclasses keep only what is specific to their API.

    It owns the client (close() closes it), refuses a base URL that would carry credentials in
    clear, and is the one way a provider reaches its API (_send) and reads an answer (_read_json).
    """

    def __init__(
        self,
        *,
        name: str,
        client: httpx.Client,
        base_url: str,
        base_url_setting: str,
        allow_insecure_http: bool,
        now: Clock | None = None,
    ) -> None:
        # allow_insecure_http admits an http:// base_url (local test servers only): credentials go in clear.
        require_secure_url(
            base_url, provider=name, setting=base_url_setting, allow_insecure=allow_insecure_http
        )
        self._name = name
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._now = now if now is not None else utc_now

    def __repr__(self) -> str:
        described = self._describe()
        more = f", {described}" if described else ""
        return f"{type(self).__name__}(base_url={self._base_url!r}{more})"

    def _describe(self) -> str:
        """The public settings a repr shows after the base URL; never a credential."""
        return ""

    @property
    def name(self) -> str:
        return self._name

    def close(self) -> None:
        self._client.close()

    def _send(
        self,
        path: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> Reply:
        return send(
            self._client, f"{self._base_url}{path}", what=what, params=params, headers=headers, auth=auth
        )

    def _read_json(self, response: Reply, *, what: str) -> object:
        """The decoded body of a 2xx answer; any other answer raises its classified ProviderError."""
        error = error_for_status(response, what=what, now=self._now())
        if error is not None:
            raise error
        return read_json(response, what=what)
