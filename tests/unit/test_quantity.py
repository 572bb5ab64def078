"""core.quantity: Kubernetes quantities to plain numbers; anything else is a QuantityError."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.quantity import (
    GIB,
    MAX_CPU_CORES,
    MAX_MEMORY_GIB,
    QuantityError,
    QuantityOutOfRange,
    cpu_cores,
    memory_gib,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100m", 0.1),
        ("250m", 0.25),
        ("2", 2.0),
        ("0.5", 0.5),
        (".5", 0.5),
        ("+3", 3.0),
        ("1Gi", 2.0**30),
        ("1.5Gi", 1.5 * 2**30),
        ("512Mi", 512 * 2.0**20),
        ("1Ki", 1024.0),
        ("500M", 5e8),
        ("2k", 2000.0),
        ("1e3", 1000.0),
        ("1.5e2m", 0.15),
        ("100n", 1e-7),
        ("0", 0.0),
        (" 2 ", 2.0),
        (3, 3.0),
        (2.5, 2.5),
    ],
)
def test_quantity_table(text: object, expected: float) -> None:
    assert parse_quantity(text) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "abc",
        "-1",
        "-100m",
        "1Zi",
        "1 Gi",
        "1gi",
        "1.2.3",
        "Gi",
        "1e400",
        "nan",
        "inf",
        True,
        False,
        None,
        [],
        {},
        -1,
        math.nan,
        math.inf,
    ],
    ids=repr,
)
def test_not_a_quantity(value: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(value)


def test_cpu_and_memory_helpers() -> None:
    assert cpu_cores("1500m") == pytest.approx(1.5)
    assert memory_gib("512Mi") == 0.5
    assert memory_gib("3Gi") == 3.0
    assert memory_gib(GIB) == 1.0
    with pytest.raises(QuantityError):
        memory_gib("lots")


@given(st.text())
def test_any_string_parses_or_raises_quantity_error(text: str) -> None:
    try:
        value = parse_quantity(text)
    except QuantityError:
        return
    assert math.isfinite(value)
    assert value >= 0


SUFFIXES = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30}


@given(st.integers(0, 10**6), st.integers(0, 999), st.sampled_from(sorted(SUFFIXES)))
def test_well_formed_quantities_scale_by_their_suffix(whole: int, millis: int, suffix: str) -> None:
    text = f"{whole}.{millis:03d}{suffix}"
    assert parse_quantity(text) == pytest.approx((whole + millis / 1000) * SUFFIXES[suffix], rel=1e-12)


@given(st.floats(min_value=0, allow_infinity=False, allow_nan=False))
def test_a_float_written_out_reads_back_exactly(number: float) -> None:
    assert parse_quantity(repr(number)) == number
    assert parse_quantity(number) == number


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**900), 2**900) | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=6,
)


@given(json_values)
def test_any_json_value_parses_or_raises_quantity_error(value: object) -> None:
    try:
        number = parse_quantity(value)
    except QuantityError:
        return
    assert math.isfinite(number)
    assert number >= 0


def test_an_integer_too_large_for_a_float_is_a_quantity_error() -> None:
    with pytest.raises(QuantityError):
        parse_quantity(10**400)


@pytest.mark.parametrize(
    ("parse", "value"),
    [
        (cpu_cores, "1e308"),
        (cpu_cores, "2e6"),
        (cpu_cores, 1e308),
        (cpu_cores, "9E"),
        (memory_gib, "1e308"),
        (memory_gib, "2Ei"),
        (memory_gib, 10**400),
    ],
)
def test_requests_beyond_what_placement_computes_with_are_out_of_range(parse: object, value: object) -> None:
    assert callable(parse)
    with pytest.raises(QuantityOutOfRange):
        parse(value)


def test_the_caps_themselves_still_parse() -> None:
    assert cpu_cores(str(int(MAX_CPU_CORES))) == MAX_CPU_CORES
    assert memory_gib(f"{int(MAX_MEMORY_GIB)}Gi") == MAX_MEMORY_GIB


def test_a_negative_quantity_is_an_error_but_not_out_of_range() -> None:
    with pytest.raises(QuantityError) as raised:
        cpu_cores("-1")
    assert not isinstance(raised.value, QuantityOutOfRange)
