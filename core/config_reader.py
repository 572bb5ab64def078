"""How a configuration setting is declared once, and read, checked and documented from that.

A setting is a field of a frozen settings dataclass (core.config) declared with :func:`setting`:
its default, unit, one-line doc and bounds sit on the field. :func:`read_settings` reads a YAML
section against those declarations (the YAML key is the field name in camelCase), so a setting is
spelt once: the unknown-key errors, the type and range checks and the settings table in
docs/configuration.md all follow from the declaration. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal, TypeVar

from core.yaml_input import describe, not_a_string

T = TypeVar("T")
Kind = Literal["number", "integer", "boolean", "string", "url", "choice", "instant"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Setting:
    """What a settings field says about itself (held in the dataclass field's metadata)."""

    doc: str
    unit: str = ""
    kind: Kind | None = None  # None: from the default's type
    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()  # for a string: the values it may take
    default_doc: str = ""  # how the table shows a default that is not a plain value


def setting(
    default: T,
    *,
    doc: str,
    unit: str = "",
    kind: Kind | None = None,
    minimum: float | None = None,
    exclusive_minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] = (),
    default_doc: str = "",
) -> T:
    """A settings field: its default and everything the reader and the table need to know."""
    declared = Setting(
        doc=doc,
        unit=unit,
        kind=kind,
        minimum=minimum,
        exclusive_minimum=exclusive_minimum,
        maximum=maximum,
        choices=choices,
        default_doc=default_doc,
    )
    found: T = dataclasses.field(default=default, metadata={"setting": declared})
    return found


