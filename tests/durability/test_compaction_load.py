"""Compaction while pipelined writers keep going loses nothing.

Three writer threads pipeline SET (with fields, some with a TTL), FSET XX and DEL
over their own ids. Phase 1 issues ``AOFSHRINK`` several times while they run;
phase 2 runs until the automatic compaction (``compact_ratio``/
``compact_min_records`` from a ``--config`` TOML file) fires on its own.
Afterwards the full state (every key's SCAN output, every TTL) must equal what
the writers' acknowledged commands imply, and equal it again after a SIGKILL that
lands right after one more ``AOFSHRINK``, and after a clean restart.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import RawClient, ServerProc, start_server
from tests.durability.helpers import (
    State,
    assert_same_state,
    dump_state,
    pipeline,
    point_of,
    restart,
    wait_for,
)

WRITERS = 3
IDS = 2000
BATCH = 200
PHASE1_SHRINKS = 4


@dataclass
class Expected:
    lat: str
    lon: str
    speed: str
    seq: str
    ttl: bool


@dataclass
class LoadWriter:
    wid: int
    objects: dict[str, Expected] = field(default_factory=dict)
    acked: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"fleet{self.wid}"

    def batch(
        self, rng: random.Random, n: int
    ) -> list[tuple[list[str], Expected | None]]:
        out: list[tuple[list[str], Expected | None]] = []
        for _ in range(BATCH):
            oid = f"v{rng.randrange(IDS)}"
            roll = rng.random()
            if roll < 0.8:
                e = Expected(
                    f"{rng.uniform(40.5, 40.9):.6f}",
                    f"{rng.uniform(-74.2, -73.7):.6f}",
                    str(rng.randrange(1, 120)),
                    str(n + 1),  # a field set to 0 is removed
                    rng.random() < 0.3,
                )
                cmd = [
                    "SET",
                    self.key,
                    oid,
                    "FIELD",
                    "speed",
                    e.speed,
                    "FIELD",
                    "seq",
                    e.seq,
                ]
                if e.ttl:
                    cmd += ["EX", "3600"]
                out.append(([*cmd, "POINT", e.lat, e.lon], e))
            elif roll < 0.9:
                out.append(
                    (["FSET", self.key, oid, "XX", "speed", str(n % 97 + 1)], None)
                )
            else:
                out.append((["DEL", self.key, oid], None))
        return out

    def apply(self, cmd: list[str], expected: Expected | None, reply: object) -> None:
        oid = cmd[2]
        if cmd[0] == "SET":
            assert expected is not None
            if reply != "OK":
                self.errors.append(f"{cmd} -> {reply!r}")
            self.objects[oid] = expected
        elif cmd[0] == "FSET":
            current = self.objects.get(oid)
            want = 0 if current is None or current.speed == cmd[5] else 1
            if reply != want:
                self.errors.append(f"{cmd} -> {reply!r}, expected {want}")
            if current is not None:
                current.speed = cmd[5]
        else:
            want = 1 if oid in self.objects else 0
            if reply != want:
                self.errors.append(f"{cmd} -> {reply!r}, expected {want}")
            self.objects.pop(oid, None)

    def run(self, port: int, stop: threading.Event, limit: float) -> None:
        rng = random.Random(1000 + self.wid)
        client = RawClient(port, timeout=30)
        try:
            for n in range(100_000):
                if stop.is_set() or time.monotonic() > limit:
                    return
                work = self.batch(rng, n)
                replies = pipeline(client, [cmd for cmd, _ in work])
                for (cmd, expected), reply in zip(work, replies, strict=True):
                    self.apply(cmd, expected, reply)
                    self.acked += 1
        finally:
            client.close()


def assert_matches_writers(
    state: State, writers: list[LoadWriter], elapsed: float
) -> None:
    """``state`` is exactly what the writers' acknowledged commands left."""
    for w in writers:
        got = state.get(w.key, {})
        assert sorted(got) == sorted(w.objects), f"ids of {w.key} differ"
        for oid, e in w.objects.items():
            geojson, fields, ttl = got[oid]
            assert point_of(geojson) == (float(e.lat), float(e.lon)), (w.key, oid)
            assert fields == ("seq", e.seq, "speed", e.speed), (w.key, oid)
            if e.ttl:
                assert 3600 - elapsed - 1 <= ttl <= 3600, (w.key, oid, ttl)
            else:
                assert ttl == -1, (w.key, oid, ttl)
    assert set(state) == {w.key for w in writers if w.objects}


