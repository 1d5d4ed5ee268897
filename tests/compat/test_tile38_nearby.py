"""NEARBY: nearest-first order, radius, LIMIT, MATCH and every output form, as
Tile38 1.37.0 answered. NEARBY's order is by distance, so it is compared exactly."""

from __future__ import annotations

from tests.compat.helpers import jcall, same_json
from tests.conftest import RawClient


def _six_points(c: RawClient) -> None:
    for oid, lat, lon in (
        ("1", "5", "5"),
        ("2", "19", "19"),
        ("3", "12", "19"),
        ("4", "-5", "5"),
        ("5", "33", "21"),
        ("6", "52", "13"),
    ):
        assert c.call("SET", "mykey", oid, "POINT", lat, lon) == "OK"


def test_points_come_nearest_first(c: RawClient) -> None:
    _six_points(c)
    assert c.call("NEARBY", "mykey", "LIMIT", "10", "POINTS", "POINT", "20", "20") == [
        0,
        [
            ["2", ["19", "19"]],
            ["3", ["12", "19"]],
            ["5", ["33", "21"]],
            ["1", ["5", "5"]],
            ["4", ["-5", "5"]],
            ["6", ["52", "13"]],
        ],
    ]


def test_radius_large_enough_for_all(c: RawClient) -> None:
    _six_points(c)
    nearby = ("NEARBY", "mykey", "LIMIT", "10", "IDS", "POINT", "20", "20", "4000000")
    assert c.call(*nearby) == [0, ["2", "3", "5", "1", "4", "6"]]


def test_limit_cuts_the_list_and_returns_a_cursor(c: RawClient) -> None:
    _six_points(c)
    assert c.call("NEARBY", "mykey", "LIMIT", "3", "IDS", "POINT", "20", "20") == [
        3,
        ["2", "3", "5"],
    ]


def test_count_within_a_radius(c: RawClient) -> None:
    _six_points(c)
    assert c.call("NEARBY", "mykey", "COUNT", "POINT", "20", "20", "1500000") == 3


def test_one_meter_radius_finds_nothing(c: RawClient) -> None:
    _six_points(c)
    assert c.call("NEARBY", "mykey", "IDS", "POINT", "20", "20", "1") == [0, []]


def _five_vehicles(c: RawClient) -> None:
    for n, oid in enumerate(("truck1", "truck2", "luck1", "luck2", "train1"), 1):
        lat, lon = f"33.000{n}", f"-112.000{n}"
        assert c.call("SET", "fleet", oid, "POINT", lat, lon) == "OK"


def _near_start(c: RawClient, *opts: str) -> object:
    start = ("POINT", "33.00005", "-112.00005", "100000")
    return c.call("NEARBY", "fleet", *opts, "IDS", *start)


def test_match_filters_ids_by_glob(c: RawClient) -> None:
    _five_vehicles(c)
    assert _near_start(c) == [0, ["truck1", "truck2", "luck1", "luck2", "train1"]]
    assert _near_start(c, "MATCH", "t*") == [0, ["truck1", "truck2", "train1"]]
    assert _near_start(c, "MATCH", "t*2") == [0, ["truck2"]]
    assert _near_start(c, "MATCH", "*2") == [0, ["truck2", "luck2"]]


NEAR = '{"type":"Point","coordinates":[-115,33]}'
FAR = '{"type":"Point","coordinates":[-115,33.01]}'


def _near_and_far(c: RawClient) -> None:
    assert c.call("SET", "k", "near", "FIELD", "f", "7", "POINT", "33", "-115") == "OK"
    assert c.call("SET", "k", "far", "POINT", "33.01", "-115") == "OK"


def test_ids_and_count_outputs(c: RawClient) -> None:
    _near_and_far(c)
    assert c.call("NEARBY", "k", "IDS", "POINT", "33", "-115") == [0, ["near", "far"]]
    assert c.call("NEARBY", "k", "COUNT", "POINT", "33", "-115") == 2


def test_points_output_appends_fields_only_where_set(c: RawClient) -> None:
    _near_and_far(c)
    assert c.call("NEARBY", "k", "POINTS", "POINT", "33", "-115") == [
        0,
        [["near", ["33", "-115"], ["f", "7"]], ["far", ["33.01", "-115"]]],
    ]


def test_bounds_output(c: RawClient) -> None:
    _near_and_far(c)
    assert c.call("NEARBY", "k", "BOUNDS", "POINT", "33", "-115") == [
        0,
        [
            ["near", [["33", "-115"], ["33", "-115"]], ["f", "7"]],
            ["far", [["33.01", "-115"], ["33.01", "-115"]]],
        ],
    ]


def test_hashes_output(c: RawClient) -> None:
    _near_and_far(c)
    assert c.call("NEARBY", "k", "HASHES", "5", "POINT", "33", "-115") == [
        0,
        [["near", "9my5x", ["f", "7"]], ["far", "9my5z"]],
    ]


def test_objects_output_without_fields(c: RawClient) -> None:
    _near_and_far(c)
    assert c.call("NEARBY", "k", "NOFIELDS", "OBJECTS", "POINT", "33", "-115") == [
        0,
        [["near", NEAR], ["far", FAR]],
    ]


def test_distance_in_meters_follows_the_point(c: RawClient) -> None:
    _near_and_far(c)
    nearby = ("NEARBY", "k", "DISTANCE", "NOFIELDS", "POINTS", "POINT", "33", "-115")
    assert c.call(*nearby, "2000") == [
        0,
        [
            ["near", ["33", "-115"], "0"],
            ["far", ["33.01", "-115"], "1111.9492664448107"],
        ],
    ]


def test_json_points_with_distance_and_fields(c: RawClient) -> None:
    _near_and_far(c)
    jcall(c, "OUTPUT", "json")
    same_json(
        jcall(c, "NEARBY", "k", "DISTANCE", "POINTS", "POINT", "33", "-115"),
        {
            "ok": True,
            "fields": ["f"],
            "points": [
                {
                    "id": "near",
                    "point": {"lat": 33, "lon": -115},
                    "fields": [7],
                    "distance": 0,
                },
                {
                    "id": "far",
                    "point": {"lat": 33.01, "lon": -115},
                    "fields": [0],
                    "distance": 1111.9492664448107,
                },
            ],
            "count": 2,
            "cursor": 0,
        },
    )


def test_json_count(c: RawClient) -> None:
    _near_and_far(c)
    jcall(c, "OUTPUT", "json")
    same_json(
        jcall(c, "NEARBY", "k", "COUNT", "POINT", "33", "-115"),
        {"ok": True, "count": 2, "cursor": 0},
    )
