"""Crash test: SIGKILL a server in the middle of pipelined writes, restart, compare.

Several client threads each own their keys (``c<N>.k<J>`` plus ``c<N>.eph`` for
objects with a TTL of a second or less) and pipeline batches of writes chosen by
Hypothesis: SET with POINT/FIELD/EX, FSET, DEL, EXPIRE, PERSIST, DROP, RENAME. A
client waits for every reply of a batch before sending the next, so at any moment
its commands split into acknowledged ones (reply received) and at most one batch
sent but not (wholly) acknowledged.

A sequential model of each client's keys predicts every reply (checked against the
server while it runs, so the model is known to agree with the server) and the state
after every command. After SIGKILL at a Hypothesis-chosen moment and a restart on
the same directory, each client's keys must equal the model's state after some
prefix of its commands that contains every acknowledged one: acknowledged writes
are there with their exact value, fields and TTL (TTLs may have gone down, objects
whose time is up may be gone), and an unacknowledged write is either wholly there
(with everything before it) or not at all.

``HYPOTHESIS_PROFILE=long`` runs 300 crash points instead of 30.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hiredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ServerProc, start_server
from tests.durability.helpers import dump_state, is_error, point_of, resp, restart

NCLIENTS = 3
NKEYS = 3
NIDS = 5
NEPH = 3
MIN_CRASH_POINTS = 25
MAX_BATCHES = 20_000
WRITE_WINDOW = 1.2  # seconds of writing at most before the kill
LATS = ["40.5", "40.712345", "-33.86785", "0", "89.999999", "12.25", "-0.000001"]
LONS = ["-74.006", "151.20732", "0.5", "-179.999999", "2.3522", "179.5"]
FIELD_NAMES = ["speed", "fuel", "driver"]
FIELD_VALUES = ["0", "1", "2.5", "-7.125", "88", "1e-7", "red", "blue"]
LONG_TTLS = ["600", "1800.5", "3600"]
SHORT_TTLS = ["0.2", "0.5", "1"]

settings.register_profile(
    "durability-ci",
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.register_profile(
    "durability-long",
    max_examples=300,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
PROFILE = (
    "durability-long"
    if os.environ.get("HYPOTHESIS_PROFILE") == "long"
    else "durability-ci"
)


# -- the model -------------------------------------------------------------------

FieldValue = float | str


def field_value(text: str) -> FieldValue:
    """What the server stores for a field text: a finite number, else the text."""
    try:
        v = float(text)
    except ValueError:
        return text
    return v if math.isfinite(v) else text


@dataclass
class Obj:
    lat: float
    lon: float
    fields: dict[str, FieldValue]
    ttl: tuple[float, float] | None
    """(seconds, time.time() just before the command was sent), or None."""


Keys = dict[str, dict[str, Obj]]
Reply = str | int
"""An expected reply: "OK", an integer, or "error: <text>"."""


def apply(keys: Keys, cmd: list[str], sent_at: float) -> Reply:
    """Apply one command to ``keys`` as geofleetd does; the expected reply."""
    name = cmd[0]
    if name == "SET":
        key, oid = cmd[1], cmd[2]
        new_fields: list[tuple[str, FieldValue]] = []
        ttl: tuple[float, float] | None = None
        i = 3
        while cmd[i] != "POINT":
            if cmd[i] == "FIELD":
                new_fields.append((cmd[i + 1], field_value(cmd[i + 2])))
                i += 3
            else:  # EX
                ttl = (float(cmd[i + 1]), sent_at)
                i += 2
        lat, lon = float(cmd[i + 1]), float(cmd[i + 2])
        col = keys.setdefault(key, {})
        old = col.get(oid)
        fields = dict(old.fields) if old is not None else {}
        for fname, value in new_fields:
            if value == 0.0:
                fields.pop(fname, None)
            else:
                fields[fname] = value
        col[oid] = Obj(lat, lon, fields, ttl)
        return "OK"
    if name == "FSET":
        key, oid = cmd[1], cmd[2]
        if key not in keys:
            return "error: ERR key not found"
        obj = keys[key].get(oid)
        if obj is None:
            return "error: ERR id not found"
        pairs = [(cmd[j], field_value(cmd[j + 1])) for j in range(3, len(cmd), 2)]
        changed = sum(1 for n, v in pairs if obj.fields.get(n, 0.0) != v)
        for fname, value in pairs:
            if value == 0.0:
                obj.fields.pop(fname, None)
            else:
                obj.fields[fname] = value
        return changed
    if name == "DEL":
        key, oid = cmd[1], cmd[2]
        objects = keys.get(key)
        if objects is None or oid not in objects:
            return 0
        del objects[oid]
        if not objects:
            del keys[key]
        return 1
    if name == "EXPIRE":
        obj = keys.get(cmd[1], {}).get(cmd[2])
        if obj is None:
            return 0
        obj.ttl = (float(cmd[3]), sent_at)
        return 1
    if name == "PERSIST":
        obj = keys.get(cmd[1], {}).get(cmd[2])
        if obj is None or obj.ttl is None:
            return 0
        obj.ttl = None
        return 1
    if name == "DROP":
        return 1 if keys.pop(cmd[1], None) is not None else 0
    if name == "RENAME":
        if cmd[1] not in keys:
            return "error: ERR key not found"
        keys[cmd[2]] = keys.pop(cmd[1])
        return "OK"
    raise AssertionError(f"the model does not know {cmd}")


def reply_text(reply: Any) -> Reply:
    if is_error(reply):
        return f"error: {reply}"
    assert isinstance(reply, str | int), reply
    return reply


# -- comparing a recovered state with the model --------------------------------


def fields_of(flat: tuple[str, ...]) -> dict[str, FieldValue]:
    return {flat[i]: field_value(flat[i + 1]) for i in range(0, len(flat), 2)}


def mismatch(
    model: Keys,
    got: dict[str, dict[str, tuple[str, tuple[str, ...], int]]],
    eph_key: str,
    checked_at: float,
) -> str | None:
    """Why the server's keys ``got`` are not the model state ``model``, or None."""
    model_keys = {k for k, col in model.items() if k != eph_key and col}
    got_keys = {k for k in got if k != eph_key}
    if model_keys != got_keys:
        return f"keys {sorted(got_keys)} != model {sorted(model_keys)}"
    for key in sorted(model_keys | {eph_key}):
        want = model.get(key, {})
        have = got.get(key, {})
        short_lived = key == eph_key
        for oid in sorted(set(want) | set(have)):
            obj = want.get(oid)
            if obj is None:
                return f"{key}/{oid} is on the server, not in the model"
            entry = have.get(oid)
            if entry is not None and entry[2] == -2:
                entry = None  # its time came between SCAN and TTL
            if entry is None:
                if not short_lived:
                    return f"{key}/{oid} is missing"
                assert obj.ttl is not None
                secs, sent_at = obj.ttl
                if sent_at + secs > checked_at:
                    return f"{key}/{oid} vanished before its TTL of {secs} s"
                continue
            geojson, flat, ttl = entry
            if point_of(geojson) != (obj.lat, obj.lon):
                return f"{key}/{oid} is at {geojson}, model ({obj.lat}, {obj.lon})"
            if fields_of(flat) != obj.fields:
                return f"{key}/{oid} fields {flat} != model {obj.fields}"
            if obj.ttl is None:
                if ttl != -1:
                    return f"{key}/{oid} has TTL {ttl}, model none"
            else:
                secs, sent_at = obj.ttl
                low = secs - (checked_at - sent_at) - 1
                if not (low <= ttl <= secs):
                    return f"{key}/{oid} TTL {ttl} outside [{low:.1f}, {secs}]"
    return None


