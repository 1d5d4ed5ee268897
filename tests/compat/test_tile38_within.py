"""WITHIN over every geometry kind, holes, CLIPBY and JSON outputs, as Tile38
1.37.0 answered. Result order comes from Tile38's index, so ids are compared as
sets (sorted) unless a single id is expected."""

from __future__ import annotations

from tests.compat.helpers import call_error, jcall, same_json, sorted_page
from tests.compat.shapes import (
    BLOCK,
    EAST_BOX,
    HOLED_BLOCK,
    JAGGED,
    LINE,
    NEIGHBOURHOOD,
    NORTH_BOX,
    SF_IDS,
    TWO_BLOCKS,
)
from tests.conftest import RawClient


def _every_kind(c: RawClient) -> None:
    writes = [
        ("point1", "POINT", "37.7335", "-122.4412"),
        ("point2", "POINT", "37.7335", "-122.44121"),
        ("line3", "OBJECT", LINE),
        ("poly4", "OBJECT", BLOCK),
        ("multipoly5", "OBJECT", TWO_BLOCKS),
        ("point6", "POINT", "-5", "5"),
        ("point7", "POINT", "33", "21"),
        ("poly8", "OBJECT", HOLED_BLOCK),
    ]
    for oid, *obj in writes:
        assert c.call("SET", "mykey", oid, *obj) == "OK"


def test_within_polygon_holds_every_geometry_kind_inside(c: RawClient) -> None:
    _every_kind(c)
    assert sorted_page(c.call("WITHIN", "mykey", "IDS", "OBJECT", NEIGHBOURHOOD)) == (
        0,
        SF_IDS,
    )
    assert c.call("WITHIN", "mykey", "COUNT", "OBJECT", NEIGHBOURHOOD) == 6


def test_within_sector(c: RawClient) -> None:
    _every_kind(c)
    sector = ("SECTOR", "37.72999", "-122.44760", "1000", "0", "90")
    assert sorted_page(c.call("WITHIN", "mykey", "IDS", *sector)) == (0, SF_IDS)


def test_sector_with_equal_bearings_is_refused(c: RawClient) -> None:
    sector = ("SECTOR", "37.72999", "-122.44760", "1000", "0", "0")
    assert (
        call_error(c, "WITHIN", "mykey", "IDS", *sector)
        == "ERR equal bearings (0 == 0), use CIRCLE instead"
    )


def test_within_bounds(c: RawClient) -> None:
    _every_kind(c)
    bounds = ("BOUNDS", "-10", "0", "40", "30")
    assert sorted_page(c.call("WITHIN", "mykey", "IDS", *bounds)) == (
        0,
        ["point6", "point7"],
    )


def test_within_on_a_missing_key_is_empty(c: RawClient) -> None:
    assert c.call("WITHIN", "nokey", "IDS", "BOUNDS", "-10", "0", "40", "30") == [0, []]


# lon/lat square 0..10 with a hole 4..6; POINT arguments are lat lon
SQUARE = "[[0,0],[10,0],[10,10],[0,10],[0,0]]"
HOLE = "[[4,4],[6,4],[6,6],[4,6],[4,4]]"
SQUARE_WITH_HOLE = '{"type":"Polygon","coordinates":[' + SQUARE + "," + HOLE + "]}"
PLAIN_SQUARE = '{"type":"Polygon","coordinates":[' + SQUARE + "]}"
BESIDE_HOLE = '{"type":"Polygon","coordinates":[[[1,1],[3,1],[3,3],[1,3],[1,1]]]}'
OVER_HOLE = '{"type":"Polygon","coordinates":[[[3,3],[7,3],[7,7],[3,7],[3,3]]]}'
CORNER_AND_FAR_SQUARES = (
    '{"type":"MultiPolygon","coordinates":['
    "[[[0,0],[2.5,0],[2.5,2.5],[0,2.5],[0,0]]],"
    "[[[19,19],[22,19],[22,22],[19,22],[19,19]]]]}"
)


def _around_a_hole(c: RawClient) -> None:
    writes = [
        ("in", "POINT", "2", "2"),
        ("hole", "POINT", "5", "5"),
        ("out", "POINT", "20", "20"),
        ("edge_poly", "OBJECT", BESIDE_HOLE),
        ("across_hole", "OBJECT", OVER_HOLE),
    ]
    for oid, *obj in writes:
        assert c.call("SET", "pts", oid, *obj) == "OK"


def test_within_excludes_what_lies_in_or_across_a_hole(c: RawClient) -> None:
    _around_a_hole(c)
    assert sorted_page(c.call("WITHIN", "pts", "IDS", "OBJECT", SQUARE_WITH_HOLE)) == (
        0,
        ["edge_poly", "in"],
    )


def test_within_the_same_square_without_its_hole(c: RawClient) -> None:
    _around_a_hole(c)
    assert sorted_page(c.call("WITHIN", "pts", "IDS", "OBJECT", PLAIN_SQUARE)) == (
        0,
        ["across_hole", "edge_poly", "hole", "in"],
    )


def test_intersects_keeps_what_crosses_a_hole(c: RawClient) -> None:
    _around_a_hole(c)
    reply = c.call("INTERSECTS", "pts", "IDS", "OBJECT", SQUARE_WITH_HOLE)
    assert sorted_page(reply) == (0, ["across_hole", "edge_poly", "in"])


