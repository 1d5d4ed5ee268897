"""Shared pieces of the durability tests.

- ``restart``: start a server again on a data directory that already has a log,
  after moving the previous run's log file aside, so ``log_text()`` is this run's;
- ``spawn_server``: the same for another command line (under strace, or the
  fault-injecting ``faulty_serve``);
- ``run_server_once``: run ``geofleetd serve`` expecting it to exit by itself
  (refusing to start), with a time limit, returning exit code and output;
- ``resp``/``pipeline``: pipelined commands over one socket;
- ``dump_state``: every key's full ``SCAN`` output plus each object's TTL.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hiredis

from tests.conftest import ROOT, RawClient, ServerProc, start_server

ObjectState = tuple[str, tuple[str, ...], int]
"""(GeoJSON text, fields as a flat name/value tuple, TTL in whole seconds or -1)."""
State = dict[str, dict[str, ObjectState]]
"""key -> id -> ObjectState."""


def resp(args: list[str]) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def rotate_log(data_dir: Path) -> None:
    """Move the server log of ``data_dir`` aside (``.1``, ``.2``, ...)."""
    log_path = data_dir.parent / f"{data_dir.name}.server.log"
    if not log_path.exists():
        return
    for n in range(1, 10_000):
        target = log_path.with_name(f"{log_path.name}.{n}")
        if not target.exists():
            log_path.rename(target)
            return
    raise RuntimeError(f"too many rotated logs next to {log_path}")


def restart(data_dir: Path, extra: list[str] | None = None) -> ServerProc:
    """Start a server on ``data_dir`` (again) and wait until it is ready."""
    rotate_log(data_dir)
    return start_server(data_dir, extra)


def serve_command(data_dir: Path, extra: list[str] | None = None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "geofleetd",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--dir",
        str(data_dir),
        *(extra or []),
    ]


def run_server_once(
    data_dir: Path, extra: list[str] | None = None, timeout: float = 30.0
) -> tuple[int, str]:
    """Run a server that is expected to exit on its own; (exit code, output).

    A server that is still running after ``timeout`` seconds is killed and the
    exit code reported is the kill's (-9), which no test accepts as a refusal.
    """
    proc = subprocess.Popen(
        serve_command(data_dir, extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=str(ROOT),
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    return proc.returncode, out.decode(errors="replace")


def run_cli(args: list[str], timeout: float = 60.0) -> tuple[int, str]:
    """``python -m geofleetd ARGS``; (exit code, stdout + stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "geofleetd", *args],
        capture_output=True,
        cwd=str(ROOT),
        timeout=timeout,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")


def pipeline(client: RawClient, commands: list[list[str]]) -> list[Any]:
    """Send ``commands`` in one write and read every reply (errors as values)."""
    if not commands:
        return []
    client.send_raw(b"".join(resp(c) for c in commands))
    return [client.read() for _ in commands]


def pipeline_chunked(
    client: RawClient, commands: list[list[str]], chunk: int = 5000
) -> list[Any]:
    """``pipeline`` in slices of ``chunk`` commands (bounded socket buffers)."""
    out: list[Any] = []
    for i in range(0, len(commands), chunk):
        out += pipeline(client, commands[i : i + chunk])
    return out


def is_error(reply: Any) -> bool:
    return isinstance(reply, hiredis.ReplyError)


def scan_key(client: RawClient, key: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every object of ``key``: id -> (GeoJSON text, flat fields tuple)."""
    reply = client.call("SCAN", key, "LIMIT", "100000000")
    assert not is_error(reply), reply
    cursor, items = reply
    assert cursor == 0, f"SCAN {key} did not return everything: cursor {cursor}"
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for item in items:
        oid, obj = item[0], item[1]
        fields = tuple(item[2]) if len(item) > 2 else ()
        out[oid] = (obj, fields)
    return out


def dump_state(client: RawClient) -> State:
    """The whole database: every key's SCAN output and every object's TTL."""
    keys = client.call("KEYS", "*")
    assert not is_error(keys), keys
    state: State = {}
    for key in sorted(keys):
        objects = scan_key(client, key)
        ids = sorted(objects)
        ttls = pipeline_chunked(client, [["TTL", key, oid] for oid in ids])
        state[key] = {}
        for oid, ttl in zip(ids, ttls, strict=True):
            assert isinstance(ttl, int), (key, oid, ttl)
            obj, fields = objects[oid]
            state[key][oid] = (obj, fields, ttl)
    return state


def point_of(geojson: str) -> tuple[float, float]:
    """(lat, lon) of a GeoJSON Point text."""
    doc = json.loads(geojson)
    assert doc["type"] == "Point", geojson
    lon, lat = doc["coordinates"][:2]
    return float(lat), float(lon)


def assert_same_state(
    before: State, after: State, elapsed: float, what: str = "after restart"
) -> None:
    """``after`` holds exactly ``before``'s objects, values and fields; TTLs may
    have gone down by the ``elapsed`` seconds between the two reads (plus one for
    whole-second rounding), and nothing with a TTL left may be missing."""
    assert sorted(after) == sorted(before), f"keys differ {what}"
    for key, objects in before.items():
        got = after[key]
        missing = sorted(set(objects) - set(got))
        extra = sorted(set(got) - set(objects))
        assert not missing and not extra, (
            f"{what}: key {key}: missing ids {missing[:10]} ({len(missing)}), "
            f"unexpected ids {extra[:10]} ({len(extra)})"
        )
        for oid, (obj, fields, ttl) in objects.items():
            obj2, fields2, ttl2 = got[oid]
            assert (obj2, fields2) == (obj, fields), f"{what}: {key}/{oid}"
            if ttl == -1:
                assert ttl2 == -1, f"{what}: {key}/{oid} gained TTL {ttl2}"
            else:
                assert ttl - elapsed - 1 <= ttl2 <= ttl, (
                    f"{what}: {key}/{oid} TTL {ttl} became {ttl2} after {elapsed:.1f} s"
                )


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def spawn_server(
    cmd: list[str],
    data_dir: Path,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> ServerProc:
    """Start ``cmd`` (a serve command line with ``--port 0``) like
    ``start_server`` does and wait for its ``ready`` line."""
    rotate_log(data_dir)
    log_path = data_dir.parent / f"{data_dir.name}.server.log"
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, cwd=str(ROOT), env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        found = re.findall(r"listening addr=127\.0\.0\.1:(\d+)", text)
        if found and "ready records_replayed=" in text:
            return ServerProc(proc, int(found[-1]), data_dir, log_path, cmd)
        if proc.poll() is not None:
            raise RuntimeError(f"server exited at start:\n{text[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    proc.wait(10)
    raise RuntimeError(f"server did not become ready in {timeout} s")