# -- the writers -----------------------------------------------------------------


@dataclass
class Writer:
    """One client: its command cycle, its model and what the server confirmed."""

    cid: int
    ops: list[list[str]]
    batch_sizes: list[int]
    state: Keys = field(default_factory=dict)
    """Model state after every acknowledged batch."""
    batch: list[Keys] = field(default_factory=list)
    """Model states after each command of the batch in flight (empty if none)."""
    acked_in_batch: int = 0
    acked: int = 0
    sent: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def eph_key(self) -> str:
        return f"c{self.cid}.eph"

    def candidates(self) -> list[Keys]:
        """States the server may hold for this client after the crash."""
        if not self.batch:
            return [self.state]
        states = [self.state, *self.batch]
        return states[self.acked_in_batch :]

    def run(self, sock: socket.socket, stop: threading.Event, deadline: float) -> None:
        reader = hiredis.Reader(encoding="utf-8")
        pos = 0
        try:
            for n in range(MAX_BATCHES):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                size = self.batch_sizes[n % len(self.batch_sizes)]
                cmds = [self.ops[(pos + j) % len(self.ops)] for j in range(size)]
                pos += size
                sent_at = time.time()
                work = copy.deepcopy(self.state)
                expected: list[Reply] = []
                states: list[Keys] = []
                for cmd in cmds:
                    expected.append(apply(work, cmd, sent_at))
                    states.append(copy.deepcopy(work))
                self.batch, self.acked_in_batch = states, 0
                self.sent += size
                sock.sendall(b"".join(resp(c) for c in cmds))
                for j in range(size):
                    reply = reader.gets()
                    while reply is False:
                        data = sock.recv(1 << 16)
                        if not data:
                            return
                        reader.feed(data)
                        reply = reader.gets()
                    got = reply_text(reply)
                    if got != expected[j]:
                        self.problems.append(
                            f"client {self.cid}: {cmds[j]} answered {got!r}, "
                            f"model {expected[j]!r}"
                        )
                    self.acked_in_batch = j + 1
                    self.acked += 1
                self.state, self.batch, self.acked_in_batch = states[-1], [], 0
        except OSError:
            return  # the server was killed
        finally:
            sock.close()