def test_within_and_intersects_a_multipolygon(c: RawClient) -> None:
    _around_a_hole(c)
    within = c.call("WITHIN", "pts", "IDS", "OBJECT", CORNER_AND_FAR_SQUARES)
    assert sorted_page(within) == (0, ["in", "out"])
    crossing = c.call("INTERSECTS", "pts", "IDS", "OBJECT", CORNER_AND_FAR_SQUARES)
    assert sorted_page(crossing) == (0, ["edge_poly", "in", "out"])


def _four_points_and_a_jagged_area(c: RawClient) -> None:
    for oid, foo, lat, lon in (
        ("point1", "1", "37.73963454585715", "-122.4810791015625"),
        ("point2", "2", "37.75130811419222", "-122.47438430786133"),
        ("point3", "1", "37.74816932695052", "-122.47713088989258"),
        ("point4", "2", "37.74503040657439", "-122.47571468353271"),
    ):
        args = ("SET", "mykey", oid, "FIELD", "foo", foo, "POINT", lat, lon)
        assert c.call(*args) == "OK"
    assert c.call("SET", "other", "jagged", "OBJECT", JAGGED) == "OK"


def test_within_an_object_fetched_with_get(c: RawClient) -> None:
    _four_points_and_a_jagged_area(c)
    reply = c.call("WITHIN", "mykey", "IDS", "GET", "other", "jagged")
    assert sorted_page(reply) == (0, ["point1", "point4"])


def test_within_a_box_that_clips_the_area(c: RawClient) -> None:
    _four_points_and_a_jagged_area(c)
    reply = c.call("WITHIN", "mykey", "IDS", *EAST_BOX)
    assert sorted_page(reply) == (0, ["point3", "point4"])


def test_clipby_keeps_only_what_is_in_both(c: RawClient) -> None:
    _four_points_and_a_jagged_area(c)
    area = ("GET", "other", "jagged")
    assert c.call("WITHIN", "mykey", "IDS", *area, "CLIPBY", *EAST_BOX) == [
        0,
        ["point4"],
    ]


def test_clipby_may_repeat(c: RawClient) -> None:
    _four_points_and_a_jagged_area(c)
    area = ("GET", "other", "jagged")
    clips = ("CLIPBY", *NORTH_BOX, "CLIPBY", *EAST_BOX)
    assert c.call("WITHIN", "mykey", "IDS", *area, *clips) == [0, ["point4"]]


def _for_json(c: RawClient) -> None:
    assert c.call("SET", "k", "a", "FIELD", "speed", "5", "POINT", "1", "1") == "OK"
    line = '{"type":"LineString","coordinates":[[2,2],[3,3]]}'
    assert c.call("SET", "k", "b", "OBJECT", line) == "OK"
    assert c.call("SET", "k", "c", "POINT", "50", "50") == "OK"
    jcall(c, "OUTPUT", "json")


BOX_0_5 = ("BOUNDS", "0", "0", "5", "5")


def test_json_ids_and_count(c: RawClient) -> None:
    _for_json(c)
    body = jcall(c, "WITHIN", "k", "IDS", *BOX_0_5)
    body["ids"].sort()
    same_json(body, {"ok": True, "ids": ["a", "b"], "count": 2, "cursor": 0})
    same_json(
        jcall(c, "WITHIN", "k", "COUNT", *BOX_0_5),
        {"ok": True, "count": 2, "cursor": 0},
    )


def test_json_bounds_of_a_line(c: RawClient) -> None:
    _for_json(c)
    box = {"sw": {"lat": 2, "lon": 2}, "ne": {"lat": 3, "lon": 3}}
    same_json(
        jcall(c, "WITHIN", "k", "MATCH", "b", "BOUNDS", *BOX_0_5),
        {"ok": True, "bounds": [{"id": "b", "bounds": box}], "count": 1, "cursor": 0},
    )


def test_json_point_of_a_line_is_its_center(c: RawClient) -> None:
    _for_json(c)
    same_json(
        jcall(c, "WITHIN", "k", "MATCH", "b", "POINTS", *BOX_0_5),
        {
            "ok": True,
            "points": [{"id": "b", "point": {"lat": 2.5, "lon": 2.5}}],
            "count": 1,
            "cursor": 0,
        },
    )


def test_json_objects_carry_field_values_in_name_order(c: RawClient) -> None:
    _for_json(c)
    same_json(
        jcall(c, "WITHIN", "k", "MATCH", "a", "OBJECTS", *BOX_0_5),
        {
            "ok": True,
            "fields": ["speed"],
            "objects": [
                {
                    "id": "a",
                    "object": {"type": "Point", "coordinates": [1, 1]},
                    "fields": [5],
                }
            ],
            "count": 1,
            "cursor": 0,
        },
    )


def test_json_hashes(c: RawClient) -> None:
    _for_json(c)
    same_json(
        jcall(c, "WITHIN", "k", "MATCH", "a", "HASHES", "6", *BOX_0_5),
        {
            "ok": True,
            "fields": ["speed"],
            "hashes": [{"id": "a", "hash": "s00twy", "fields": [5]}],
            "count": 1,
            "cursor": 0,
        },
    )
