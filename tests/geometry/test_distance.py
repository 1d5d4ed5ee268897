"""Haversine, destination and bbox_around against Tile38's figures and each other."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geofleetd.geometry.distance import (
    EARTH_RADIUS_M,
    bbox_around,
    bearing_deg,
    bearing_deg_np,
    destination,
    destination_np,
    haversine_m,
    haversine_m_np,
)
from geofleetd.geometry.fmt import fnum

lats = st.floats(min_value=-90, max_value=90)
inner_lats = st.floats(min_value=-89, max_value=89)
lons = st.floats(min_value=-180, max_value=180)
bearings = st.floats(min_value=0, max_value=360, exclude_max=True)


def test_tile38_distances() -> None:
    a = haversine_m(
        33.414750027566235, -111.91789627075195, 33.414750027566235, -111.91154479980467
    )
    assert round(a, 3) == 589.512
    assert round(haversine_m(33, -115, 33.0001, -115), 3) == 11.119


def test_nearby_distance_matches_tile38_to_the_last_digit() -> None:
    # NEARBY k DISTANCE POINTS POINT 33 -115 printed this for the point 33.01,-115.
    assert fnum(haversine_m(33, -115, 33.01, -115)) == "1111.9492664448107"


def test_distance_basics() -> None:
    assert haversine_m(10, 20, 10, 20) == 0.0
    quarter = haversine_m(0, 0, 0, 90)
    assert quarter == pytest.approx(math.pi / 2 * EARTH_RADIUS_M, rel=1e-15)
    assert haversine_m(90, 0, -90, 0) == pytest.approx(math.pi * EARTH_RADIUS_M)
    # Across the antimeridian the short way.
    assert haversine_m(0, 179.5, 0, -179.5) == pytest.approx(haversine_m(0, 0, 0, 1))


def test_vectorized_matches_scalar_on_random_points() -> None:
    rng = np.random.default_rng(7)
    plats = rng.uniform(-90, 90, 5000)
    plons = rng.uniform(-180, 180, 5000)
    for lat, lon in [(33, -115), (40.7, -74.0), (-89.5, 179.9), (0, 0)]:
        vector = haversine_m_np(lat, lon, plats, plons)
        scalar = np.array(
            [haversine_m(lat, lon, a, b) for a, b in zip(plats, plons, strict=True)]
        )
        # numpy's sin/cos may round the last bit differently from libm's.
        np.testing.assert_allclose(vector, scalar, rtol=4e-16, atol=1e-9)

        vb = bearing_deg_np(lat, lon, plats, plons)
        sb = np.array(
            [bearing_deg(lat, lon, a, b) for a, b in zip(plats, plons, strict=True)]
        )
        wrapped = np.minimum(np.abs(vb - sb), 360 - np.abs(vb - sb))
        assert wrapped.max() < 1e-9


def test_bearing_cardinal_directions() -> None:
    assert bearing_deg(0, 0, 1, 0) == pytest.approx(0)
    assert bearing_deg(0, 0, 0, 1) == pytest.approx(90)
    assert bearing_deg(0, 0, -1, 0) == pytest.approx(180)
    assert bearing_deg(0, 0, 0, -1) == pytest.approx(270)


@given(
    inner_lats,
    lons,
    st.floats(min_value=1, max_value=1.5e7),
    bearings,
)
def test_destination_then_haversine_gives_the_distance(
    lat: float, lon: float, meters: float, bearing: float
) -> None:
    dlat, dlon = destination(lat, lon, meters, bearing)
    assert -90 <= dlat <= 90
    assert -180 <= dlon < 180
    assert haversine_m(lat, lon, dlat, dlon) == pytest.approx(meters, rel=1e-6)


def _assert_inside(
    box: tuple[float, float, float, float], lat: float, lon: float
) -> None:
    minlat, minlon, maxlat, maxlon = box
    assert minlat <= lat <= maxlat, (box, lat, lon)
    assert minlon <= lon <= maxlon, (box, lat, lon)


@given(
    lats,
    lons,
    st.floats(min_value=0, max_value=2.1e7),
    st.floats(min_value=0, max_value=1),
    bearings,
)
def test_bbox_around_contains_points_within_range(
    lat: float, lon: float, meters: float, fraction: float, bearing: float
) -> None:
    box = bbox_around(lat, lon, meters)
    plat, plon = destination(lat, lon, meters * fraction, bearing)
    _assert_inside(box, plat, plon)
    _assert_inside(box, lat, lon)
    assert box[0] <= box[2] and box[1] <= box[3]
    assert box[0] >= -90 and box[2] <= 90
    assert box[1] >= -180 and box[3] <= 180


def test_bbox_around_against_uniform_sphere_samples() -> None:
    rng = np.random.default_rng(11)
    z = rng.uniform(-1, 1, 20000)
    plats = np.degrees(np.arcsin(z))
    plons = rng.uniform(-180, 180, 20000)
    centers = [(40.7, -74.0, 50_000), (89.9, 10, 30_000), (-88, 0, 300_000)]
    centers += [(10, 179.9, 40_000), (-30, -179.5, 200_000), (0, 0, 5_000_000)]
    for lat, lon, meters in centers:
        minlat, minlon, maxlat, maxlon = bbox_around(lat, lon, meters)
        near = haversine_m_np(lat, lon, plats, plons) <= meters
        assert near.sum() > 0 or meters < 100_000
        assert np.all(plats[near] >= minlat) and np.all(plats[near] <= maxlat)
        assert np.all(plons[near] >= minlon) and np.all(plons[near] <= maxlon)


def test_bbox_around_is_tight_at_mid_latitude() -> None:
    minlat, minlon, maxlat, maxlon = bbox_around(33, -115, 1000)
    degree = math.pi / 180 * EARTH_RADIUS_M
    assert maxlat - 33 == pytest.approx(1000 / degree, rel=1e-6)
    assert maxlon + 115 == pytest.approx(
        1000 / degree / math.cos(math.radians(33)), rel=1e-4
    )
    assert (minlat, minlon) == pytest.approx((66 - maxlat, -230 - maxlon))


def test_bbox_around_poles_and_antimeridian() -> None:
    # Reaching a pole: every longitude, clamped latitude.
    assert bbox_around(89.99, 0, 5000)[1:] == (-180.0, 90.0, 180.0)
    assert bbox_around(-89.99, 0, 5000)[0] == -90.0
    # Reaching past +-180: every longitude, latitude still bounded.
    minlat, minlon, maxlat, maxlon = bbox_around(0, 179.999, 1000)
    assert (minlon, maxlon) == (-180.0, 180.0)
    assert -0.01 < minlat < maxlat < 0.01
    # Half the planet or more: everything.
    assert bbox_around(0, 0, 2.1e7) == (-90.0, -180.0, 90.0, 180.0)


@pytest.mark.parametrize("meters", [-1.0, math.nan, math.inf])
def test_bbox_around_rejects_bad_distances(meters: float) -> None:
    with pytest.raises(ValueError):
        bbox_around(0, 0, meters)


def test_vectorized_destination_matches_scalar() -> None:
    bearings = np.linspace(-360, 720, 301)
    for lat, lon, meters in [(40.7, -74.0, 1234.5), (89.9, 0, 50_000), (0, 179.9, 1e5)]:
        vlats, vlons = destination_np(lat, lon, meters, bearings)
        for i, bearing in enumerate(bearings):
            slat, slon = destination(lat, lon, meters, bearing)
            assert vlats[i] == pytest.approx(slat, abs=1e-12)
            wrapped = (vlons[i] - slon + 180) % 360 - 180
            assert abs(wrapped) < 1e-9
