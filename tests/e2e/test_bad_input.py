"""Bad input gets a clear -ERR, the connection stays open, nothing stored changes."""

from __future__ import annotations

import socket

import pytest
import redis

from tests.conftest import ServerProc

BAD_SETS = [
    (["SET", "fleet", "t1", "POINT", "91", "0"], "invalid argument '91'"),
    (["SET", "fleet", "t1", "POINT", "-90.5", "0"], "invalid argument '-90.5'"),
    (["SET", "fleet", "t1", "POINT", "0", "180.01"], "invalid argument '180.01'"),
    (["SET", "fleet", "t1", "POINT", "nan", "0"], "invalid argument 'nan'"),
    (["SET", "fleet", "t1", "POINT", "0", "inf"], "invalid argument 'inf'"),
    (["SET", "fleet", "t1", "POINT", "abc", "0"], "invalid argument 'abc'"),
    (["SET", "fleet", "t1", "POINT", "1"], "wrong number of arguments for 'set'"),
    (["SET", "fleet", "t1", "BLOB", "1", "2"], "invalid argument 'BLOB'"),
    (["SET", "fleet", "t1", "POINT", "1", "2", "extra"], "invalid argument 'extra'"),
    (
        ["SET", "fleet", "t1", "EX", "1", "EX", "2", "POINT", "1", "2"],
        "invalid argument 'EX'",
    ),
    (["SET", "fleet", "t1", "NX", "XX", "POINT", "1", "2"], "invalid argument 'XX'"),
    (["SET", "fleet", "t1", "OBJECT", "{not json"], "invalid"),
    (
        ["SET", "fleet", "t1", "OBJECT", '{"type":"Polygon","coordinates":[]}'],
        "invalid",
    ),
    (
        [
            "SET",
            "fleet",
            "t1",
            "OBJECT",
            '{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]}',
        ],
        "invalid",
    ),
    (
        [
            "SET",
            "fleet",
            "t1",
            "OBJECT",
            '{"type":"Polygon","coordinates":[[[0,0],[2,2],[2,0],[0,2],[0,0]]]}',
        ],
        "invalid",
    ),
    (
        ["SET", "fleet", "t1", "OBJECT", '{"type":"Point","coordinates":[0,95]}'],
        "invalid",
    ),
    (
        ["SET", "fleet", "t1", "OBJECT", '{"type":"Point","coordinates":[NaN,1]}'],
        "invalid",
    ),
    (
        ["SET", "fleet", "t1", "OBJECT", '{"type":"Blob","coordinates":[0,0]}'],
        "invalid",
    ),
    (["SET", "fleet", "t1", "BOUNDS", "10", "170", "20", "-170"], "antimeridian"),
    (["SET", "fleet", "t1", "HASH", "not!ahash"], "invalid"),
]


@pytest.mark.parametrize(("cmd", "message"), BAD_SETS)
def test_bad_set_is_refused_and_nothing_changes(
    r: redis.Redis, cmd: list[str], message: str
) -> None:
    r.execute_command("SET", "fleet", "t1", "FIELD", "speed", "7", "POINT", "40", "-74")
    before = r.execute_command("GET", "fleet", "t1", "WITHFIELDS")

    with pytest.raises(redis.ResponseError) as err:
        r.execute_command(*cmd)

    assert message in str(err.value)
    assert r.execute_command("GET", "fleet", "t1", "WITHFIELDS") == before
    assert r.execute_command("SCAN", "fleet", "COUNT") == 1
    assert r.execute_command("PING") == "PONG"  # same connection still serves


BAD_QUERIES = [
    (["NEARBY", "fleet", "POINT", "91", "0"], "invalid argument '91'"),
    (["NEARBY", "fleet", "BOGUS", "POINT", "1", "0"], "invalid argument 'BOGUS'"),
    (["WITHIN", "fleet", "BOUNDS", "1", "2", "3"], "wrong number of arguments"),
    (["WITHIN", "fleet", "CIRCLE", "1", "2", "-5"], "invalid argument '-5'"),
    (["WITHIN", "fleet", "OBJECT", "{"], "invalid"),
    (["INTERSECTS", "fleet", "GET", "nokey", "x"], "key not found"),
    (["INTERSECTS", "fleet", "SECTOR", "1", "1", "100", "0", "0"], "equal bearings"),
    (["SCAN", "fleet", "LIMIT", "-1"], "invalid argument '-1'"),
    (["SCAN", "fleet", "WHERE", "speed", "a", "b"], "invalid argument 'a'"),
    (["NOSUCH", "x"], "unknown command 'NOSUCH'"),
]


@pytest.mark.parametrize(("cmd", "message"), BAD_QUERIES)
def test_bad_queries_answer_errors(
    r: redis.Redis, cmd: list[str], message: str
) -> None:
    r.execute_command("SET", "fleet", "t1", "POINT", "40", "-74")
    with pytest.raises(redis.ResponseError) as err:
        r.execute_command(*cmd)
    assert message in str(err.value)
    assert r.execute_command("SCAN", "fleet", "IDS") == [0, ["t1"]]


def test_oversized_request_is_refused_then_closed(tmp_path: object) -> None:
    from tests.conftest import start_server

    srv = start_server(tmp_path / "d", ["--max-request-bytes", "100000"])  # type: ignore[operator]
    try:
        raw = srv.raw()
        raw.call("SET", "fleet", "keep", "POINT", "1", "2")
        big = b"x" * 200_000
        raw.send_raw(b"*4\r\n$3\r\nSET\r\n$5\r\nfleet\r\n$1\r\nz\r\n$200000\r\n" + big)
        reply = raw.read()
        assert isinstance(reply, hiredis_error_type())
        assert "larger than 100000" in str(reply)
        assert raw.closed_by_peer()
        other = srv.client()
        assert other.execute_command("GET", "fleet", "keep") == (
            '{"type":"Point","coordinates":[2,1]}'
        )
        assert other.execute_command("GET", "fleet", "z") is None
    finally:
        srv.stop()


def hiredis_error_type() -> type:
    import hiredis

    return hiredis.ReplyError


def test_abrupt_disconnect_mid_command_keeps_server_and_data(
    server: ServerProc,
) -> None:
    r = server.client()
    r.execute_command("SET", "fleet", "a", "POINT", "1", "2")
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"*6\r\n$3\r\nSET\r\n$5\r\nfleet\r\n$1\r\nb\r\n$5\r\nPOI")
        s.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        s.close()  # RST with a half-sent command
    assert r.execute_command("SCAN", "fleet", "IDS") == [0, ["a"]]
    assert r.execute_command("PING") == "PONG"


def test_broken_framing_answers_protocol_error(server: ServerProc) -> None:
    raw = server.raw()
    raw.send_raw(b"*2\r\n$3\r\nGET\r\n$x1\r\n")
    reply = raw.read()
    assert "Protocol error" in str(reply)
    assert raw.closed_by_peer()
    assert server.client().execute_command("PING") == "PONG"


def test_inline_commands_with_quotes(server: ServerProc) -> None:
    raw = server.raw()
    raw.send_raw(b'SET fleet "truck one" FIELD speed 5 POINT 33.5 -115.5\r\n')
    assert raw.read() == "OK"
    raw.send_raw(b"GET fleet 'truck one' POINT\r\n")
    assert raw.read() == ["33.5", "-115.5"]
