"""Sync before acknowledgement, seen in the system calls of a real server.

A SIGKILL can't show a missing fsync (the page cache outlives the process), so the
server runs under ``strace`` while two clients pipeline SETs, and the trace is
checked: every socket write that carries ``+OK`` must come after

1. a sync of every LMDB data file written so far: each ``write``/``pwrite64``/
   ``writev`` to a ``data.mdb`` must be followed by an ``fsync``/``fdatasync`` of
   that file (or ``msync``) before the reply, unless the write went through a
   descriptor opened with ``O_DSYNC``/``O_SYNC`` (LMDB writes its meta page that
   way after the data sync), and
2. at least one completed sync of a ``data.mdb`` after the last read from that
   client's socket (the commit of what was just read, not an older one).

Descriptors are mapped to files with ``strace -yy``; their open flags come from the
traced ``openat`` calls. Under ``--fsync always`` the trace must satisfy both; under
``--fsync no`` the same check must find violations, which shows it can fail.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import RawClient, ServerProc
from tests.durability.helpers import resp, serve_command, spawn_server

TRACED = (
    "fsync,fdatasync,msync,write,pwrite64,writev,pwritev,pwritev2,"
    "sendto,sendmsg,openat,close,recvfrom"
)
ROUNDS = 20
BATCH = 50

_LINE = re.compile(r"^(\d+)\s+(\d\d:\d\d:\d\d\.\d+)\s+(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_FD = re.compile(r"^(\d+)<([^>]*)>")
_RET = re.compile(r"\)\s+=\s+(-?\d+)(?:<([^>]*)>)?")
_DATA_WRITES = {"write", "pwrite64", "writev", "pwritev", "pwritev2"}
_SOCKET_WRITES = {"write", "writev", "sendto", "sendmsg"}


@dataclass
class Call:
    line: int
    time: str
    name: str
    args: str
    ret: int
    ret_target: str


@dataclass
class TraceCheck:
    violations: list[str] = field(default_factory=list)
    ok_writes: int = 0
    ok_bytes: int = 0
    data_syncs: int = 0
    data_writes: int = 0


def parse(text: str) -> list[Call]:
    """Completed calls in trace order; an interrupted call is placed where it
    finished (its ``resumed`` line)."""
    pending: dict[str, tuple[str, str]] = {}
    calls: list[Call] = []
    for n, raw in enumerate(text.splitlines(), 1):
        m = _LINE.match(raw)
        if m is None:
            continue
        pid, when, rest = m.groups()
        if rest.endswith("<unfinished ...>"):
            call = _CALL.match(rest)
            if call is not None:
                pending[pid] = (
                    call.group(1),
                    call.group(2)[: -len("<unfinished ...>")],
                )
            continue
        resumed = _RESUMED.match(rest)
        if resumed is not None:
            name, head = pending.pop(pid, (resumed.group(1), ""))
            args = head + resumed.group(2)
        else:
            call = _CALL.match(rest)
            if call is None:
                continue  # signals, exits
            name, args = call.groups()
        ret = _RET.search(args)
        if ret is None:
            continue
        calls.append(Call(n, when, name, args, int(ret.group(1)), ret.group(2) or ""))
    return calls


def check_trace(text: str) -> TraceCheck:
    """Apply rules 1 and 2 of the module doc to a whole trace."""
    result = TraceCheck()
    sync_fds: set[int] = set()  # descriptors opened with O_DSYNC / O_SYNC
    dirty: dict[str, int] = {}  # data file -> line of its oldest unsynced write
    last_sync = 0  # line of the last completed sync of a data file
    last_read: dict[str, int] = {}  # socket -> line of its last read
    for call in parse(text):
        if call.name == "openat":
            if call.ret >= 0 and re.search(r"\bO_(D)?SYNC\b", call.args):
                sync_fds.add(call.ret)
            elif call.ret >= 0:
                sync_fds.discard(call.ret)
            continue
        fd_match = _FD.match(call.args)
        if call.name == "msync" and call.ret == 0:
            dirty.clear()
            last_sync = call.line
            continue
        if fd_match is None:
            continue
        fd, target = int(fd_match.group(1)), fd_match.group(2)
        if call.name == "close":
            sync_fds.discard(fd)
            continue
        # the log's data file; a snapshot being written is not part of any
        # acknowledgement until a log commit points to it
        is_data = target.endswith("/data.mdb") and "/snapshots/" not in target
        if is_data and call.name in _DATA_WRITES and call.ret > 0:
            result.data_writes += 1
            if fd in sync_fds:
                if not dirty:
                    last_sync = call.line
            else:
                dirty.setdefault(target, call.line)
        elif is_data and call.name in ("fsync", "fdatasync") and call.ret == 0:
            result.data_syncs += 1
            dirty.pop(target, None)
            if not dirty:
                last_sync = call.line
        elif target.startswith("TCP") and call.name == "recvfrom" and call.ret > 0:
            last_read[target] = call.line
        elif (
            target.startswith("TCP")
            and call.name in _SOCKET_WRITES
            and call.ret > 0
            and '"+OK' in call.args
        ):
            result.ok_writes += 1
            result.ok_bytes += call.ret
            where = f"+OK reply at line {call.line} ({call.time})"
            for path, first in dirty.items():
                result.violations.append(
                    f"{where}: {path} was written at line {first} and not synced"
                )
            read_at = last_read.get(target, 0)
            if last_sync <= read_at:
                result.violations.append(
                    f"{where}: no sync of the data files since the request was "
                    f"read at line {read_at}"
                )
    return result


def child_pids(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def stop_traced(srv: ServerProc) -> None:
    """SIGTERM the traced server (strace's child), then wait for strace."""
    for pid in child_pids(srv.proc.pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        srv.proc.wait(20)
    except subprocess.TimeoutExpired:
        for pid in child_pids(srv.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        srv.proc.kill()
        srv.proc.wait(10)


def traced_run(tmp_path: Path, policy: str) -> TraceCheck:
    """Run the workload against a traced server with ``--fsync policy``."""
    data_dir = tmp_path / "data"
    trace = tmp_path / "strace.txt"
    cmd = [
        "strace",
        "-f",
        "-tt",
        "-yy",
        "-s",
        "24",
        "-e",
        f"trace={TRACED}",
        "-o",
        str(trace),
        *serve_command(data_dir, ["--fsync", policy]),
    ]
    srv = spawn_server(cmd, data_dir, timeout=60)
    try:
        a, b = RawClient(srv.port, timeout=30), RawClient(srv.port, timeout=30)
        for r in range(ROUNDS):
            batches = {
                name: [
                    ["SET", "fleet", f"{name}{r}-{i}", "POINT", "40.5", "-74"]
                    for i in range(BATCH)
                ]
                for name in ("a", "b")
            }
            a.send_raw(b"".join(resp(c) for c in batches["a"]))
            b.send_raw(b"".join(resp(c) for c in batches["b"]))
            assert [a.read() for _ in range(BATCH)] == ["OK"] * BATCH
            assert [b.read() for _ in range(BATCH)] == ["OK"] * BATCH
        a.close()
        b.close()
    finally:
        stop_traced(srv)
    return check_trace(trace.read_text(errors="replace"))


def test_every_ok_follows_a_sync_under_fsync_always(tmp_path: Path) -> None:
    result = traced_run(tmp_path, "always")
    assert result.violations == []
    # every reply was seen in the trace, and the commits really synced
    assert result.ok_bytes == 2 * ROUNDS * BATCH * len("+OK\r\n")
    assert result.ok_writes >= 2 * ROUNDS
    assert result.data_syncs >= ROUNDS
    assert result.data_writes >= ROUNDS


def test_the_check_fails_under_fsync_no(tmp_path: Path) -> None:
    result = traced_run(tmp_path, "no")
    assert result.ok_bytes == 2 * ROUNDS * BATCH * len("+OK\r\n")
    assert result.data_writes >= ROUNDS
    # no reply is preceded by a sync: both rules are broken for each
    assert len(result.violations) >= 2 * result.ok_writes
    assert any("not synced" in v for v in result.violations)
    assert any("no sync of the data files" in v for v in result.violations)
