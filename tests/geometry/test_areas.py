"""Query areas: vectorized membership against per-point oracles, on real positions.

Oracles are deliberately plain: shapely's unprepared contains/touches on a geometry
built straight from the coordinates, or the scalar haversine and bearing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import shape

from geofleetd.errors import GeofleetError
from geofleetd.geometry.areas import (
    Area,
    Bounds,
    Circle,
    Sector,
    ShapeArea,
    area_from_geojson,
    hash_bounds,
    quadkey,
    tile,
)
from geofleetd.geometry.distance import bearing_deg, haversine_m
from geofleetd.geometry.geojson import parse_geojson

Oracle = Callable[[float, float], bool]
HARBOR = (40.65, -74.05)

SQUARE_WITH_HOLE = (
    '{"type":"Polygon","coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]],'
    "[[4,4],[6,4],[6,6],[4,6],[4,4]]]}"
)
TWO_HOLES = (
    '{"type":"Polygon","coordinates":[[[-74.1,40.6],[-74.0,40.6],[-74.0,40.7],'
    "[-74.1,40.7],[-74.1,40.6]],[[-74.08,40.62],[-74.06,40.62],[-74.06,40.64],"
    "[-74.08,40.64],[-74.08,40.62]],[[-74.04,40.66],[-74.01,40.66],[-74.01,40.69],"
    "[-74.04,40.69],[-74.04,40.66]]]}"
)


def _covers_oracle(geom: Any) -> Oracle:
    def inside(lat: float, lon: float) -> bool:
        point = shapely.Point(lon, lat)
        return bool(shapely.contains(geom, point) or shapely.touches(geom, point))

    return inside


def _circle_oracle(lat: float, lon: float, meters: float) -> Oracle:
    return lambda plat, plon: haversine_m(lat, lon, plat, plon) <= meters


def _sector_oracle(sector: Sector) -> Oracle:
    sweep = (sector.bearing2 - sector.bearing1) % 360 or 360

    def inside(plat: float, plon: float) -> bool:
        distance = haversine_m(sector.lat, sector.lon, plat, plon)
        if distance > sector.meters:
            return False
        if distance == 0:
            return True
        offset = (
            bearing_deg(sector.lat, sector.lon, plat, plon) - sector.bearing1
        ) % 360
        return offset <= sweep

    return inside


def _check(area: Area, oracle: Oracle, lats: np.ndarray, lons: np.ndarray) -> int:
    """Asserts vectorized == oracle for every point; returns how many were inside."""
    got = area.contains_points(lats, lons)
    assert got.dtype == np.bool_ and got.shape == lats.shape
    want = np.array([oracle(a, b) for a, b in zip(lats, lons, strict=True)], dtype=bool)
    mismatch = np.flatnonzero(got != want)
    assert mismatch.size == 0, [(lats[i], lons[i], want[i]) for i in mismatch[:5]]
    return int(want.sum())


# ---- construction and validation -------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        (91, 0, 92, 1),
        (0, -181, 1, 0),
        (0, 0, 1, 181),
        (-91, 0, 0, 1),
        (5, 0, 4, 1),  # min lat above max lat
        (0, 170, 1, -170),  # crosses the antimeridian
        (math.nan, 0, 1, 1),
        (0, 0, math.inf, 1),
    ],
)
def test_bounds_rejects(args: tuple[float, float, float, float]) -> None:
    with pytest.raises(GeofleetError):
        Bounds(*args)


def test_bounds_attributes() -> None:
    b = Bounds(1, 2, 3, 4)
    assert b.bbox == (2.0, 1.0, 4.0, 3.0)
    assert b.geom.equals(shapely.box(2, 1, 4, 3))
    assert b == Bounds(1.0, 2.0, 3.0, 4.0)
    assert Bounds(1, 2, 1, 2).geom.geom_type == "Point"
    assert Bounds(1, 2, 1, 4).geom.geom_type == "LineString"


@pytest.mark.parametrize(
    "args", [(91, 0, 10), (0, 181, 10), (0, 0, -1), (0, 0, math.nan), (0, 0, math.inf)]
)
def test_circle_rejects(args: tuple[float, float, float]) -> None:
    with pytest.raises(GeofleetError):
        Circle(*args)


def test_sector_equal_bearings_message_matches_tile38() -> None:
    with pytest.raises(GeofleetError) as info:
        Sector(37.72999, -122.44760, 1000, 0, 0)
    assert info.value.resp_line() == "ERR equal bearings (0 == 0), use CIRCLE instead"
    with pytest.raises(GeofleetError, match=r"equal bearings \(12.5 == 12.5\)"):
        Sector(0, 0, 10, 12.5, 12.5)
    with pytest.raises(GeofleetError):
        Sector(0, 0, 10, math.nan, 1)


def test_sector_sweeps() -> None:
    assert Sector(0, 0, 10, 0, 90).sweep == 90
    assert Sector(0, 0, 10, 270, 45).sweep == 135
    assert Sector(0, 0, 10, 90, 0).sweep == 270
    assert Sector(0, 0, 10, 0, 360).sweep == 360
    assert Sector(0, 0, 10, -90, 90).sweep == 180


def test_tiles_and_quadkeys() -> None:
    world = tile(0, 0, 0)
    assert world.minlon == -180 and world.maxlon == 180
    assert world.maxlat == pytest.approx(85.0511287798066)
    assert world.minlat == pytest.approx(-85.0511287798066)
    assert quadkey("") == world
    assert quadkey("0") == tile(0, 0, 1) == Bounds(0, -180, world.maxlat, 0)
    assert quadkey("3") == tile(1, 1, 1)
    assert quadkey("213") == tile(3, 5, 3)  # Bing's documented example
    assert quadkey("120") == tile(4, 2, 3)
    # z=10 tile over the harbor
    ny = tile(301, 385, 10)
    assert ny.minlon == pytest.approx(-74.1796875)
    assert ny.maxlon == pytest.approx(-73.828125)
    assert ny.minlat == pytest.approx(40.4469470596005)
    assert ny.maxlat == pytest.approx(40.713955826286046)
    for bad in [(2, 0, 1), (0, -1, 1), (0, 0, 31), (0, 0, -1)]:
        with pytest.raises(GeofleetError):
            tile(*bad)
    for key in ["4", "01a", "0" * 31]:
        with pytest.raises(GeofleetError):
            quadkey(key)


def test_hash_bounds() -> None:
    cell = hash_bounds("s7w1")
    assert (cell.minlat, cell.minlon, cell.maxlat, cell.maxlon) == (
        19.86328125,
        19.6875,
        20.0390625,
        20.0390625,
    )
    assert cell.contains_points(np.array([20.0]), np.array([20.0])).tolist() == [True]
    with pytest.raises(GeofleetError):
        hash_bounds("s7wa")


# ---- membership against oracles on real AIS positions ----------------------------


def test_bounds_on_ais(ais_positions: tuple[np.ndarray, np.ndarray]) -> None:
    lats, lons = ais_positions
    # Edges placed exactly on real fixes, so some points sit on the boundary.
    b = Bounds(lats[10], lons[10], lats[10] + 0.08, lons[10] + 0.1)
    on_edge = ((lats == b.minlat) & (lons >= b.minlon) & (lons <= b.maxlon)) | (
        (lons == b.minlon) & (lats >= b.minlat) & (lats <= b.maxlat)
    )
    assert on_edge.sum() >= 1
    assert b.contains_points(lats[on_edge], lons[on_edge]).all()
    inside = _check(b, _covers_oracle(shapely.box(*b.bbox)), lats, lons)
    assert 100 < inside < len(lats)


def test_circle_on_ais(ais_positions: tuple[np.ndarray, np.ndarray]) -> None:
    lats, lons = ais_positions
    for meters in (500.0, 5000.0, 20000.0):
        c = Circle(*HARBOR, meters)
        inside = _check(c, _circle_oracle(*HARBOR, meters), lats, lons)
        assert 0 < inside < len(lats)


@pytest.mark.parametrize(("b1", "b2"), [(0, 90), (270, 45), (45, 44), (-30, 200)])
def test_sector_on_ais(
    ais_positions: tuple[np.ndarray, np.ndarray], b1: float, b2: float
) -> None:
    lats, lons = ais_positions
    s = Sector(*HARBOR, 8000, b1, b2)
    inside = _check(s, _sector_oracle(s), lats, lons)
    assert 0 < inside < len(lats)


def test_tile_and_quadkey_on_ais(ais_positions: tuple[np.ndarray, np.ndarray]) -> None:
    lats, lons = ais_positions
    for area in (
        tile(301, 385, 10),
        tile(602, 770, 11),
        quadkey("032010110"),
        tile(0, 0, 0),
    ):
        _check(area, _covers_oracle(shapely.box(*area.bbox)), lats, lons)
    assert tile(0, 0, 0).contains_points(lats, lons).all()


def test_holed_polygon_on_ais(ais_positions: tuple[np.ndarray, np.ndarray]) -> None:
    lats, lons = ais_positions
    area = area_from_geojson(parse_geojson(TWO_HOLES))
    raw = shape(json.loads(TWO_HOLES))
    inside = _check(area, _covers_oracle(raw), lats, lons)
    in_outer = Bounds(40.6, -74.1, 40.7, -74.0).contains_points(lats, lons).sum()
    assert 0 < inside < in_outer


def test_districts_against_shapely(
    districts_doc: dict[str, Any],
    district_texts: list[str],
    ais_positions: tuple[np.ndarray, np.ndarray],
) -> None:
    ais_lats, ais_lons = ais_positions
    rng = np.random.default_rng(3)
    total_inside = 0
    for feature, text in zip(districts_doc["features"], district_texts, strict=True):
        area = area_from_geojson(parse_geojson(text, with_text=False))
        raw = shape(feature["geometry"])
        minlon, minlat, maxlon, maxlat = raw.bounds
        near = (
            (ais_lats >= minlat)
            & (ais_lats <= maxlat)
            & (ais_lons >= minlon)
            & (ais_lons <= maxlon)
        )
        vertices = shapely.get_coordinates(raw)[::40]
        lats = np.concatenate(
            [ais_lats[near][:150], rng.uniform(minlat, maxlat, 60), vertices[:, 1]]
        )
        lons = np.concatenate(
            [ais_lons[near][:150], rng.uniform(minlon, maxlon, 60), vertices[:, 0]]
        )
        total_inside += _check(area, _covers_oracle(raw), lats, lons)
        # Every vertex is on the outline, and the outline counts as inside.
        assert area.contains_points(vertices[:, 1], vertices[:, 0]).all()
    assert total_inside > 71 * 10


def test_hole_semantics_like_tile38() -> None:
    area = area_from_geojson(parse_geojson(SQUARE_WITH_HOLE))
    lats = np.array([2, 5, 20, 4, 5, 0, 10, 4.5])
    lons = np.array([2, 5, 20, 5, 4, 0, 5, 5.5])
    # in, hole center, out, hole edge, hole edge, outer corner, outer edge, in hole
    assert area.contains_points(lats, lons).tolist() == [
        True,
        False,
        False,
        True,
        True,
        True,
        True,
        False,
    ]


# ---- hypothesis: generated points near each area ---------------------------------

near_harbor = st.lists(
    st.tuples(st.floats(40.4, 40.9), st.floats(-74.4, -73.7)), min_size=1, max_size=60
)


def _arrays(points: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    lats, lons = zip(*points, strict=True)
    return np.array(lats, dtype=float), np.array(lons, dtype=float)


@settings(max_examples=60)
@given(near_harbor, st.floats(1, 30000))
def test_circle_generated(points: list[tuple[float, float]], meters: float) -> None:
    lats, lons = _arrays(points)
    _check(Circle(*HARBOR, meters), _circle_oracle(*HARBOR, meters), lats, lons)


@settings(max_examples=60)
@given(near_harbor, st.floats(1, 30000), st.floats(-720, 720), st.floats(-720, 720))
def test_sector_generated(
    points: list[tuple[float, float]], meters: float, b1: float, b2: float
) -> None:
    if b1 == b2:
        return
    lats, lons = _arrays(points)
    s = Sector(*HARBOR, meters, b1, b2)
    _check(s, _sector_oracle(s), lats, lons)


@settings(max_examples=60)
@given(near_harbor, st.floats(40.4, 40.9), st.floats(-74.4, -73.7), st.floats(0, 0.3))
def test_bounds_generated(
    points: list[tuple[float, float]], lat: float, lon: float, size: float
) -> None:
    lats, lons = _arrays(points)
    # Include the corners themselves: the boundary is inside.
    lats = np.concatenate([lats, [lat, lat + size]])
    lons = np.concatenate([lons, [lon, lon + size]])
    b = Bounds(lat, lon, lat + size, lon + size)

    def oracle(a: float, o: float) -> bool:
        return bool(
            shapely.box(lon, lat, lon + size, lat + size).covers(shapely.Point(o, a))
        )

    _check(b, oracle, lats, lons)
    assert b.contains_points(lats[-2:], lons[-2:]).all()


@settings(max_examples=60)
@given(
    st.lists(st.tuples(st.floats(-2, 12), st.floats(-2, 12)), min_size=1, max_size=60)
)
def test_holed_square_generated(points: list[tuple[float, float]]) -> None:
    lats, lons = _arrays(points)
    area = area_from_geojson(parse_geojson(SQUARE_WITH_HOLE))
    _check(area, _covers_oracle(shape(json.loads(SQUARE_WITH_HOLE))), lats, lons)


@settings(max_examples=30)
@given(
    st.integers(0, 16).flatmap(
        lambda z: st.tuples(
            st.integers(0, 2**z - 1), st.integers(0, 2**z - 1), st.just(z)
        )
    ),
    st.lists(
        st.tuples(st.floats(-85, 85), st.floats(-180, 180)), min_size=1, max_size=30
    ),
)
def test_tile_generated(
    xyz: tuple[int, int, int], points: list[tuple[float, float]]
) -> None:
    x, y, z = xyz
    area = tile(x, y, z)
    center_lat = (area.minlat + area.maxlat) / 2
    center_lon = (area.minlon + area.maxlon) / 2
    lats, lons = _arrays([*points, (center_lat, center_lon)])
    _check(area, _covers_oracle(shapely.box(*area.bbox)), lats, lons)
    assert area.contains_points(lats[-1:], lons[-1:]).all()


# ---- exact predicates vs the polygon approximation -------------------------------


@pytest.mark.parametrize(
    "area",
    [
        Circle(*HARBOR, 3000),
        Sector(*HARBOR, 3000, 10, 100),
        Sector(*HARBOR, 3000, 300, 20),
    ],
)
def test_exact_membership_agrees_with_polygon_away_from_the_edge(area: Area) -> None:
    rng = np.random.default_rng(5)
    lats = rng.uniform(40.61, 40.69, 4000)
    lons = rng.uniform(-74.1, -74.0, 4000)
    exact = area.contains_points(lats, lons)
    points = shapely.points(lons, lats)
    polygon = shapely.intersects(area.geom, points)
    far_from_edge = shapely.distance(area.geom.boundary, points) > 1e-5
    assert far_from_edge.sum() > 3500
    assert np.array_equal(exact[far_from_edge], polygon[far_from_edge])
    assert exact.any() and not exact.all()


def test_circle_bbox_holds_the_circle() -> None:
    c = Circle(*HARBOR, 2500)
    minlon, minlat, maxlon, maxlat = c.bbox
    ring = np.array(c.geom.exterior.coords)
    assert ring[:, 0].min() >= minlon and ring[:, 0].max() <= maxlon
    assert ring[:, 1].min() >= minlat and ring[:, 1].max() <= maxlat


# ---- object predicates (WITHIN / INTERSECTS) -------------------------------------

OBJECTS = {
    "in": shapely.Point(2, 2),
    "hole": shapely.Point(5, 5),
    "out": shapely.Point(20, 20),
    "edge_poly": shapely.box(1, 1, 3, 3),
    "across_hole": shapely.box(3, 3, 7, 7),
    "big": shapely.box(-1, -1, 11, 11),
    "inhole": shapely.box(4.5, 4.5, 5.5, 5.5),
}


def _names(pred: Callable[[Any], bool]) -> set[str]:
    return {name for name, g in OBJECTS.items() if pred(g)}


def test_within_and_intersects_holed_polygon_like_tile38() -> None:
    holed = area_from_geojson(parse_geojson(SQUARE_WITH_HOLE))
    assert _names(holed.contains_geom) == {"in", "edge_poly"}
    assert _names(holed.intersects_geom) == {"in", "edge_poly", "across_hole", "big"}
    plain = area_from_geojson(
        parse_geojson(
            '{"type":"Polygon","coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]]]}'
        )
    )
    assert _names(plain.contains_geom) == {
        "in",
        "hole",
        "edge_poly",
        "across_hole",
        "inhole",
    }
    multi = area_from_geojson(
        parse_geojson(
            '{"type":"MultiPolygon","coordinates":[[[[0,0],[2.5,0],[2.5,2.5],[0,2.5],'
            "[0,0]]],[[[19,19],[22,19],[22,22],[19,22],[19,19]]]]}"
        )
    )
    assert _names(multi.contains_geom) == {"in", "out"}
    assert _names(multi.intersects_geom) == {"in", "out", "edge_poly", "big"}
    assert _names(tile(0, 0, 0).intersects_geom) == set(OBJECTS)
    assert _names(hash_bounds("s7w1").intersects_geom) == {"out"}
    assert _names(Bounds(-10, 0, 40, 30).contains_geom) == set(OBJECTS) - {"big"}


def test_circle_object_predicates() -> None:
    c = Circle(0, 0, 100_000)  # about 0.9 degrees
    assert c.contains_geom(shapely.Point(0.5, 0.5))
    assert not c.contains_geom(shapely.Point(0.9, 0.9))
    assert c.contains_geom(shapely.LineString([(-0.5, 0), (0.5, 0)]))
    assert not c.contains_geom(shapely.LineString([(-0.5, 0), (1.5, 0)]))
    assert c.intersects_geom(shapely.LineString([(-0.5, 0), (1.5, 0)]))
    # A line crossing the circle with both ends outside.
    assert c.intersects_geom(shapely.LineString([(-2, 0.1), (2, 0.1)]))
    # A polygon holding the whole circle.
    assert c.intersects_geom(shapely.box(-5, -5, 5, 5))
    assert not c.contains_geom(shapely.box(-5, -5, 5, 5))
    assert not c.intersects_geom(shapely.box(2, 2, 3, 3))
    assert c.intersects_geom(shapely.MultiPoint([(5, 5), (0.1, 0.1)]))
    assert not c.intersects_geom(shapely.MultiPoint([(5, 5), (1, 1)]))


def test_sector_object_predicates() -> None:
    s = Sector(37.72999, -122.44760, 1000, 0, 90)
    # Tile38's recorded WITHIN ... SECTOR answer includes point1 and point2.
    assert s.contains_geom(shapely.Point(-122.4412, 37.7335))
    assert s.contains_geom(shapely.Point(-122.44121, 37.7335))
    assert not s.contains_geom(shapely.Point(-122.4500, 37.7335))  # west of north
    line = shapely.LineString([(-122.4408378, 37.7341129), (-122.4408378, 37.733)])
    assert s.contains_geom(line) and s.intersects_geom(line)
    assert s.intersects_geom(shapely.box(-122.46, 37.72, -122.40, 37.74))
    assert not s.contains_geom(shapely.box(-122.46, 37.72, -122.40, 37.74))


def test_shape_area_of_a_collection() -> None:
    shape_ = parse_geojson(
        '{"type":"GeometryCollection","geometries":['
        '{"type":"Polygon","coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]]]},'
        '{"type":"Polygon","coordinates":[[[5,5],[15,5],[15,15],[5,15],[5,5]]]}]}'
    )
    area = area_from_geojson(shape_)
    assert isinstance(area, ShapeArea)
    assert area.bbox == (0, 0, 15, 15)
    assert area.contains_points(
        np.array([1, 12, 20]), np.array([1, 12, 20])
    ).tolist() == [
        True,
        True,
        False,
    ]
    # Covered only by the two parts together.
    assert area.contains_geom(shapely.box(6, 1, 9, 12))
    assert not area.contains_geom(shapely.box(1, 1, 12, 12))
