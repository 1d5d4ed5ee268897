"""Key-level commands: KEYS patterns, SEARCH over strings, RENAME/RENAMENX and
BOUNDS, as Tile38 1.37.0 answered."""

from __future__ import annotations

from tests.compat.helpers import call_error, jcall, same_json
from tests.conftest import RawClient

HIGH_POINT = '{"type":"Point","coordinates":[-130,38,10]}'
LOW_POINT = '{"type":"Point","coordinates":[-110,25,-8]}'
ALL_KEYS = ["mykey11", "mykey22", "mykey31", "mykey310", "mykey42"]


def _some_keys(c: RawClient) -> None:
    writes = [
        ("mykey11", "myid4", "STRING", "value"),
        ("mykey22", "myid2", "HASH", "9my5xp7"),
        ("mykey22", "myid1", "OBJECT", HIGH_POINT),
        ("mykey11", "myid3", "OBJECT", LOW_POINT),
        ("mykey42", "myid2", "HASH", "9my5xp7"),
        ("mykey31", "myid4", "STRING", "value"),
        ("mykey310", "myid5", "STRING", "value"),
    ]
    for key, oid, kind, value in writes:
        assert c.call("SET", key, oid, kind, value) == "OK"


def test_keys_star_lists_every_key_in_byte_order(c: RawClient) -> None:
    _some_keys(c)
    assert c.call("KEYS", "*") == ALL_KEYS


def test_keys_wildcards_at_the_start_middle_and_end(c: RawClient) -> None:
    _some_keys(c)
    assert c.call("KEYS", "mykey4*") == ["mykey42"]
    assert c.call("KEYS", "mykey*1") == ["mykey11", "mykey31"]
    assert c.call("KEYS", "mykey*1*") == ["mykey11", "mykey31", "mykey310"]
    assert c.call("KEYS", "*2") == ["mykey22", "mykey42"]


def test_keys_without_wildcards_match_whole_names(c: RawClient) -> None:
    _some_keys(c)
    assert c.call("KEYS", "mykey") == []
    assert c.call("KEYS", "mykey31") == ["mykey31"]


def test_keys_negated_character_class(c: RawClient) -> None:
    _some_keys(c)
    assert c.call("KEYS", "mykey[^3]*") == ["mykey11", "mykey22", "mykey42"]


def test_keys_needs_a_pattern(c: RawClient) -> None:
    assert call_error(c, "KEYS") == "ERR wrong number of arguments for 'keys' command"


def test_keys_in_json_mode(c: RawClient) -> None:
    _some_keys(c)
    jcall(c, "OUTPUT", "json")
    same_json(jcall(c, "KEYS", "*"), {"ok": True, "keys": ALL_KEYS})


def _nine_strings(c: RawClient) -> None:
    for n in range(1, 10):
        args = ("SET", "mykey", f"id{n}", "FIELD", "foo", str(n), "STRING", f"bar{n}")
        assert c.call(*args) == "OK"


def test_search_pages_with_limit_and_cursor(c: RawClient) -> None:
    _nine_strings(c)
    assert c.call("SEARCH", "mykey", "LIMIT", "3", "IDS") == [3, ["id1", "id2", "id3"]]
    assert c.call("SEARCH", "mykey", "CURSOR", "3", "LIMIT", "3", "IDS") == [
        6,
        ["id4", "id5", "id6"],
    ]


def test_search_filters_on_fields(c: RawClient) -> None:
    _nine_strings(c)
    assert c.call("SEARCH", "mykey", "WHERE", "foo", "3", "5", "IDS") == [
        0,
        ["id3", "id4", "id5"],
    ]


def test_search_desc_orders_by_value_backwards(c: RawClient) -> None:
    _nine_strings(c)
    assert c.call("SEARCH", "mykey", "LIMIT", "3", "DESC", "IDS") == [
        3,
        ["id9", "id8", "id7"],
    ]


def test_search_match_applies_to_the_string_value(c: RawClient) -> None:
    _nine_strings(c)
    assert c.call("SEARCH", "mykey", "MATCH", "bar[12]", "IDS") == [0, ["id1", "id2"]]
    assert c.call("SEARCH", "mykey", "MATCH", "bar2") == [
        0,
        [["id2", "bar2", ["foo", "2"]]],
    ]


def test_search_count(c: RawClient) -> None:
    _nine_strings(c)
    assert c.call("SEARCH", "mykey", "COUNT") == 9


def _two_hashes(c: RawClient) -> None:
    assert c.call("SET", "mykey", "myid1", "HASH", "9my5xp7") == "OK"
    assert c.call("SET", "mykey", "myid2", "HASH", "9my5xp8") == "OK"


