"""AppendLog: group commit, numbering across reopen, policies, extras, threads."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from persist_helpers import log_keys, make_records
from test_persist_codec import records as record_strategy
from test_persist_codec import same

from geofleetd.persistence import AppendLog, FsyncPolicy, LogLockedError

POLICIES: list[FsyncPolicy] = ["always", "everysec", "no"]


@given(
    st.lists(st.lists(record_strategy, min_size=0, max_size=6), max_size=6),
    st.sampled_from(POLICIES),
)
def test_round_trip_and_numbering_across_reopen(
    batches: list[list[list[Any]]], policy: FsyncPolicy
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "data"
        expected: list[Any] = []
        seq = 0
        # Each batch in its own open/close cycle: numbering must continue.
        for batch in batches:
            with AppendLog(d, fsync=policy, initial_map_size=256 * 1024) as log:
                assert log.last_seq == seq
                assert log.append(batch) == seq + len(batch)
                seq += len(batch)
                expected.extend(batch)
        with AppendLog(d, fsync=policy) as log:
            assert log.last_seq == seq
            got = list(log.replay())
        assert len(got) == len(expected)
        assert all(same(a, b) for a, b in zip(got, expected, strict=True))
        if seq:
            assert log_keys(d) == list(range(1, seq + 1))


def test_batch_is_one_transaction_and_numbers_are_contiguous(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with AppendLog(d) as log:
        assert log.append([]) == 0
        assert log.append(make_records(1000)) == 1000
        before = log.stats()["commits"]
        assert log.append(make_records(10, 1000)) == 1010
        assert log.stats()["commits"] == before + 1
        assert log.stats()["log_records"] == 1010
    assert log_keys(d) == list(range(1, 1011))


def test_unpackable_record_leaves_log_unchanged(tmp_path: Path) -> None:
    with AppendLog(tmp_path / "d") as log:
        log.append(make_records(3))
        with pytest.raises(TypeError):
            log.append([["ok"], ["bad", object()]])
        assert log.last_seq == 3
        assert log.append([["next"]]) == 4
        assert list(log.replay())[-1] == ["next"]


def test_extra_entries_join_the_same_transaction(tmp_path: Path) -> None:
    d = tmp_path / "d"
    with AppendLog(d) as log:
        log.append(make_records(2), extra=[(b"outbox", b"h1:1", b"payload-1")])
        log.append([], extra=[(b"outbox", b"h1:2", b"payload-2")])
        assert log.last_seq == 2
        log.append(make_records(1, 2), extra=[(b"outbox", b"h1:1", None)])
        with pytest.raises(ValueError):
            log.append([], extra=[(b"log", b"k", b"v")])
    with AppendLog(d) as log:
        assert log.read_extra(b"outbox") == [(b"h1:2", b"payload-2")]
        assert log.last_seq == 3


@pytest.mark.parametrize("policy", POLICIES)
def test_policies_sync_and_survive_reopen(tmp_path: Path, policy: FsyncPolicy) -> None:
    d = tmp_path / policy
    log = AppendLog(d, fsync=policy)
    log.append(make_records(100))
    log.sync_if_due()  # not due yet (or not everysec): nothing to do, no crash
    if policy == "everysec":
        assert log.stats()["unsynced_commits"] == 1
        log.SYNC_INTERVAL = 0.0
        log.sync_if_due()
        assert log.stats()["unsynced_commits"] == 0
    elif policy == "no":
        assert log.stats()["unsynced_commits"] == 1
        log.sync_if_due()
        assert log.stats()["unsynced_commits"] == 1
    else:
        assert log.stats()["unsynced_commits"] == 0
    log.append(make_records(5, 100))
    log.sync()
    assert log.stats()["unsynced_commits"] == 0
    log.close()
    log.close()  # idempotent
    with pytest.raises(RuntimeError):
        log.append(make_records(1))
    with AppendLog(d, fsync=policy) as again:
        assert again.last_seq == 105
        assert list(again.replay()) == make_records(105)


def test_one_process_per_directory(tmp_path: Path) -> None:
    d = tmp_path / "d"
    with AppendLog(d), pytest.raises(LogLockedError):
        AppendLog(d)
    with AppendLog(d) as log:  # released on close
        assert log.last_seq == 0


def test_concurrent_appenders_get_ordered_gap_free_numbers(tmp_path: Path) -> None:
    d = tmp_path / "d"
    acked: dict[str, list[int]] = {"a": [], "b": []}
    with AppendLog(d, fsync="no") as log:

        def run(tag: str) -> None:
            for i in range(200):
                seq = log.append([[tag, i]])
                acked[tag].append(seq)

        threads = [threading.Thread(target=run, args=(t,)) for t in acked]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        got = list(log.replay())
    assert len(got) == 400
    for tag, seqs in acked.items():
        # each thread's records appear in its order, at the seqs it was told
        assert [got[s - 1] for s in seqs] == [[tag, i] for i in range(200)]


def test_stats_and_should_compact(tmp_path: Path) -> None:
    with AppendLog(tmp_path / "d", fsync="no") as log:
        log.append(make_records(20_000))
        stats = log.stats()
        assert stats["log_records"] == 20_000
        assert stats["last_seq"] == 20_000
        assert 0 < stats["log_bytes"] <= stats["log_file_bytes"] <= stats["map_size"]
        assert log.should_compact(live_records=1_000, ratio=4.0)
        assert not log.should_compact(live_records=10_000, ratio=4.0)
        assert not log.should_compact(live_records=0, ratio=4.0, min_log_records=50_000)


def test_map_grows_on_demand(tmp_path: Path) -> None:
    with AppendLog(tmp_path / "d", fsync="no", initial_map_size=256 * 1024) as log:
        start = log.stats()["map_size"]
        deadline = time.monotonic() + 20
        while log.stats()["map_size"] < 4 * start and time.monotonic() < deadline:
            log.append(make_records(1000, log.last_seq))
        assert log.stats()["map_grows"] >= 1
        assert log.stats()["map_size"] >= 4 * start
        n = log.last_seq
    with AppendLog(tmp_path / "d", initial_map_size=256 * 1024) as log:
        assert sum(1 for _ in log.replay()) == n


def test_everysec_flushes_on_a_jittery_timer(tmp_path: Path) -> None:
    with AppendLog(tmp_path / "d", fsync="everysec") as log:
        log.SYNC_INTERVAL = 0.2
        log.sync()
        log.append(make_records(10))
        log.sync_if_due()  # just flushed: not due
        assert log.stats()["unsynced_commits"] == 1
        time.sleep(0.19)  # a timer firing slightly early still counts
        log.sync_if_due()
        assert log.stats()["unsynced_commits"] == 0
        log.sync_if_due()  # nothing unsynced: no-op
