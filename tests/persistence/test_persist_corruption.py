"""Damage: replay stops at it, check finds it, repair keeps a backup and drops it."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import lmdb
import pytest
from persist_helpers import (
    flip_log_byte,
    flip_snapshot_byte,
    log_keys,
    log_value,
    make_records,
    put_log_value,
)

from geofleetd.persistence import (
    AppendLog,
    CorruptRecordError,
    LogDamagedError,
    LogFormatError,
    LogLockedError,
    check,
)
from geofleetd.persistence.layout import DATA_FILE, LOG_DIR, SNAPSHOT_DIR

N = 3000


def build(d: Path, n: int = N) -> list[list[object]]:
    records = make_records(n)
    with AppendLog(d) as log:
        for i in range(0, n, 500):
            log.append(records[i : i + 500])
    return records


def replay_all(d: Path) -> list[object]:
    with AppendLog(d) as log:
        return list(log.replay())


@pytest.mark.parametrize(
    ("seq", "offset"),
    [(N, -1), (1234, -1), (1234, 2), (1, 0)],
    ids=["last-payload", "middle-payload", "middle-crc", "first-version"],
)
def test_flipped_byte_is_found_named_and_repaired(
    tmp_path: Path, seq: int, offset: int
) -> None:
    d = tmp_path / "data"
    records = build(d)
    flip_log_byte(d, seq, offset)
    damaged_value = log_value(d, seq)

    # replay yields everything before the damage, then stops with its seq
    with AppendLog(d) as log:
        got = []
        with pytest.raises(CorruptRecordError) as info:
            for record in log.replay():
                got.append(record)
    assert got == records[: seq - 1]
    err = info.value
    assert err.seq == seq
    assert f"seq {seq}" in str(err)
    assert f"geofleetd check --dir {d} --repair" in str(err)

    report = check(d)
    assert not report.ok and report.repairable
    assert report.damaged_seq == seq
    assert report.log_records_to_drop == N - seq + 1
    assert f"log record seq {seq}" in report.summary()
    assert "--repair" in report.summary()
    assert log_keys(d) == list(range(1, N + 1))  # a plain check changes nothing

    fixed = check(d, repair=True)
    assert fixed.repaired and fixed.ok, fixed.summary()
    assert fixed.dropped_log_records == N - seq + 1
    assert f"dropped {N - seq + 1} log records" in fixed.summary()
    assert fixed.backup is not None and fixed.backup.parent == d.parent
    assert fixed.backup.name.startswith("data.backup-")
    # the backup is the damaged directory, byte for byte where it matters
    assert log_value(fixed.backup, seq) == damaged_value
    assert log_keys(fixed.backup) == list(range(1, N + 1))

    assert replay_all(d) == records[: seq - 1]
    with AppendLog(d) as log:
        assert log.last_seq == seq - 1
        assert log.append([["after-repair"]]) == seq
    assert check(d).ok


def test_missing_record_is_a_gap_and_repairs_like_damage(tmp_path: Path) -> None:
    d = tmp_path / "data"
    records = build(d)
    put_log_value(d, 2000, None)
    with AppendLog(d) as log, pytest.raises(CorruptRecordError) as info:
        list(log.replay())
    assert info.value.seq == 2000
    assert "missing" in info.value.reason
    report = check(d)
    assert report.damaged_seq == 2000
    assert report.log_records_to_drop == N - 2000
    fixed = check(d, repair=True)
    assert fixed.ok and fixed.dropped_log_records == N - 2000
    assert replay_all(d) == records[:1999]


def test_newer_format_record_is_refused_not_repaired(tmp_path: Path) -> None:
    d = tmp_path / "data"
    build(d, 10)
    payload = b"\x91\x01"
    crc = zlib.crc32(payload, zlib.crc32(b"\x07"))
    put_log_value(d, 5, struct.pack(">BI", 7, crc) + payload)
    with AppendLog(d) as log, pytest.raises(LogFormatError):
        list(log.replay())
    report = check(d, repair=True)
    assert not report.ok and not report.repaired and report.unrepairable
    assert report.backup is None
    assert "restore" in report.summary()
    assert log_keys(d) == list(range(1, 11))


def test_damaged_snapshot_record_costs_only_that_record(tmp_path: Path) -> None:
    d = tmp_path / "data"
    records = build(d, 1000)
    state = make_records(300, tag="s")
    with AppendLog(d) as log:
        log.snapshot_and_compact(state, 1000)
        tail = make_records(50, tag="t")
        log.append(tail)
    (snap,) = (d / SNAPSHOT_DIR).iterdir()
    flip_snapshot_byte(snap, 120)

    with AppendLog(d) as log, pytest.raises(CorruptRecordError) as info:
        list(log.replay())
    assert info.value.source == "snapshot" and info.value.seq == 120
    assert "--repair" in str(info.value)

    report = check(d)
    assert report.damaged_snapshot_positions == [120]
    assert report.damaged_seq is None
    fixed = check(d, repair=True)
    assert fixed.ok and fixed.dropped_snapshot_records == 1
    assert fixed.dropped_log_records == 0
    assert replay_all(d) == state[:119] + state[120:] + tail
    assert records  # the pre-snapshot log is gone, by design


def test_check_of_a_healthy_directory(tmp_path: Path) -> None:
    d = tmp_path / "data"
    build(d, 100)
    report = check(d, repair=True)
    assert report.ok and not report.repaired and report.backup is None
    assert report.log_records == 100 and report.last_seq == 100
    assert report.summary().splitlines()[0].endswith(": OK")
    assert not list(tmp_path.glob("data.backup-*"))
    missing = check(tmp_path / "nope")
    assert not missing.ok


def test_check_refuses_a_directory_in_use(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with AppendLog(d), pytest.raises(LogLockedError, match="in use"):
        check(d)


def test_lmdb_structure_damage_is_reported_without_opening_it(tmp_path: Path) -> None:
    d = tmp_path / "data"
    build(d, 3000)
    data = d / LOG_DIR / DATA_FILE
    raw = bytearray(data.read_bytes())
    page = 4096
    # Scribble over the header of every B-tree page after the metas: the file
    # stays the same size but its tree no longer makes sense.
    for start in range(2 * page, len(raw), page):
        raw[start : start + 16] = b"\xa5" * 16
    data.write_bytes(bytes(raw))
    before = data.read_bytes()
    report = check(d, repair=True)
    assert not report.ok and report.unrepairable and not report.repaired
    assert "LMDB structure" in report.summary()
    assert data.read_bytes() == before  # untouched
    assert report.backup is None


def test_dangling_snapshot_pointer_stops_the_open(tmp_path: Path) -> None:
    d = tmp_path / "data"
    build(d, 100)
    with AppendLog(d) as log:
        log.snapshot_and_compact(make_records(10), 100)
    (snap,) = (d / SNAPSHOT_DIR).iterdir()
    (snap / DATA_FILE).unlink()
    with pytest.raises(LogDamagedError, match="geofleetd check --dir"):
        AppendLog(d)
    report = check(d, repair=True)
    assert not report.ok and report.unrepairable and not report.repaired


def test_lmdb_api_tampering_keeps_lmdb_itself_consistent(tmp_path: Path) -> None:
    """The corruption helpers change values, not LMDB structure."""
    d = tmp_path / "data"
    build(d, 50)
    flip_log_byte(d, 25)
    env = lmdb.open(str(d / LOG_DIR), max_dbs=4, readonly=True, lock=False)
    env.close()
    report = check(d)
    assert not any("LMDB structure" in p for p in report.problems)