def yaml_key(name: str) -> str:
    """The YAML spelling of a field name: ``max_stale_seconds`` -> ``maxStaleSeconds``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(frozen=True, slots=True, kw_only=True)
class Declared:
    name: str  # the field's
    key: str  # the YAML key
    default: object
    setting: Setting
    kind: Kind


def declared(cls: type) -> Iterator[Declared]:
    """The settings a dataclass declares, in declaration order."""
    for item in dataclasses.fields(cls):
        found = item.metadata.get("setting")
        if not isinstance(found, Setting):
            continue
        yield Declared(
            name=item.name,
            key=yaml_key(item.name),
            default=item.default,
            setting=found,
            kind=found.kind or _kind_of(item.default),
        )


def _kind_of(default: object) -> Kind:
    if isinstance(default, bool):
        return "boolean"
    if isinstance(default, Enum):
        return "choice"
    if isinstance(default, int):
        return "integer"
    if isinstance(default, float):
        return "number"
    if isinstance(default, str):
        return "string"
    raise TypeError(f"say the kind of a setting whose default is {default!r}")


def join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


class Reader:
    """Walks a parsed YAML document, collecting every problem with its dotted key."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def mapping(self, value: object, key: str) -> Mapping[str, object]:
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            self.fail(key, f"must be a mapping with string keys, got {describe(value)}")
            return {}
        return value

    def only_keys(self, value: Mapping[str, object], key: str, allowed: set[str]) -> None:
        for unknown in sorted(set(value) - allowed):
            self.fail(join(key, unknown), f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def number(
        self,
        value: Mapping[str, object],
        key: str,
        name: str,
        default: float,
        *,
        minimum: float | None = None,
        exclusive_minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        raw = value.get(name, default)
        full = join(key, name)
        try:
            number = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else math.nan
        except OverflowError:  # an integer too large for a float
            number = math.nan
        if not math.isfinite(number):
            self.fail(full, f"must be a number, got {describe(raw)}")
            return default
        if minimum is not None and number < minimum:
            self.fail(full, f"must be >= {minimum:g}, got {number:g}")
        if exclusive_minimum is not None and number <= exclusive_minimum:
            self.fail(full, f"must be > {exclusive_minimum:g}, got {number:g}")
        if maximum is not None and number > maximum:
            self.fail(full, f"must be <= {maximum:g}, got {number:g}")
        return number

    def integer(
        self,
        value: Mapping[str, object],
        key: str,
        name: str,
        default: int,
        *,
        minimum: int,
        maximum: int | None = None,
    ) -> int:
        raw = value.get(name, default)
        full = join(key, name)
        if isinstance(raw, bool) or not isinstance(raw, int):
            self.fail(full, f"must be an integer, got {describe(raw)}")
            return default
        if raw < minimum:
            self.fail(full, f"must be >= {minimum}, got {raw}")
        if maximum is not None and raw > maximum:
            self.fail(full, f"must be <= {maximum}, got {raw}")
        return raw

    def boolean(self, value: Mapping[str, object], key: str, name: str, default: bool) -> bool:
        raw = value.get(name, default)
        if not isinstance(raw, bool):
            self.fail(join(key, name), f"must be true or false, got {describe(raw)}")
            return default
        return raw

    def string(self, value: Mapping[str, object], key: str, name: str, default: str | None) -> str:
        raw = value.get(name, default)
        if not isinstance(raw, str) or not raw:
            self.fail(join(key, name), not_a_string(raw))
            return default or ""
        return raw

    def url(self, value: Mapping[str, object], key: str, name: str, default: str) -> str:
        url = self.string(value, key, name, default)
        if not url.startswith(("https://", "http://")):
            self.fail(join(key, name), f"must be an http(s) URL, got {describe(url)}")
        return url.rstrip("/")

    def choice(self, value: Mapping[str, object], key: str, name: str, enum: type[T], default: T) -> T:
        raw = value.get(name, default)
        try:
            return enum(raw)  # type: ignore[call-arg]
        except ValueError:
            allowed = ", ".join(str(member) for member in enum)  # type: ignore[attr-defined]
            self.fail(join(key, name), f"must be one of {allowed}, got {describe(raw)}")
            return default

    def instant(self, value: Mapping[str, object], key: str, name: str) -> datetime | None:
        """An RFC 3339 time with an offset (YAML may already have made it a datetime), in UTC."""
        raw = value.get(name)
        if raw is None:
            return None
        parsed: datetime | None = None
        if isinstance(raw, datetime):
            parsed = raw
        elif isinstance(raw, str):
            try:
                parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
            except ValueError:
                parsed = None
        if parsed is None or parsed.tzinfo is None:
            self.fail(
                join(key, name),
                f"must be an RFC 3339 time with an offset, like 2022-06-01T00:00:00Z, got {describe(raw)}",
            )
            return None
        return parsed.astimezone(UTC)


def read_settings(
    reader: Reader, raw: Mapping[str, object], key: str, cls: type, *, also: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The declared settings of ``cls`` read from the YAML section ``raw`` at ``key``, by field name.

    A key that is neither declared nor in ``also`` (what the caller reads itself) is an error;
    an absent key takes the declared default. Values that fail a check are reported and take the
    default, so every problem in a file is found in one pass.
    """
    settings = list(declared(cls))
    reader.only_keys(raw, key, {s.key for s in settings} | also)
    values: dict[str, Any] = {}
    for s in settings:
        if s.key not in raw:
            continue  # the default, which the declaration vouches for
        values[s.name] = _read_one(reader, raw, key, s)
    return values


def _read_one(reader: Reader, raw: Mapping[str, object], key: str, s: Declared) -> object:
    d = s.setting
    if s.kind == "number":
        return reader.number(
            raw,
            key,
            s.key,
            _float(s.default),
            minimum=d.minimum,
            exclusive_minimum=d.exclusive_minimum,
            maximum=d.maximum,
        )
    if s.kind == "integer":
        return reader.integer(
            raw,
            key,
            s.key,
            s.default if isinstance(s.default, int) else 0,
            minimum=int(d.minimum) if d.minimum is not None else -(2**63),
            maximum=int(d.maximum) if d.maximum is not None else None,
        )
    if s.kind == "boolean":
        return reader.boolean(raw, key, s.key, bool(s.default))
    if s.kind == "choice":
        assert isinstance(s.default, Enum)
        return reader.choice(raw, key, s.key, type(s.default), s.default)
    if s.kind == "instant":
        return reader.instant(raw, key, s.key)
    default = s.default if isinstance(s.default, str) else None
    if s.kind == "url":
        return reader.url(raw, key, s.key, default or "")
    text = reader.string(raw, key, s.key, default)
    if d.choices and text not in d.choices:
        reader.fail(join(key, s.key), f"must be {' or '.join(d.choices)}, got {describe(text)}")
    return text


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _number_text(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() and abs(value) >= 10_000 else f"{value:g}"


def _default_text(s: Declared) -> str:
    if s.setting.default_doc:
        return s.setting.default_doc
    value = s.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return f"`{value.value}`"
    if isinstance(value, float):
        return _number_text(value)
    if isinstance(value, str):
        return f"`{value}`" if value else "–"
    if value is None:
        return "–"
    return str(value)


def _range_text(s: Declared) -> str:
    d = s.setting
    parts = []
    if d.minimum is not None:
        parts.append(f"≥ {_number_text(d.minimum)}")
    if d.exclusive_minimum is not None:
        parts.append(f"> {_number_text(d.exclusive_minimum)}")
    if d.maximum is not None:
        parts.append(f"≤ {_number_text(d.maximum)}")
    if d.choices:
        parts.append(" or ".join(f"`{c}`" for c in d.choices))
    if s.kind == "choice" and isinstance(s.default, Enum):
        parts.append(" or ".join(f"`{member.value}`" for member in type(s.default)))
    return ", ".join(parts)


def settings_rows(prefix: str, cls: type) -> list[str]:
    """One Markdown table row per declared setting of ``cls`` under the YAML section ``prefix``."""
    rows = []
    for s in declared(cls):
        values = _range_text(s)
        rows.append(
            f"| `{join(prefix, s.key)}` | {s.kind} | {_default_text(s)} | {s.setting.unit or '–'} "
            f"| {values or '–'} | {s.setting.doc} |"
        )
    return rows
