"""Go-style number formatting: fnum (strconv 'f', -1) and json_num (encoding/json)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geofleetd.geometry.fmt import fnum, json_num

finite = st.floats(allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (33.0, "33"),
        (-115.0, "-115"),
        (-115.5, "-115.5"),
        (37.7341129, "37.7341129"),
        (-122.44126439094543, "-122.44126439094543"),
        (1111.9492664448107, "1111.9492664448107"),
        (0.0, "0"),
        (-0.0, "-0"),
        (1e-7, "0.0000001"),
        (-1.5e-7, "-0.00000015"),
        (0.00001, "0.00001"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e21, "1000000000000000000000"),
        (123456789012345678.0, "123456789012345680"),
        (5e-324, "0." + "0" * 323 + "5"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (7, "7"),
    ],
)
def test_fnum_table(value: float, text: str) -> None:
    assert fnum(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (33.0, "33"),
        (-115.5, "-115.5"),
        (42527842.572, "42527842.572"),
        (2.0**53, "9007199254740992"),
        (2.0**53 + 2, "9007199254740994"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (-2.5e-9, "-2.5e-9"),
        (1e-100, "1e-100"),
        (0.0, "0"),
        (-0.0, "-0"),
        (12345678901234567890, "12345678901234567890"),
    ],
)
def test_json_num_table(value: float, text: str) -> None:
    assert json_num(value) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_json_num_refuses_non_finite(value: float) -> None:
    with pytest.raises(ValueError):
        json_num(value)


def test_json_num_refuses_bool() -> None:
    with pytest.raises(TypeError):
        json_num(True)


@given(finite)
def test_fnum_round_trips_without_exponent(x: float) -> None:
    text = fnum(x)
    assert float(text) == x
    assert "e" not in text and "E" not in text
    assert not text.endswith(".0")


@given(finite)
def test_fnum_uses_reprs_digits(x: float) -> None:
    # Shortest round-trip digits: the same significant digits Python's repr picks.
    digits = repr(abs(x)).split("e")[0].replace(".", "").strip("0")
    assert fnum(abs(x)).replace(".", "").strip("0") == digits


@given(finite)
def test_json_num_is_json_and_round_trips(x: float) -> None:
    text = json_num(x)
    # An integer token parses as a Python int; as a float it must be x again.
    assert float(json.loads(text)) == x
    magnitude = abs(x)
    uses_exponent = magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21)
    assert ("e" in text) == uses_exponent
    if uses_exponent:
        assert "e-0" not in text
    elif x.is_integer():
        assert "." not in text
