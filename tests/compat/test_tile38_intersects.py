"""INTERSECTS over every geometry kind, holes, CLIPBY, tiles, hashes and outputs,
as Tile38 1.37.0 answered. Ids are compared sorted where Tile38's order is its
index's."""

from __future__ import annotations

from tests.compat.helpers import call_error, jcall, same_json, sorted_page
from tests.compat.shapes import (
    BLOCK,
    HOLED_BLOCK,
    JAGGED,
    LINE,
    NORTH_BOX,
    SF_IDS,
    TWO_BLOCKS,
)
from tests.conftest import RawClient

# Narrower than WITHIN's neighbourhood: its south edge cuts through the block
# objects, which still intersect it.
CUT_NEIGHBOURHOOD = (
    '{"type":"Polygon","coordinates":[[[-122.44126439094543,37.732906137107],'
    "[-122.43980526924135,37.732906137107],[-122.43980526924135,37.73421283683962],"
    "[-122.44126439094543,37.73421283683962],[-122.44126439094543,37.732906137107]]]}"
)


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


def test_intersects_polygon_with_every_geometry_kind(c: RawClient) -> None:
    _every_kind(c)
    reply = c.call("INTERSECTS", "mykey", "IDS", "OBJECT", CUT_NEIGHBOURHOOD)
    assert sorted_page(reply) == (0, SF_IDS)


def test_intersects_sector(c: RawClient) -> None:
    _every_kind(c)
    sector = ("SECTOR", "37.72999", "-122.44760", "1000", "0", "90")
    assert sorted_page(c.call("INTERSECTS", "mykey", "IDS", *sector)) == (0, SF_IDS)


def test_intersects_sector_with_equal_bearings_is_refused(c: RawClient) -> None:
    sector = ("SECTOR", "37.72999", "-122.44760", "1000", "0", "0")
    assert (
        call_error(c, "INTERSECTS", "mykey", "IDS", *sector)
        == "ERR equal bearings (0 == 0), use CIRCLE instead"
    )


def test_intersects_the_whole_world_counts_everything(c: RawClient) -> None:
    _every_kind(c)
    whole = ("BOUNDS", "-90", "-180", "90", "180")
    assert c.call("INTERSECTS", "mykey", "COUNT", *whole) == 8


def _four_points_and_a_jagged_area(c: RawClient) -> None:
    for oid, lat, lon in (
        ("point1", "37.73963454585715", "-122.4810791015625"),
        ("point2", "37.75130811419222", "-122.47438430786133"),
        ("point3", "37.74816932695052", "-122.47713088989258"),
        ("point4", "37.74503040657439", "-122.47571468353271"),
    ):
        assert c.call("SET", "mykey", oid, "POINT", lat, lon) == "OK"
    assert c.call("SET", "other", "jagged", "OBJECT", JAGGED) == "OK"


def test_intersects_an_object_fetched_with_get(c: RawClient) -> None:
    _four_points_and_a_jagged_area(c)
    reply = c.call("INTERSECTS", "mykey", "IDS", "GET", "other", "jagged")
    assert sorted_page(reply) == (0, ["point1", "point4"])


def test_intersects_bounds(c: RawClient) -> None:
    _four_points_and_a_jagged_area(c)
    reply = c.call("INTERSECTS", "mykey", "IDS", *NORTH_BOX)
    assert sorted_page(reply) == (0, ["point2", "point3", "point4"])


def test_intersects_with_clipby(c: RawClient) -> None:
    _four_points_and_a_jagged_area(c)
    area = ("GET", "other", "jagged")
    assert c.call("INTERSECTS", "mykey", "IDS", *area, "CLIPBY", *NORTH_BOX) == [
        0,
        ["point4"],
    ]


