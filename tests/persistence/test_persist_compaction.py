"""Snapshot + compaction, alone and while another thread keeps appending."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from persist_helpers import log_keys, make_records, put_log_value

from geofleetd.errors import StorageFullError
from geofleetd.persistence import AppendLog, check
from geofleetd.persistence.codec import RecordEncoder
from geofleetd.persistence.layout import SNAPSHOT_DIR


class Model:
    """The live state the records describe: id -> last "set" record."""

    def __init__(self) -> None:
        self.objects: dict[str, list[Any]] = {}

    def apply(self, record: list[Any]) -> None:
        self.objects[record[2]] = record

    def state(self) -> list[list[Any]]:
        return list(self.objects.values())


def updates(n: int, start: int, ids: int = 500) -> list[list[Any]]:
    """``n`` position updates cycling over ``ids`` objects."""
    return [
        ["set", "fleet", f"t{i % ids}", ["p", 40.0 + i * 1e-6, -74.0], None, None]
        for i in range(start, start + n)
    ]


def test_compaction_while_another_thread_appends(tmp_path: Path) -> None:
    d = tmp_path / "data"
    model = Model()
    log = AppendLog(d, fsync="always")
    log.DELETE_CHUNK = 200  # many chunks: many chances to interleave
    for i in range(0, 20_000, 1000):
        batch = updates(1000, i)
        log.append(batch)
        for r in batch:
            model.apply(r)
    upto = log.last_seq
    state = model.state()  # a frozen copy of the state as of upto

    after: list[list[Any]] = []
    seen_mid_deletion = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def appender() -> None:
        i = 20_000
        try:
            deadline = time.monotonic() + 30
            while not stop.is_set() and time.monotonic() < deadline:
                batch = updates(50, i)
                seq = log.append(batch)
                assert seq == upto + len(after) + len(batch)
                after.extend(batch)
                pending = log.stats()["log_records"] - len(after)
                if log.snapshot_seq == upto and 0 < pending < upto:
                    seen_mid_deletion.append(pending)
                i += 50
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=appender)
    thread.start()
    try:
        time.sleep(0.02)
        result = log.snapshot_and_compact(state, upto)
        time.sleep(0.02)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors
    assert result.upto_seq == upto
    assert result.snapshot_records == len(state) == 500
    assert result.log_records_deleted == upto
    assert result.lock_holds >= upto // 200
    assert len(seen_mid_deletion) > 0  # appends really ran between chunks
    stats = log.stats()
    assert stats["snapshot_seq"] == upto
    assert stats["log_records"] == len(after)
    log.close()

    assert check(d).ok
    with AppendLog(d) as again:
        assert again.last_seq == upto + len(after)
        got = list(again.replay())
    assert got == state + after  # nothing lost, nothing twice
    assert log_keys(d) == list(range(upto + 1, upto + len(after) + 1))


def test_second_compaction_replaces_the_first(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with AppendLog(d) as log:
        log.append(make_records(100))
        log.snapshot_and_compact(make_records(10, tag="s1"), 100)
        (first,) = (d / SNAPSHOT_DIR).iterdir()
        log.append(make_records(30, 100))
        log.snapshot_and_compact(make_records(20, tag="s2"), 120)
        (second,) = (d / SNAPSHOT_DIR).iterdir()
        assert first != second
        with pytest.raises(ValueError):
            log.snapshot_and_compact([], 110)  # older than the snapshot
        with pytest.raises(ValueError):
            log.snapshot_and_compact([], 131)  # beyond last_seq
        assert log.stats()["log_records"] == 10
    with AppendLog(d) as log:
        assert list(log.replay()) == make_records(20, tag="s2") + make_records(10, 120)


def test_empty_log_after_compaction_keeps_numbering(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with AppendLog(d) as log:
        log.append(make_records(40))
        log.snapshot_and_compact([], 40)
        assert log.stats()["log_records"] == 0
    with AppendLog(d) as log:
        assert log.last_seq == 40
        assert log.append([["next"]]) == 41
        assert list(log.replay()) == [["next"]]


def test_records_left_by_an_interrupted_compaction_are_skipped(tmp_path: Path) -> None:
    """A crash between the pointer commit and the deletions leaves old records."""
    d = tmp_path / "data"
    old = make_records(100)
    with AppendLog(d) as log:
        log.append(old)
        log.snapshot_and_compact(make_records(5, tag="s"), 60)
    encoder = RecordEncoder()
    for seq in range(1, 61):  # put the deleted records back, as if never deleted
        put_log_value(d, seq, encoder.encode(old[seq - 1]))
    report = check(d)
    assert report.ok and report.obsolete_records == 60
    with AppendLog(d) as log:
        assert list(log.replay()) == make_records(5, tag="s") + old[60:]
        assert log.last_seq == 100
        log.snapshot_and_compact(make_records(6, tag="t"), 100)
    assert log_keys(d) == []


def test_leftover_snapshot_directories_are_removed_on_open(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with AppendLog(d) as log:
        log.append(make_records(10))
        log.snapshot_and_compact(make_records(3), 10)
    partial = d / SNAPSHOT_DIR / "snap-00000000000000000010-1"
    partial.mkdir()
    (partial / "data.mdb").write_bytes(b"half written")
    with AppendLog(d) as log:
        assert not partial.exists()
        assert list(log.replay()) == make_records(3)


def test_failed_snapshot_changes_nothing(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with AppendLog(d, map_size_max=1 * 2**20, initial_map_size=256 * 1024) as log:
        log.append(make_records(1000))
        huge = [["blob", "x" * 4000, i] for i in range(400)]  # ~1.6 MB > ceiling
        with pytest.raises(StorageFullError):
            log.snapshot_and_compact(huge, 1000)
        with pytest.raises(TypeError):
            log.snapshot_and_compact([["ok"], [object()]], 1000)
        assert list((d / SNAPSHOT_DIR).iterdir()) == []
        assert log.stats()["log_records"] == 1000
        assert log.snapshot_seq == 0
    with AppendLog(d) as log:
        assert list(log.replay()) == make_records(1000)


def test_only_one_compaction_at_a_time(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with AppendLog(d, fsync="no") as log:
        log.append(make_records(2000))
        started = threading.Event()
        release = threading.Event()

        def slow_state() -> Any:
            started.set()
            release.wait(timeout=30)
            yield from make_records(5)

        outcome: list[Any] = []
        worker = threading.Thread(
            target=lambda: outcome.append(log.snapshot_and_compact(slow_state(), 2000))
        )
        worker.start()
        assert started.wait(timeout=30)
        with pytest.raises(RuntimeError, match="already running"):
            log.snapshot_and_compact([], 2000)
        release.set()
        worker.join(timeout=60)
        assert outcome and outcome[0].snapshot_records == 5