def keyname(cid: int, j: int) -> str:
    return f"c{cid}.k{j}"


def ops_for(cid: int) -> st.SearchStrategy[list[str]]:
    key = st.integers(0, NKEYS - 1).map(lambda j: keyname(cid, j))
    oid = st.integers(0, NIDS - 1).map(lambda i: f"o{i}")
    lat, lon = st.sampled_from(LATS), st.sampled_from(LONS)
    fields = st.lists(
        st.tuples(st.sampled_from(FIELD_NAMES), st.sampled_from(FIELD_VALUES)),
        max_size=3,
        unique_by=lambda p: p[0],
    )
    long_ttl = st.sampled_from(LONG_TTLS)

    def set_cmd(
        k: str, i: str, fs: list[tuple[str, str]], ex: str | None, la: str, lo: str
    ) -> list[str]:
        cmd = ["SET", k, i]
        for name, value in fs:
            cmd += ["FIELD", name, value]
        if ex is not None:
            cmd += ["EX", ex]
        return [*cmd, "POINT", la, lo]

    def fset_cmd(k: str, i: str, fs: list[tuple[str, str]]) -> list[str]:
        return ["FSET", k, i, *[x for pair in fs for x in pair]]

    def rename_cmd(a: int, b: int) -> list[str]:
        return ["RENAME", keyname(cid, a), keyname(cid, (a + b) % NKEYS)]

    sets = st.builds(set_cmd, key, oid, fields, st.none() | long_ttl, lat, lon)
    eph = st.builds(
        lambda i, ex, la, lo: [
            "SET",
            f"c{cid}.eph",
            f"e{i}",
            "EX",
            ex,
            "POINT",
            la,
            lo,
        ],
        st.integers(0, NEPH - 1),
        st.sampled_from(SHORT_TTLS),
        lat,
        lon,
    )
    return st.one_of(
        sets,
        sets,
        sets,
        eph,
        st.builds(fset_cmd, key, oid, fields.filter(bool)),
        st.builds(lambda k, i: ["DEL", k, i], key, oid),
        st.builds(lambda k, i, s: ["EXPIRE", k, i, s], key, oid, long_ttl),
        st.builds(lambda k, i: ["PERSIST", k, i], key, oid),
        st.builds(lambda k: ["DROP", k], key),
        st.builds(rename_cmd, st.integers(0, NKEYS - 1), st.integers(1, NKEYS - 1)),
    )


@st.composite
def plans(draw: st.DrawFn) -> list[tuple[list[list[str]], list[int]]]:
    out = []
    for cid in range(NCLIENTS):
        ops = draw(st.lists(ops_for(cid), min_size=1, max_size=60))
        sizes = draw(st.lists(st.integers(1, 64), min_size=1, max_size=8))
        out.append((ops, sizes))
    return out