SQUARE_WITH_HOLE = (
    '{"type":"Polygon","coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]],'
    "[[4,4],[6,4],[6,6],[4,6],[4,4]]]}"
)
PLAIN_SQUARE = '{"type":"Polygon","coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]]]}'
BIG = '{"type":"Polygon","coordinates":[[[-1,-1],[11,-1],[11,11],[-1,11],[-1,-1]]]}'
IN_HOLE = (
    '{"type":"Polygon","coordinates":'
    "[[[4.5,4.5],[5.5,4.5],[5.5,5.5],[4.5,5.5],[4.5,4.5]]]}"
)


def _hole_scene(c: RawClient) -> None:
    writes = [
        ("in", "FIELD", "w", "1", "POINT", "2", "2"),
        ("hole", "POINT", "5", "5"),
        ("out", "POINT", "20", "20"),
        ("big", "OBJECT", BIG),
        ("inhole", "OBJECT", IN_HOLE),
    ]
    for oid, *rest in writes:
        assert c.call("SET", "pts", oid, *rest) == "OK"


def test_objects_inside_a_hole_do_not_intersect(c: RawClient) -> None:
    _hole_scene(c)
    reply = c.call("INTERSECTS", "pts", "IDS", "OBJECT", SQUARE_WITH_HOLE)
    assert sorted_page(reply) == (0, ["big", "in"])


def test_without_the_hole_they_do(c: RawClient) -> None:
    _hole_scene(c)
    assert c.call("INTERSECTS", "pts", "COUNT", "OBJECT", PLAIN_SQUARE) == 4


def test_within_a_stored_polygon_includes_itself(c: RawClient) -> None:
    _hole_scene(c)
    reply = c.call("WITHIN", "pts", "IDS", "GET", "pts", "big")
    assert sorted_page(reply) == (0, ["big", "hole", "in", "inhole"])


def test_points_output_with_fields(c: RawClient) -> None:
    _hole_scene(c)
    match = ("MATCH", "in", "POINTS", "OBJECT", SQUARE_WITH_HOLE)
    assert c.call("INTERSECTS", "pts", *match) == [0, [["in", ["2", "2"], ["w", "1"]]]]


def test_bounds_output_of_a_polygon(c: RawClient) -> None:
    _hole_scene(c)
    match = ("MATCH", "inhole", "BOUNDS", "BOUNDS", "0", "0", "10", "10")
    assert c.call("INTERSECTS", "pts", *match) == [
        0,
        [["inhole", [["4.5", "4.5"], ["5.5", "5.5"]]]],
    ]


def test_hashes_output(c: RawClient) -> None:
    _hole_scene(c)
    match = ("MATCH", "out", "HASHES", "4", "BOUNDS", "19", "19", "21", "21")
    assert c.call("INTERSECTS", "pts", *match) == [0, [["out", "s7w1"]]]


def test_intersects_a_geohash_cell(c: RawClient) -> None:
    _hole_scene(c)
    assert c.call("INTERSECTS", "pts", "IDS", "HASH", "s7w1") == [0, ["out"]]


def test_intersects_tile_zero_covers_the_world(c: RawClient) -> None:
    _hole_scene(c)
    reply = c.call("INTERSECTS", "pts", "NOFIELDS", "IDS", "TILE", "0", "0", "0")
    assert sorted_page(reply) == (0, ["big", "hole", "in", "inhole", "out"])


def test_json_objects_with_fields(c: RawClient) -> None:
    _hole_scene(c)
    jcall(c, "OUTPUT", "json")
    same_json(
        jcall(c, "INTERSECTS", "pts", "MATCH", "in", "OBJECT", SQUARE_WITH_HOLE),
        {
            "ok": True,
            "fields": ["w"],
            "objects": [
                {
                    "id": "in",
                    "object": {"type": "Point", "coordinates": [2, 2]},
                    "fields": [1],
                }
            ],
            "count": 1,
            "cursor": 0,
        },
    )


def test_json_ids(c: RawClient) -> None:
    _hole_scene(c)
    jcall(c, "OUTPUT", "json")
    body = jcall(c, "INTERSECTS", "pts", "IDS", "OBJECT", SQUARE_WITH_HOLE)
    body["ids"].sort()
    same_json(body, {"ok": True, "ids": ["big", "in"], "count": 2, "cursor": 0})