def run_writers(
    srv: ServerProc, writers: list[LoadWriter], seconds: float, shrinks: int
) -> int:
    """Run the writers for ``seconds`` and send ``shrinks`` AOFSHRINKs spread over
    that time; with ``shrinks == 0``, stop them as soon as the server compacts on
    its own (within ``seconds``). The number of ``compacted`` lines the server
    logged meanwhile."""
    before = srv.log_text().count(" compacted ")

    def compactions() -> int:
        return srv.log_text().count(" compacted ") - before

    stop = threading.Event()
    limit = time.monotonic() + seconds
    threads = [
        threading.Thread(target=w.run, args=(srv.port, stop, limit), daemon=True)
        for w in writers
    ]
    for t in threads:
        t.start()
    admin = srv.raw()
    try:
        for i in range(shrinks):
            time.sleep(seconds / (shrinks + 1))
            assert admin.call("AOFSHRINK") == "OK"
            # wait for this compaction to end before asking for the next one
            done = i + 1

            def compacted(goal: int = done) -> bool:
                return compactions() >= goal

            assert wait_for(compacted, 30)
        if shrinks == 0:
            wait_for(lambda: compactions() > 0, seconds, 0.05)
            stop.set()
    finally:
        admin.close()
        for t in threads:
            t.join(60)
        stop.set()
    assert not any(t.is_alive() for t in threads)
    for w in writers:
        assert w.errors == [], w.errors[:5]
    return compactions()


def test_compaction_under_pipelined_writes_loses_nothing(tmp_path: Path) -> None:
    config = tmp_path / "geofleetd.toml"
    config.write_text("[server]\ncompact_ratio = 1.5\ncompact_min_records = 100\n")
    extra = ["--config", str(config), "--fsync", "always"]
    data_dir = tmp_path / "data"
    srv = start_server(data_dir, extra)
    writers = [LoadWriter(i) for i in range(WRITERS)]
    started = time.monotonic()
    try:
        manual = run_writers(srv, writers, 4.0, PHASE1_SHRINKS)
        assert manual >= PHASE1_SHRINKS
        automatic = run_writers(srv, writers, 30.0, 0)
        assert automatic >= 1, "no automatic compaction with compact_ratio = 1.5"
        assert "compaction_failed" not in srv.log_text()
        acked = sum(w.acked for w in writers)
        assert acked > 20_000

        client = srv.raw()
        before = dump_state(client)
        dumped = time.monotonic()
        assert_matches_writers(before, writers, time.monotonic() - started)
        # one more compaction, and a kill while it may be running
        assert client.call("AOFSHRINK") == "OK"
        client.close()
        srv.stop(9)
    finally:
        if srv.proc.poll() is None:
            srv.stop(9)

    again = restart(data_dir, extra)
    try:
        client = again.raw()
        after = dump_state(client)
        client.close()
        assert_same_state(before, after, time.monotonic() - dumped, "after SIGKILL")
    finally:
        assert again.stop() == 0
    replayed = int(again.log_text().split("ready records_replayed=")[1].split()[0])
    assert replayed < acked  # the log was compacted: fewer records than writes

    third = restart(data_dir, extra)
    try:
        client = third.raw()
        final = dump_state(client)
        client.close()
        assert_same_state(before, final, time.monotonic() - dumped, "after SIGTERM")
        assert_matches_writers(final, writers, time.monotonic() - started)
    finally:
        assert third.stop() == 0