def test_rename_takes_exactly_two_keys(c: RawClient) -> None:
    assert (
        call_error(c, "RENAME", "foo", "mynewkey", "arg3")
        == "ERR wrong number of arguments for 'rename' command"
    )


def test_rename_moves_the_collection(c: RawClient) -> None:
    _two_hashes(c)
    assert c.call("RENAME", "mykey", "mynewkey") == "OK"
    assert c.call("SCAN", "mykey", "COUNT") == 0
    assert c.call("SCAN", "mynewkey", "COUNT") == 2


def test_rename_replaces_an_existing_target(c: RawClient) -> None:
    _two_hashes(c)
    c.call("RENAME", "mykey", "mynewkey")
    assert c.call("SET", "mykey", "myid3", "HASH", "9my5xp7") == "OK"
    assert c.call("RENAME", "mykey", "mynewkey") == "OK"
    assert c.call("SCAN", "mynewkey", "COUNT") == 1


def test_rename_of_a_missing_key(c: RawClient) -> None:
    assert call_error(c, "RENAME", "foo", "mynewkey") == "ERR key not found"
    jcall(c, "OUTPUT", "json")
    same_json(jcall(c, "RENAME", "foo2", "foo3"), {"ok": False, "err": "key not found"})


def test_renamenx_refuses_an_existing_target(c: RawClient) -> None:
    _two_hashes(c)
    c.call("SET", "mynewkey", "x", "HASH", "9my5xp7")
    assert c.call("RENAMENX", "mykey", "mynewkey") == 0
    assert c.call("RENAMENX", "mykey", "other") == 1
    assert c.call("SCAN", "other", "COUNT") == 2
    assert call_error(c, "RENAMENX", "foo", "bar") == "ERR key not found"


def test_rename_in_json_mode(c: RawClient) -> None:
    _two_hashes(c)
    jcall(c, "OUTPUT", "json")
    same_json(jcall(c, "RENAME", "mykey", "foo4"), {"ok": True})


def test_rename_refused_while_a_channel_watches_the_key(c: RawClient) -> None:
    # Needs SETCHAN (channels work in progress); Tile38 accepts a channel without
    # FENCE and then refuses to rename the key it watches.
    _two_hashes(c)
    c.call("RENAME", "mykey", "other")
    chan = ("SETCHAN", "mychan", "INTERSECTS", "other", "BOUNDS", "10", "10", "20")
    assert c.call(*chan, "20") == 1
    assert call_error(c, "RENAME", "other", "foo2") == "ERR key has channels set"
    assert call_error(c, "RENAMENX", "other", "foo2") == "ERR key has channels set"
    assert c.call("SCAN", "other", "COUNT") == 2


def test_bounds_of_a_missing_key_is_nil(c: RawClient) -> None:
    assert c.call("BOUNDS", "mykey") is None


def test_bounds_follow_points_as_they_come_and_go(c: RawClient) -> None:
    # BOUNDS answers lon lat pairs, unlike GET ... BOUNDS
    c.call("SET", "mykey", "myid1", "POINT", "33", "-115")
    assert c.call("BOUNDS", "mykey") == [["-115", "33"], ["-115", "33"]]
    c.call("SET", "mykey", "myid2", "POINT", "34", "-112")
    assert c.call("BOUNDS", "mykey") == [["-115", "33"], ["-112", "34"]]
    assert c.call("DEL", "mykey", "myid2") == 1
    assert c.call("BOUNDS", "mykey") == [["-115", "33"], ["-115", "33"]]


def test_bounds_cover_points_with_elevation(c: RawClient) -> None:
    c.call("SET", "mykey", "myid1", "POINT", "33", "-115")
    c.call("SET", "mykey", "myid3", "OBJECT", HIGH_POINT)
    c.call("SET", "mykey", "myid4", "OBJECT", LOW_POINT)
    assert c.call("BOUNDS", "mykey") == [["-130", "25"], ["-110", "38"]]


def test_bounds_takes_one_key(c: RawClient) -> None:
    assert (
        call_error(c, "BOUNDS", "mykey", "hello")
        == "ERR wrong number of arguments for 'bounds' command"
    )


def test_bounds_in_json_mode_is_a_polygon(c: RawClient) -> None:
    c.call("SET", "mykey", "a", "OBJECT", HIGH_POINT)
    c.call("SET", "mykey", "b", "OBJECT", LOW_POINT)
    jcall(c, "OUTPUT", "json")
    ring = [[-130, 25], [-110, 25], [-110, 38], [-130, 38], [-130, 25]]
    same_json(
        jcall(c, "BOUNDS", "mykey"),
        {"ok": True, "bounds": {"type": "Polygon", "coordinates": [ring]}},
    )
    same_json(jcall(c, "BOUNDS", "nada"), {"ok": False, "err": "key not found"})
