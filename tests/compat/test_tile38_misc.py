"""PING, ECHO, HEALTHZ, STATS, TIMEOUT and CLIENT, as Tile38 1.37.0 answered."""

from __future__ import annotations

from tests.compat.helpers import call_error, jcall, same_json
from tests.conftest import RawClient


def test_ping_echo_and_healthz_in_resp(c: RawClient) -> None:
    assert c.call("PING") == "PONG"
    assert c.call("PING", "hello") == "hello"
    assert c.call("ECHO", "hey") == "hey"
    assert c.call("HEALTHZ") == "OK"


def test_healthz_takes_no_arguments(c: RawClient) -> None:
    assert (
        call_error(c, "HEALTHZ", "arg")
        == "ERR wrong number of arguments for 'healthz' command"
    )


def test_ping_and_healthz_in_json_mode(c: RawClient) -> None:
    jcall(c, "OUTPUT", "json")
    same_json(jcall(c, "PING"), {"ok": True, "ping": "pong"})
    same_json(jcall(c, "HEALTHZ"), {"ok": True})


def test_stats_of_a_missing_key_is_nil(c: RawClient) -> None:
    assert c.call("STATS", "mykey") == [None]


def test_stats_counts_objects_points_and_strings(c: RawClient) -> None:
    c.call("SET", "mykey", "myid", "STRING", "value")
    first, missing = c.call("STATS", "mykey", "mykey2")
    assert missing is None
    assert first[0] == "in_memory_size" and first[1].isdigit()
    assert first[2:] == ["num_objects", "1", "num_points", "0", "num_strings", "1"]


def test_stats_needs_a_key(c: RawClient) -> None:
    assert call_error(c, "STATS") == "ERR wrong number of arguments for 'stats' command"


def test_stats_in_json_mode(c: RawClient) -> None:
    c.call("SET", "mykey", "myid", "STRING", "value")
    c.call("SET", "mykey", "p", "POINT", "33", "-115")
    jcall(c, "OUTPUT", "json")
    body = jcall(c, "STATS", "mykey", "hello")
    assert list(body) == ["ok", "stats"] and body["ok"] is True
    found, missing = body["stats"]
    assert missing is None
    assert isinstance(found.pop("in_memory_size"), int)
    assert found == {"num_objects": 2, "num_points": 1, "num_strings": 1}


def _load_300(c: RawClient) -> None:
    # lat climbs from -85 and wraps after 170 steps; lon climbs one degree a step
    for n in range(300):
        lat, lon = -85 + n % 170, -175 + n
        args = ("SET", "big", f"id{n}", "FIELD", "foo", str(n % 3), "POINT")
        assert c.call(*args, str(lat), str(lon)) == "OK"


def test_timeout_aborts_a_long_scan(c: RawClient) -> None:
    _load_300(c)
    scan = ("SCAN", "big", "WHERE", "foo", "-1", "2", "COUNT")
    assert c.call(*scan) == 300
    assert call_error(c, "TIMEOUT", "0.000000001", *scan) == "ERR timeout"


def test_client_name_round_trip(c: RawClient) -> None:
    assert c.call("CLIENT", "getname") == ""
    assert c.call("CLIENT", "setname", "abc") == "OK"
    assert c.call("CLIENT", "getname") == "abc"
    jcall(c, "OUTPUT", "json")
    same_json(jcall(c, "CLIENT", "getname"), {"ok": True, "name": "abc"})


def test_client_needs_a_subcommand(c: RawClient) -> None:
    assert (
        call_error(c, "CLIENT") == "ERR wrong number of arguments for 'client' command"
    )
