"""Geohash encode/decode against Tile38's recorded hashes and the cell property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geofleetd.errors import GeofleetError
from geofleetd.geometry.geohash import decode, decode_bbox, encode

lats = st.floats(min_value=-90, max_value=90)
lons = st.floats(min_value=-180, max_value=180)
precisions = st.integers(min_value=1, max_value=12)


@pytest.mark.parametrize(
    ("lat", "lon", "precision", "expected"),
    [
        (33, -115, 7, "9my5xp7"),  # GET ... HASH 7 of POINT 33 -115
        (5, 5, 3, "s0g"),  # center of the 0..10 square polygon
        (20, 20, 4, "s7w1"),  # HASHES 4 of POINT 20 20
        (33, -112, 1, "9"),
        (1, 1, 6, "s00twy"),
        (33, -115, 5, "9my5x"),
        (33.01, -115, 5, "9my5z"),
        (0, 0, 1, "s"),
        (-90, -180, 3, "000"),
        (90, 180, 3, "zzz"),
    ],
)
def test_encode_matches_tile38(
    lat: float, lon: float, precision: int, expected: str
) -> None:
    assert encode(lat, lon, precision) == expected


def test_decode_bbox_of_known_cell() -> None:
    minlat, minlon, maxlat, maxlon = decode_bbox("s7w1")
    assert (minlat, minlon, maxlat, maxlon) == (
        19.86328125,
        19.6875,
        20.0390625,
        20.0390625,
    )
    assert decode("s0g") == (4.921875, 4.921875)


def test_decode_accepts_upper_case() -> None:
    assert decode_bbox("9MY5XP7") == decode_bbox("9my5xp7")


@pytest.mark.parametrize(
    "bad", ["", "9my5xpa", "abc", "s0i", "l", "o0", "s-1", "x" * 25]
)
def test_decode_rejects_invalid(bad: str) -> None:
    with pytest.raises(GeofleetError):
        decode_bbox(bad)


@pytest.mark.parametrize(
    ("lat", "lon", "precision"),
    [(0, 0, 0), (0, 0, 13), (91, 0, 5), (0, -181, 5), (float("nan"), 0, 5)],
)
def test_encode_rejects_invalid(lat: float, lon: float, precision: int) -> None:
    with pytest.raises(GeofleetError):
        encode(lat, lon, precision)


@given(lats, lons, precisions)
def test_cell_contains_its_point(lat: float, lon: float, precision: int) -> None:
    minlat, minlon, maxlat, maxlon = decode_bbox(encode(lat, lon, precision))
    assert minlat <= lat <= maxlat
    assert minlon <= lon <= maxlon


@given(lats, lons, precisions, precisions)
def test_shorter_hash_is_a_prefix(lat: float, lon: float, a: int, b: int) -> None:
    short, long = sorted((a, b))
    assert encode(lat, lon, long).startswith(encode(lat, lon, short))


@given(lats, lons, precisions)
def test_center_encodes_to_the_same_hash(
    lat: float, lon: float, precision: int
) -> None:
    code = encode(lat, lon, precision)
    assert encode(*decode(code), precision) == code
