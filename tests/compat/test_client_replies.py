"""Reply details that Tile38 clients (pyle38 among them) depend on, beyond the
recorded cases: structured field values, elevation, JSON document paths, BUFFER,
result order and the SERVER / INFO field sets. These run without PyPI; the full
pyle38 suite is in test_pyle38_suite.py."""

from __future__ import annotations

import json

from tests.compat.helpers import jcall, same_json
from tests.conftest import RawClient


def test_field_holding_a_json_object_is_json_in_json_mode(c: RawClient) -> None:
    doc = '{"height": 190, "name": "Tom"}'
    c.call("SET", "k", "a", "FIELD", "info", doc, "FIELD", "n", "2", "POINT", "1", "1")
    assert c.call("GET", "k", "a", "WITHFIELDS") == [
        '{"type":"Point","coordinates":[1,1]}',
        ["info", doc, "n", "2"],
    ]
    jcall(c, "OUTPUT", "json")
    body = jcall(c, "GET", "k", "a", "WITHFIELDS")
    assert body["fields"] == {"info": {"height": 190, "name": "Tom"}, "n": 2}
    found = jcall(c, "WITHIN", "k", "OBJECTS", "BOUNDS", "0", "0", "2", "2")
    assert found["fields"] == ["info", "n"]
    assert found["objects"][0]["fields"] == [{"height": 190, "name": "Tom"}, 2]


def test_text_that_only_looks_like_json_stays_a_string(c: RawClient) -> None:
    c.call("SET", "k", "a", "FIELD", "note", "{not json", "POINT", "1", "1")
    jcall(c, "OUTPUT", "json")
    assert jcall(c, "GET", "k", "a", "WITHFIELDS")["fields"] == {"note": "{not json"}


def test_elevation_appears_in_point_replies(c: RawClient) -> None:
    c.call("SET", "k", "a", "POINT", "1", "2", "3")
    c.call("SET", "k", "flat", "POINT", "1", "2.5")
    assert c.call("GET", "k", "a", "POINT") == ["1", "2", "3"]
    assert c.call("NEARBY", "k", "POINTS", "POINT", "1", "2") == [
        0,
        [["a", ["1", "2", "3"]], ["flat", ["1", "2.5"]]],
    ]
    jcall(c, "OUTPUT", "json")
    same_json(
        jcall(c, "GET", "k", "a", "POINT"),
        {"ok": True, "point": {"lat": 1, "lon": 2, "z": 3}},
    )
    same_json(
        jcall(c, "GET", "k", "flat", "POINT"),
        {"ok": True, "point": {"lat": 1, "lon": 2.5}},
    )


def test_ttl_in_json_mode_counts_down_from_ex(c: RawClient) -> None:
    c.call("SET", "k", "a", "EX", "5", "POINT", "1", "1")
    jcall(c, "OUTPUT", "json")
    ttl = jcall(c, "TTL", "k", "a")["ttl"]
    assert 4 < ttl < 5


def test_zero_size_bounds_are_stored_as_a_point(c: RawClient) -> None:
    assert c.call("SET", "zones", "spot", "BOUNDS", "1", "1", "1", "1") == "OK"
    assert c.call("GET", "zones", "spot") == '{"type":"Point","coordinates":[1,1]}'
    assert c.call("SET", "zones", "edge", "BOUNDS", "1", "1", "1", "2") == "OK"
    assert (
        c.call("GET", "zones", "edge")
        == '{"type":"LineString","coordinates":[[1,1],[2,1]]}'
    )
    stats = c.call("STATS", "zones")[0]
    assert stats[2:4] == ["num_objects", "2"]


def test_jget_of_a_missing_path_has_no_value_in_json_mode(c: RawClient) -> None:
    c.call("JSET", "user", "901", "name", "Tom")
    assert c.call("JDEL", "user", "901", "name") == 1
    assert c.call("JGET", "user", "901") == "{}"
    jcall(c, "OUTPUT", "json")
    same_json(jcall(c, "JGET", "user", "901", "name"), {"ok": True})


def test_jdel_errors_in_json_mode(c: RawClient) -> None:
    c.call("JSET", "user", "901", "name", "Tom")
    jcall(c, "OUTPUT", "json")
    same_json(
        jcall(c, "JDEL", "nokey", "x", "y"), {"ok": False, "err": "key not found"}
    )
    same_json(
        jcall(c, "JDEL", "user", "x", "y"), {"ok": False, "err": "path not found"}
    )
    same_json(
        jcall(c, "JDEL", "user", "901", "age"), {"ok": False, "err": "path not found"}
    )


