"""Full map, full disk and a killed process: nothing partial, nothing lost."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from persist_helpers import make_records

from geofleetd.errors import StorageFullError
from geofleetd.persistence import AppendLog, check

ROOT = Path(__file__).resolve().parents[2]


def fill_until_full(log: AppendLog, batch: int, tag: str) -> list[list[object]]:
    """Append batches until StorageFullError; the records acknowledged."""
    acked: list[list[object]] = []
    for i in range(10_000):
        records = make_records(batch, i * batch, tag)
        before = log.last_seq
        try:
            assert log.append(records) == before + batch
        except StorageFullError as exc:
            assert exc.code == "OOM"
            assert log.last_seq == before
            return acked
        acked.extend(records)
    raise AssertionError("the ceiling was never reached")


def test_map_ceiling_refuses_whole_batches(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with AppendLog(d, map_size_max=2 * 2**20, initial_map_size=256 * 1024) as log:
        acked = fill_until_full(log, 200, "a")
        assert len(acked) > 1000
        assert log.stats()["map_size"] <= 2 * 2**20
        # small appends after the error: each works or fails cleanly
        outcomes = []
        for i in range(5000):
            try:
                log.append(make_records(1, i, "small"))
                acked.extend(make_records(1, i, "small"))
                outcomes.append("ok")
            except StorageFullError:
                outcomes.append("full")
                if outcomes.count("full") == 3:
                    break
        assert outcomes.count("full") == 3
        assert log.last_seq == len(acked)
        # extras travel with the batch: refused together
        with pytest.raises(StorageFullError):
            log.append(make_records(500, 0, "big"), extra=[(b"outbox", b"k", b"v")])
        assert log.read_extra(b"outbox") == []
    with AppendLog(d, map_size_max=2 * 2**20) as log:
        assert list(log.replay()) == acked
    assert check(d).ok


def test_compaction_frees_room_at_the_ceiling(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with AppendLog(d, map_size_max=2 * 2**20, initial_map_size=256 * 1024) as log:
        acked = fill_until_full(log, 200, "a")
        # the live state is small: one record per 100 appended
        state = acked[::100]
        log.snapshot_and_compact(state, log.last_seq)
        assert log.stats()["log_records"] == 0
        more = fill_until_full(log, 200, "b")
        assert len(more) > 1000
    with AppendLog(d, map_size_max=2 * 2**20) as log:
        assert list(log.replay()) == state + more


CHILD_DISK_FULL = textwrap.dedent(
    """
    import json, resource, signal, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from geofleetd.errors import StorageFullError
    from geofleetd.persistence import AppendLog

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    log = AppendLog(Path(sys.argv[1]), initial_map_size=64 * 2**20)
    # From here on the files can't grow past 3 MiB: a disk that fills up.
    resource.setrlimit(resource.RLIMIT_FSIZE, (3 * 2**20, resource.RLIM_INFINITY))
    acked, errors = 0, []
    for i in range(2000):
        batch = [["set", "k", f"id{acked + j}", ["p", 1.5, 2.5], None, None]
                 for j in range(300)]
        try:
            log.append(batch)
            acked += len(batch)
        except StorageFullError as exc:
            errors.append(str(exc))
            if len(errors) >= 3:
                break
    last_seq_after_errors = log.last_seq
    log.close()
    print(json.dumps({"acked": acked, "errors": errors,
                      "last_seq": last_seq_after_errors}))
    """
)


def test_disk_full_is_storage_full_and_leaves_no_partial_batch(tmp_path: Path) -> None:
    d = tmp_path / "data"
    out = subprocess.run(
        [sys.executable, "-c", CHILD_DISK_FULL, str(d), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["errors"], "the file size limit was never hit"
    assert all("can't grow" in e for e in result["errors"])
    assert result["last_seq"] == result["acked"] > 0
    with AppendLog(d) as log:
        got = list(log.replay())
    assert len(got) == result["acked"]
    assert [r[2] for r in got] == [f"id{i}" for i in range(result["acked"])]
    assert check(d).ok


CHILD_WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from geofleetd.persistence import AppendLog

    log = AppendLog(Path(sys.argv[1]), fsync=sys.argv[3])
    batch_no = log.last_seq // 100
    for _ in range(100_000):
        batch = [["set", "k", f"b{batch_no}", ["p", 1.0, float(j)], None, None]
                 for j in range(100)]
        seq = log.append(batch)
        os.write(1, b"%d\\n" % seq)  # acknowledged only after append returned
        batch_no += 1
    """
)


@pytest.mark.parametrize("policy", ["always", "everysec", "no"])
@pytest.mark.parametrize("kill_point", range(4))
def test_sigkill_loses_no_acknowledged_batch(
    tmp_path: Path, kill_point: int, policy: str
) -> None:
    """A killed process loses nothing acknowledged under any policy (the OS keeps
    written pages); power loss is what the policies differ on."""
    d = tmp_path / "data"
    rng = random.Random(kill_point)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD_WRITER, str(d), str(ROOT), policy],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # running and appending
        assert first.strip()
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stdout.read()
    finally:
        proc.kill()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    acked = [int(x) for x in (first + rest).split()]
    with AppendLog(d) as log:
        got = list(log.replay())
    assert len(got) >= acked[-1]
    assert len(got) % 100 == 0  # whole batches only
    for i, record in enumerate(got):
        assert record == [
            "set",
            "k",
            f"b{i // 100}",
            ["p", 1.0, float(i % 100)],
            None,
            None,
        ]
