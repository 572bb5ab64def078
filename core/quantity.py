"""Kubernetes resource quantities ("250m", "1.5Gi", "1e3") to plain numbers. Pure."""

from __future__ import annotations

import math
import re

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_SUFFIX = {
    None: 1.0,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
GIB = 2.0**30


class QuantityError(ValueError):
    pass


class QuantityOutOfRange(QuantityError):
    """A well-formed quantity too large to compute with (or to be real)."""


# Placement multiplies requests by watts, hours, grams and prices and adds them up across
# containers and replicas: a bound far above any node (the largest have a few hundred cores
# and tens of TiB) and far below float overflow keeps every product finite. A request
# beyond it could never be scheduled, so refusing it loses nothing.
MAX_CPU_CORES = 1e6
MAX_MEMORY_GIB = 1e6  # about a PiB


# A cluster writes the same few quantities ("500m", "512Mi") on every pod: parse each once.
# Bounded, so hostile values can only make it start over.
_PARSED: dict[str, float] = {}
MAX_REMEMBERED_QUANTITIES = 4096


def parse_quantity(value: object) -> float:
    """Parse a quantity as the API server accepts it; numbers pass through. Negative is an error."""
    if type(value) is str:
        known = _PARSED.get(value)
        if known is not None:
            return known
        number = _parse(value)
        if len(_PARSED) >= MAX_REMEMBERED_QUANTITIES:
            _PARSED.clear()
        _PARSED[value] = number
        return number
    return _parse(value)


def _parse(value: object) -> float:
    if isinstance(value, bool):
        raise QuantityError(f"not a quantity: {value!r}")
    try:
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            match = _QUANTITY.match(value.strip())
            if match is None:
                raise QuantityError(f"not a quantity: {value[:40]!r}")
            number = float(match.group(1)) * _SUFFIX[match.group(2)]
        else:
            raise QuantityError(f"not a quantity: {type(value).__name__}")
    except OverflowError:
        raise QuantityOutOfRange("quantity out of range") from None
    if not math.isfinite(number):
        raise QuantityOutOfRange(f"quantity out of range: {str(value)[:40]!r}")
    if number < 0:
        raise QuantityError(f"quantity is negative: {str(value)[:40]!r}")
    return number


def cpu_cores(value: object) -> float:
    cores = parse_quantity(value)
    if cores > MAX_CPU_CORES:
        raise QuantityOutOfRange(f"more than {MAX_CPU_CORES:g} CPUs")
    return cores


def memory_gib(value: object) -> float:
    gib = parse_quantity(value) / GIB
    if gib > MAX_MEMORY_GIB:
        raise QuantityOutOfRange(f"more than {MAX_MEMORY_GIB:g} GiB of memory")
    return gib
