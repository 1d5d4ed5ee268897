"""Damaged records, seen through the real server and the real ``geofleetd check``.

One stored record's bytes are rewritten through the lmdb API while the server is
down (the last record, a middle one, a snapshot record). The server must refuse to
start, naming the record and the repair command; ``geofleetd check`` must report
it; ``--repair`` keeps a backup and says how much it dropped; then the server
starts with exactly the writes before the damage (for a snapshot record: every
object but the damaged one).
"""

from __future__ import annotations

from pathlib import Path

import lmdb
import pytest

from geofleetd.persistence.codec import decode_value, encode_key
from geofleetd.persistence.layout import LOG_DB, MAX_DBS, SNAPSHOT_DB, SNAPSHOT_DIR
from tests.conftest import RawClient, start_server
from tests.durability.helpers import (
    pipeline,
    restart,
    run_cli,
    run_server_once,
    wait_for,
)

N = 300


def write_fleet(client: RawClient, n: int = N) -> None:
    """``n`` SETs of distinct ids v0..v{n-1}, 50 per pipelined batch."""
    for start in range(0, n, 50):
        cmds = [
            [
                "SET",
                "fleet",
                f"v{i}",
                "FIELD",
                "speed",
                str(i + 1),
                "POINT",
                str(40 + i / 1000),
                str(-74 - i / 1000),
            ]
            for i in range(start, min(n, start + 50))
        ]
        assert pipeline(client, cmds) == ["OK"] * len(cmds)


def env_dirs(data_dir: Path, snapshot: bool) -> list[Path]:
    """The LMDB environments under ``data_dir``: the log's, or the snapshots'."""
    found = []
    for path in sorted(data_dir.rglob("data.mdb")):
        in_snapshots = SNAPSHOT_DIR in path.relative_to(data_dir).parts
        if in_snapshots == snapshot:
            found.append(path.parent)
    return found


def damage(env_dir: Path, db_name: bytes, position: int) -> list[object]:
    """Flip a bit in the payload of entry ``position`` of ``db_name``; return
    the record it held."""
    env = lmdb.open(str(env_dir), max_dbs=MAX_DBS, map_size=1 << 30)
    try:
        db = env.open_db(db_name, create=False)
        with env.begin(write=True) as txn:
            value = txn.get(encode_key(position), db=db)
            assert value is not None, f"no entry {position} in {env_dir}"
            record = decode_value(value)
            raw = bytearray(value)
            raw[-3] ^= 0x10
            assert txn.put(encode_key(position), bytes(raw), db=db)
        return list(record)
    finally:
        env.close()


def log_record_count(env_dir: Path) -> int:
    env = lmdb.open(str(env_dir), max_dbs=MAX_DBS, readonly=True, lock=False)
    try:
        db = env.open_db(LOG_DB, create=False)
        with env.begin() as txn:
            return int(txn.stat(db)["entries"])
    finally:
        env.close()


def assert_holds_exactly(client: RawClient, ids: list[int]) -> None:
    assert client.call("SCAN", "fleet", "COUNT") == len(ids)
    replies = pipeline(
        client, [["GET", "fleet", f"v{i}", "WITHFIELDS", "POINT"] for i in ids]
    )
    for i, reply in zip(ids, replies, strict=True):
        want = [[f"{40 + i / 1000:g}", f"{-74 - i / 1000:g}"], ["speed", str(i + 1)]]
        assert [[str(float(x)) for x in reply[0]], reply[1]] == [
            [str(float(x)) for x in want[0]],
            want[1],
        ], (i, reply)


@pytest.mark.parametrize("where", ["last", "middle"])
def test_damaged_log_record_refuses_start_then_repair(
    tmp_path: Path, where: str
) -> None:
    data_dir = tmp_path / "data"
    srv = start_server(data_dir)
    client = srv.raw()
    write_fleet(client)
    client.close()
    assert srv.stop() == 0

    (log_env,) = env_dirs(data_dir, snapshot=False)
    assert log_record_count(log_env) == N
    seq = N if where == "last" else N // 2
    record = damage(log_env, LOG_DB, seq)
    # Record seq k is the k-th SET: v(k-1).
    assert record[:3] == ["set", "fleet", f"v{seq - 1}"]

    code, out = run_server_once(data_dir)
    assert code != 0, out
    assert f"seq {seq}" in out
    assert f"geofleetd check --dir {data_dir} --repair" in out
    assert "ready records_replayed" not in out

    code, out = run_cli(["check", "--dir", str(data_dir)])
    assert code != 0, out
    assert "DAMAGED" in out
    assert f"log record seq {seq}: checksum mismatch" in out
    dropped = N - seq + 1
    assert f"drops {dropped} log records" in out

    code, out = run_cli(["check", "--dir", str(data_dir), "--repair"])
    assert code == 0, out
    assert "REPAIRED, now OK" in out
    assert f"dropped {dropped} log records" in out
    backups = sorted(tmp_path.glob("**/*.backup-*"))
    assert len(backups) == 1, out
    assert str(backups[0]) in out
    (backup_log,) = env_dirs(backups[0], snapshot=False)
    assert log_record_count(backup_log) == N  # the backup still has everything

    again = restart(data_dir)
    try:
        client = again.raw()
        assert_holds_exactly(client, list(range(seq - 1)))
        # and it takes new writes after the repair
        assert client.call("SET", "fleet", "new", "POINT", "1", "2") == "OK"
        client.close()
    finally:
        assert again.stop() == 0
    assert f"ready records_replayed={seq - 1} " in again.log_text()


def test_damaged_snapshot_record_refuses_start_then_repair(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    srv = start_server(data_dir)
    client = srv.raw()
    write_fleet(client)
    assert client.call("AOFSHRINK") == "OK"
    assert wait_for(lambda: "compacted" in srv.log_text(), 20)
    client.close()
    assert srv.stop() == 0

    (snap_env,) = env_dirs(data_dir, snapshot=True)
    record = damage(snap_env, SNAPSHOT_DB, 7)
    victim = int(str(record[2])[1:])

    code, out = run_server_once(data_dir)
    assert code != 0, out
    assert "snapshot record #7" in out
    assert f"geofleetd check --dir {data_dir} --repair" in out

    code, out = run_cli(["check", "--dir", str(data_dir)])
    assert code != 0 and "snapshot record #7: checksum mismatch" in out, out
    code, out = run_cli(["check", "--dir", str(data_dir), "--repair"])
    assert code == 0 and "dropped 0 log records and 1 snapshot records" in out, out

    again = restart(data_dir)
    try:
        client = again.raw()
        assert_holds_exactly(client, [i for i in range(N) if i != victim])
        client.close()
    finally:
        assert again.stop() == 0
