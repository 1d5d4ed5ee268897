"""Regressions from a newcomer's attack on a fresh install (issue #2)."""

from __future__ import annotations

import socket
import time

import pytest
import redis

from tests.conftest import ServerProc


def test_non_utf8_argument_in_an_error_keeps_every_reply(server: ServerProc) -> None:
    raw = server.raw()
    other = server.client()
    raw.send_raw(
        b"*2\r\n$4\r\nECHO\r\n$3\r\none\r\n"
        b"*6\r\n$3\r\nSET\r\n$5\r\nfleet\r\n$1\r\nx\r\n$5\r\nPOINT\r\n$1\r\n\xff\r\n"
        b"$1\r\n1\r\n"
        b"*1\r\n$2\r\n\xff\xfe\r\n"
        b"*2\r\n$4\r\nECHO\r\n$5\r\nthree\r\n"
    )
    assert raw.read() == "one"
    assert "invalid argument" in str(raw.read())
    assert "unknown command" in str(raw.read())
    assert raw.read() == "three"
    assert other.execute_command("PING") == "PONG"


def test_non_utf8_id_round_trips_in_json_mode(server: ServerProc) -> None:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(
        b"*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nid\xff\r\n$5\r\nPOINT\r\n"
        b"$1\r\n1\r\n$1\r\n2\r\n"
        b"*2\r\n$6\r\nOUTPUT\r\n$4\r\njson\r\n"
        b"*3\r\n$4\r\nSCAN\r\n$1\r\nk\r\n$3\r\nIDS\r\n"
    )
    data = b""
    deadline = time.monotonic() + 5
    while b'"count":1' not in data and time.monotonic() < deadline:
        data += s.recv(65536)
    s.close()
    assert data.startswith(b"+OK\r\n")
    assert b'"ids":["id\xff"]' in data and b'"count":1' in data


def test_huge_multibulk_header_is_refused_without_stalling(server: ServerProc) -> None:
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"*2147483647\r\n")
    s.settimeout(5)
    assert b"invalid multibulk length" in s.recv(100)
    s.close()
    t = time.perf_counter()
    assert server.client().execute_command("PING") == "PONG"
    assert time.perf_counter() - t < 1.0


def test_readonly_and_config_stay_in_step(r: redis.Redis) -> None:
    assert r.execute_command("CONFIG", "SET", "read_only", "yes") == "OK"
    assert r.execute_command("READONLY", "no") == "OK"
    assert r.execute_command("CONFIG", "GET", "read-only") == ["read-only", "no"]
    assert r.execute_command("CONFIG", "SET", "log_level", "info") == "OK"
    assert r.execute_command("SET", "k", "a", "POINT", "1", "1") == "OK"
    with pytest.raises(redis.ResponseError, match="max_clients"):
        r.execute_command("CONFIG", "SET", "max_clients", "0")


@pytest.mark.parametrize(
    "cmd",
    [
        ["SET", "e", "b", "EX", "99999999999999999999", "POINT", "1", "1"],
        ["SET", "e", "b", "FIELD", "speed", "nan", "POINT", "1", "1"],
        ["SET", "e", "b", "FIELD", "speed", "inf", "POINT", "1", "1"],
        ["SET", "e", "b", "POINT", "1_0", "2"],
        ["SET", "e", "b", "POINT", " 1", "2"],
        ["SET", "e", "b", "POINT", "\u0661", "2"],
    ],
)
def test_loose_or_unbounded_numbers_are_refused(r: redis.Redis, cmd: list[str]) -> None:
    with pytest.raises(redis.ResponseError, match="invalid argument"):
        r.execute_command(*cmd)
    assert r.execute_command("GET", "e", "b") is None


def test_text_fields_are_in_no_numeric_range(r: redis.Redis) -> None:
    r.execute_command("SET", "f", "a", "FIELD", "speed", "abc", "POINT", "1", "1")
    r.execute_command("SET", "f", "b", "FIELD", "speed", "5", "POINT", "1", "1")
    assert r.execute_command("SCAN", "f", "WHERE", "speed", "0", "10", "IDS") == [
        0,
        ["b"],
    ]


def test_deep_where_nesting_is_a_clear_error(r: redis.Redis) -> None:
    r.execute_command("SET", "f", "a", "POINT", "1", "1")
    expr = "(" * 3000 + "speed > 1" + ")" * 3000
    with pytest.raises(redis.ResponseError, match="nesting too deep"):
        r.execute_command("SCAN", "f", "WHERE", expr, "IDS")
    assert r.execute_command("PING") == "PONG"