def test_jset_minus_one_appends_and_a_geometry_stays_a_geometry(
    c: RawClient,
) -> None:
    line = '{"type":"LineString","coordinates":[[0,0],[1,1]]}'
    c.call("SET", "linestring", "1", "OBJECT", line)
    assert c.call("JSET", "linestring", "1", "coordinates.-1", "[2,2]", "RAW") == "OK"
    longer = '{"type":"LineString","coordinates":[[0,0],[1,1],[2,2]]}'
    assert c.call("JGET", "linestring", "1") == longer
    # still a line in the spatial index, not a string
    assert c.call("INTERSECTS", "linestring", "IDS", "POINT", "2", "2") == [0, ["1"]]
    assert c.call("JGET", "linestring", "1", "coordinates.2") == "[2,2]"


def test_jset_types_numbers_and_literals_but_not_other_text(c: RawClient) -> None:
    for path, value in (("n", "1.5"), ("t", "true"), ("z", "null"), ("s", '"q"')):
        c.call("JSET", "doc", "d", path, value)
    assert json.loads(c.call("JGET", "doc", "d")) == {
        "n": 1.5,
        "t": True,
        "z": None,
        "s": '"q"',
    }


def test_buffer_grows_the_search_area(c: RawClient) -> None:
    c.call("SET", "k", "pin", "POINT", "52.25", "13.37")
    # a 30 m square whose west edge is about 7 m east of the pin
    area = (
        '{"type":"Polygon","coordinates":[[[13.3701,52.2498],[13.3705,52.2498],'
        "[13.3705,52.2502],[13.3701,52.2502],[13.3701,52.2498]]]}"
    )
    assert c.call("WITHIN", "k", "COUNT", "OBJECT", area) == 0
    assert c.call("WITHIN", "k", "BUFFER", "10", "COUNT", "OBJECT", area) == 1
    assert c.call("INTERSECTS", "k", "BUFFER", "3", "COUNT", "OBJECT", area) == 0
    circle = ("CIRCLE", "52.25", "13.3703", "10")
    assert c.call("WITHIN", "k", "COUNT", *circle) == 0
    assert c.call("WITHIN", "k", "BUFFER", "20", "COUNT", *circle) == 1


def test_within_lists_objects_west_to_east(c: RawClient) -> None:
    east = '{"type":"Polygon","coordinates":[[[5,0],[6,0],[6,1],[5,1],[5,0]]]}'
    west = '{"type":"Polygon","coordinates":[[[1,0],[2,0],[2,1],[1,1],[1,0]]]}'
    c.call("SET", "k", "a-east", "OBJECT", east)
    c.call("SET", "k", "b-point", "POINT", "0.5", "3")
    c.call("SET", "k", "c-west", "OBJECT", west)
    assert c.call("WITHIN", "k", "IDS", "BOUNDS", "-1", "0", "2", "7") == [
        0,
        ["c-west", "b-point", "a-east"],
    ]


def test_server_reports_tile38_leader_fields(c: RawClient) -> None:
    c.call("SET", "k", "s", "STRING", "x")
    jcall(c, "OUTPUT", "json")
    stats = jcall(c, "SERVER")["stats"]
    for name in ("heap_released", "num_strings", "num_points", "threads", "pid"):
        assert isinstance(stats[name], int), name
    assert stats["num_strings"] == 1 and stats["read_only"] is False
    assert "caught_up" not in stats and "following" not in stats
    ext = jcall(c, "SERVER", "EXT")["stats"]
    assert ext["tile38_read_only"] is False
    assert ext["tile38_num_strings"] == 1
    assert ext["tile38_connected_slaves"] == 0 and ext["tile38_type"] == "leader"


def test_info_fields_are_whole_numbers(c: RawClient) -> None:
    jcall(c, "OUTPUT", "json")
    info = jcall(c, "INFO")["info"]
    for name in (
        "aof_current_rewrite_time_sec",
        "aof_enabled",
        "aof_last_rewrite_time_sec",
        "aof_rewrite_in_progress",
        "cluster_enabled",
        "connected_clients",
        "connected_slaves",
        "expired_keys",
        "total_messages_sent",
        "total_connections_received",
        "total_commands_processed",
        "uptime_in_seconds",
        "used_cpu_sys",
        "used_cpu_sys_children",
        "used_cpu_user",
        "used_cpu_user_children",
        "used_memory",
    ):
        assert isinstance(info[name], int), name
    assert info["role"] == "master"
    assert info["tile38_version"] == "1.37.0"
