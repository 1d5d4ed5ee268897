"""A commit that fails for another reason than a full map acknowledges nothing.

- An LMDB failure during the group commit (injected: ``lmdb.PanicError`` from
  ``AppendLog.append``) stops the server with a non-zero exit code and a log line
  naming the failure; no write of that batch, nor any later one, is answered, and
  a restart holds exactly the writes acknowledged before it.
- Bytes that are not UTF-8 (ids, field values) are stored and come back as sent,
  also after a restart: they once made the log refuse the record while the reply
  was already queued, so the client got ``OK`` for a write that was not logged.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import hiredis

from tests.conftest import start_server
from tests.durability.helpers import (
    is_error,
    pipeline,
    resp,
    restart,
    serve_command,
    spawn_server,
    wait_for,
)


def faulty_command(data_dir: Path, fault: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tests.durability.faulty_serve",
        str(fault),
        *serve_command(data_dir)[3:],
    ]


def test_lmdb_failure_in_commit_is_fatal_and_unacknowledged(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    fault = tmp_path / "fault"
    srv = spawn_server(faulty_command(data_dir, fault), data_dir)
    try:
        client = srv.raw()
        idle = srv.raw()
        before = [
            ["SET", "fleet", f"a{i}", "POINT", "40.5", str(-74 + i / 1000)]
            for i in range(200)
        ]
        assert pipeline(client, before) == ["OK"] * 200
        assert idle.call("PING") == "PONG"

        fault.touch()
        during = [["SET", "fleet", f"b{i}", "POINT", "41", "-73"] for i in range(100)]
        client.send_raw(b"".join(resp(c) for c in during))
        replies = []
        try:
            for _ in during:
                replies.append(client.read())
        except (ConnectionError, OSError):
            pass
        assert replies == [], f"a failed commit was answered: {replies[:5]}"
        assert idle.closed_by_peer(5.0)
        code = srv.proc.wait(15)
        assert code != 0
        text = srv.log_text()
        assert "commit_failed" in text and "injected LMDB failure" in text
        client.close()
        idle.close()
    finally:
        srv.stop(9)

    fault.unlink()
    again = restart(data_dir)
    try:
        r = again.raw()
        assert r.call("SCAN", "fleet", "COUNT") == 200
        assert r.call("GET", "fleet", "a199", "POINT") == ["40.5", "-73.801"]
        assert r.call("GET", "fleet", "b0") is None
        r.close()
    finally:
        assert again.stop() == 0


def _call(sock: socket.socket, reader: hiredis.Reader, *args: bytes) -> object:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    sock.sendall(b"".join(out))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reply = reader.gets()
        if reply is not False:
            return reply
        data = sock.recv(1 << 16)
        if not data:
            raise ConnectionError("closed")
        reader.feed(data)
    raise TimeoutError("no reply in 10 s")


def test_non_utf8_bytes_are_logged_and_survive_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    srv = start_server(data_dir)
    oid = b"truck-\xff\xfe"
    value = b"\xc3(bad"
    try:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        reader = hiredis.Reader()
        ok = _call(
            sock,
            reader,
            b"SET",
            b"fleet",
            oid,
            b"FIELD",
            b"note",
            value,
            b"POINT",
            b"40.5",
            b"-74",
        )
        assert not is_error(ok), ok
        assert ok == b"OK"
        assert (
            _call(sock, reader, b"SET", b"fleet", b"plain", b"POINT", b"1", b"2")
            == b"OK"
        )
        got = _call(sock, reader, b"GET", b"fleet", oid, b"WITHFIELDS", b"POINT")
        assert got == [[b"40.5", b"-74"], [b"note", value]]
        sock.close()
    finally:
        assert srv.stop() == 0
    again = restart(data_dir)
    try:
        sock = socket.create_connection(("127.0.0.1", again.port), timeout=10)
        reader = hiredis.Reader()
        got = _call(sock, reader, b"GET", b"fleet", oid, b"WITHFIELDS", b"POINT")
        assert got == [[b"40.5", b"-74"], [b"note", value]]
        assert _call(sock, reader, b"GET", b"fleet", b"plain", b"POINT") == [b"1", b"2"]
        sock.close()
    finally:
        assert again.stop() == 0


def test_write_refused_during_compaction_stays_undone(tmp_path: Path) -> None:
    """A write answered -OOM while a compaction is pending must not reach the
    snapshot: the snapshot is taken from the state as of the compaction's start,
    not from objects the refused write touched and the rollback then replaced."""
    data_dir = tmp_path / "data"
    fault = tmp_path / "fault"
    env = {**os.environ, "GEOFLEETD_TEST_SNAPSHOT_DELAY": "1.0"}
    srv = spawn_server(faulty_command(data_dir, fault), data_dir, env=env)
    try:
        c = srv.raw()
        first = ["SET", "fleet", "a", "FIELD", "speed", "10", "POINT", "40.5", "-74"]
        assert c.call(*first) == "OK"
        assert c.call("AOFSHRINK") == "OK"  # its snapshot waits 1 s to read
        fault.write_text("full")
        refused = [
            c.call("FSET", "fleet", "a", "speed", "99"),
            c.call("SET", "fleet", "a", "FIELD", "speed", "98", "POINT", "1", "1"),
        ]
        assert all(is_error(r) and str(r).startswith("OOM ") for r in refused), refused
        fault.unlink()
        assert c.call("FGET", "fleet", "a", "speed") == "10"
        assert wait_for(lambda: " compacted " in srv.log_text(), 20)
        assert c.call("SET", "fleet", "b", "POINT", "1", "2") == "OK"
        c.close()
    finally:
        assert srv.stop() == 0
    again = restart(data_dir)
    try:
        c = again.raw()
        assert c.call("FGET", "fleet", "a", "speed") == "10"
        assert c.call("GET", "fleet", "a", "POINT") == ["40.5", "-74"]
        assert c.call("GET", "fleet", "b", "POINT") == ["1", "2"]
        c.close()
    finally:
        assert again.stop() == 0