# -- one crash point ---------------------------------------------------------------


@dataclass
class CrashRun:
    kill_after: int
    acked: int
    sent: int
    compacting: bool


def crash_once(
    base: Path,
    plan: list[tuple[list[list[str]], list[int]]],
    kill_after: int,
    jitter_us: int,
    compacting: bool,
) -> CrashRun:
    data_dir = Path(tempfile.mkdtemp(dir=base)) / "data"
    srv = start_server(data_dir, ["--fsync", "always"])
    writers = [Writer(cid, ops, sizes) for cid, (ops, sizes) in enumerate(plan)]
    stop = threading.Event()
    socks = []
    for _ in writers:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(sock)
    deadline = time.monotonic() + WRITE_WINDOW
    threads = [
        threading.Thread(target=w.run, args=(sock, stop, deadline), daemon=True)
        for w, sock in zip(writers, socks, strict=True)
    ]
    if compacting:
        threads.append(
            threading.Thread(
                target=shrink_loop, args=(srv, stop, deadline), daemon=True
            )
        )
    restarted: ServerProc | None = None
    try:
        for t in threads:
            t.start()
        while time.monotonic() < deadline:
            if sum(w.acked for w in writers) >= kill_after:
                break
            time.sleep(0.001)
        time.sleep(jitter_us / 1e6)
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(10)
        stop.set()
        for t in threads:
            t.join(15)
            assert not t.is_alive(), "a client thread did not end"
        problems = [p for w in writers for p in w.problems]
        assert not problems, "\n".join(problems[:20])

        restarted = restart(data_dir, ["--fsync", "always"])
        client = restarted.raw()
        try:
            state = dump_state(client)
        finally:
            client.close()
        checked_at = time.time()
        for w in writers:
            prefix = f"c{w.cid}."
            got = {k: v for k, v in state.items() if k.startswith(prefix)}
            reasons = [mismatch(s, got, w.eph_key, checked_at) for s in w.candidates()]
            assert any(r is None for r in reasons), (
                f"client {w.cid}: acknowledged {w.acked} of {w.sent} commands "
                f"({w.acked_in_batch} of the last batch of {len(w.batch)}); the "
                f"recovered state matches no allowed prefix: {reasons}"
            )
        assert "ready records_replayed=" in restarted.log_text()
        return CrashRun(
            kill_after,
            sum(w.acked for w in writers),
            sum(w.sent for w in writers),
            compacting,
        )
    finally:
        stop.set()
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait(10)
        if restarted is not None:
            assert restarted.stop() == 0
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def shrink_loop(srv: ServerProc, stop: threading.Event, deadline: float) -> None:
    """Ask for a compaction every 20 ms while the writers run."""
    try:
        client = srv.raw()
    except OSError:
        return
    try:
        for _ in range(1000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            client.call("AOFSHRINK")
            time.sleep(0.02)
    except OSError:
        return
    finally:
        client.close()


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    runs: list[CrashRun] = []

    @settings(settings.get_profile(PROFILE))
    @given(
        plan=plans(),
        kill_after=st.integers(0, 4000),
        jitter_us=st.integers(0, 3000),
        compacting=st.booleans(),
    )
    def one_crash(
        plan: list[tuple[list[list[str]], list[int]]],
        kill_after: int,
        jitter_us: int,
        compacting: bool,
    ) -> None:
        runs.append(crash_once(tmp_path, plan, kill_after, jitter_us, compacting))

    one_crash()
    lines = [
        f"kill_after={r.kill_after} acked={r.acked} unacked={r.sent - r.acked} "
        f"compacting={r.compacting}"
        for r in runs
    ]
    print(f"{len(runs)} crash points:\n" + "\n".join(lines))
    assert len(runs) >= MIN_CRASH_POINTS
    # Most crash points must come after real work: the kill lands while the
    # writers are running, not before the first reply.
    assert sum(1 for r in runs if r.acked > 0) >= MIN_CRASH_POINTS // 2
    assert sum(1 for r in runs if r.sent > r.acked) >= 1
