"""Snapshot files: the whole live state as of one sequence number, in its own LMDB.

This module owns writing a snapshot environment (``D/snapshots/snap-<seq>-<ns>``),
reading it back in order with every record checked, and the small pointer value
the log keeps to say which snapshot is current (:class:`SnapshotRef`).

A snapshot environment holds two sub-databases: ``"snap"``, position (8 bytes,
big-endian, from 1) -> record in the codec's format, and ``"meta"`` whose
``"info"`` entry ({"upto_seq", "records"}, itself checksummed) is written in the
last transaction: a snapshot without it is incomplete. Writing uses its own
environment, so it never takes the log's LMDB writer lock; the data is synced
once at the end (one ``fdatasync`` instead of one per transaction).

Limits: making a snapshot current (the pointer commit), deleting the log it
replaces and removing old snapshots are the log's job (``log.py``). A snapshot is
immutable once written, except that ``check --repair`` may delete damaged records
from it. Records must stand alone (each describes one piece of state, in any
order), because a repair drops a damaged snapshot record without its neighbours.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb

from geofleetd.errors import StorageFullError
from geofleetd.persistence.codec import (
    RecordDecodeError,
    RecordEncoder,
    decode_value,
    encode_key,
)
from geofleetd.persistence.errors import (
    CorruptRecordError,
    LogDamagedError,
    LogFormatError,
)
from geofleetd.persistence.layout import (
    DATA_FILE,
    SNAPSHOT_DB,
    SNAPSHOT_INFO,
    SNAPSHOT_PREFIX,
    file_size,
    fsync_dir,
    open_readonly,
    page_round,
    storage_full_cause,
)

META_DB = b"meta"
WRITE_CHUNK = 2_000
"""Records per snapshot transaction: short C calls, so the GIL changes hands."""
READ_CHUNK = 8_192


@dataclass(frozen=True)
class SnapshotRef:
    """Which snapshot is current: its directory name, seq and record count."""

    name: str
    upto_seq: int
    records: int

    def to_value(self) -> bytes:
        return RecordEncoder().encode(
            {"name": self.name, "upto_seq": self.upto_seq, "records": self.records}
        )

    @classmethod
    def from_value(cls, value: bytes) -> SnapshotRef:
        """Parse a stored pointer; RecordDecodeError if it is damaged."""
        data = decode_value(value)
        try:
            name, upto, count = data["name"], data["upto_seq"], data["records"]
        except (TypeError, KeyError) as exc:
            raise RecordDecodeError(f"malformed snapshot pointer: {data!r}") from exc
        ok = isinstance(name, str) and name.startswith(SNAPSHOT_PREFIX)
        if not (ok and isinstance(upto, int) and isinstance(count, int)):
            raise RecordDecodeError(f"malformed snapshot pointer: {data!r}")
        return cls(name, upto, count)


def _put_chunk(
    env: lmdb.Environment,
    db: lmdb._Database,
    items: list[tuple[bytes, bytes]],
    map_size_max: int,
    data_file: Path,
) -> None:
    """Write ``items`` in one transaction, growing the map (up to the max) if full."""
    for _attempt in range(64):
        try:
            with env.begin(write=True) as txn:
                txn.cursor(db).putmulti(items, append=True)
            return
        except lmdb.MapFullError:
            current = env.info()["map_size"]
            if current >= map_size_max:
                raise StorageFullError(
                    f"snapshot needs more than the map ceiling of {map_size_max} bytes",
                    "OOM",
                ) from None
            env.set_mapsize(page_round(min(map_size_max, current * 2)))
        except lmdb.Error as exc:
            need = sum(len(v) + 16 for _, v in items)
            cause = storage_full_cause(exc, data_file, need)
            if cause is None:
                raise
            raise StorageFullError(f"snapshot not written: {cause}", "OOM") from exc
    raise RuntimeError("snapshot map growth did not converge")


def write_snapshot(
    root: Path,
    records: Iterable[Any],
    upto_seq: int,
    initial_map_size: int,
    map_size_max: int,
) -> tuple[SnapshotRef, int]:
    """Write ``records`` as a new, complete, synced snapshot under ``root``.

    Returns its pointer and its file size. On any failure the partial directory
    is removed and the exception (StorageFullError for a full map or disk)
    propagates; nothing else changes.
    """
    name = f"{SNAPSHOT_PREFIX}{upto_seq:020d}-{time.time_ns()}"
    path = root / name
    path.mkdir(parents=True)
    data_file = path / DATA_FILE
    env: lmdb.Environment | None = None
    try:
        env = lmdb.open(
            str(path),
            map_size=page_round(min(initial_map_size, map_size_max)),
            max_dbs=2,
            sync=False,
            metasync=False,
            subdir=True,
        )
        db = env.open_db(SNAPSHOT_DB)
        meta = env.open_db(META_DB)
        encoder = RecordEncoder()
        count = 0
        source = iter(records)
        while True:
            chunk = list(itertools.islice(source, WRITE_CHUNK))
            if not chunk:
                break
            items = encoder.encode_items(chunk, count + 1)
            _put_chunk(env, db, items, map_size_max, data_file)
            count += len(chunk)
            # Give the GIL back between chunks: the event loop keeps appending.
            time.sleep(0)
        info = encoder.encode({"upto_seq": upto_seq, "records": count})
        _put_chunk(env, meta, [(SNAPSHOT_INFO, info)], map_size_max, data_file)
        env.sync(True)
        env.close()
        env = None
        fsync_dir(path)
        fsync_dir(root)
        return SnapshotRef(name, upto_seq, count), file_size(data_file)
    except BaseException:
        if env is not None:
            with contextlib.suppress(lmdb.Error):
                env.close()
        shutil.rmtree(path, ignore_errors=True)
        raise


def remove_snapshot(root: Path, name: str) -> None:
    """Delete a snapshot directory; a failure leaves it for the next open."""
    if name.startswith(SNAPSHOT_PREFIX):
        shutil.rmtree(root / name, ignore_errors=True)


def read_info(env: lmdb.Environment) -> dict[str, int] | None:
    """The snapshot's info entry, or None if absent (an incomplete snapshot)."""
    meta = env.open_db(META_DB, create=False)
    with env.begin() as txn:
        value = txn.get(SNAPSHOT_INFO, db=meta)
    if value is None:
        return None
    data = decode_value(value)
    if not isinstance(data, dict):
        raise RecordDecodeError(f"malformed snapshot info: {data!r}")
    return {str(k): int(v) for k, v in data.items()}


def iter_snapshot(path: Path, ref: SnapshotRef, directory: Path) -> Iterator[Any]:
    """Yield the snapshot's records in order, raising on any damage.

    CorruptRecordError (source "snapshot", seq = position) for a bad record or a
    missing one; LogDamagedError if the environment itself can't be read.
    """
    try:
        env = open_readonly(path, max_dbs=2)
    except lmdb.Error as exc:
        raise LogDamagedError(
            f"snapshot {path} can't be opened ({exc}); "
            f"run `geofleetd check --dir {directory}`"
        ) from exc
    try:
        db = env.open_db(SNAPSHOT_DB, create=False)
        # Positions run from 1; a repair may have deleted damaged ones, so gaps
        # are allowed and the pointer's record count is what must match.
        count = 0
        next_key = encode_key(1)
        while True:
            with env.begin() as txn:
                cursor = txn.cursor(db)
                if not cursor.set_range(next_key):
                    pairs: list[tuple[bytes, bytes]] = []
                else:
                    pairs = list(itertools.islice(cursor.iternext(), READ_CHUNK))
            for key, value in pairs:
                position = int.from_bytes(key, "big")
                try:
                    if len(key) != 8:
                        raise RecordDecodeError(f"malformed key {key.hex()}")
                    record = decode_value(value)
                except RecordDecodeError as exc:
                    if exc.newer:
                        raise LogFormatError(
                            f"snapshot record #{position}: {exc.reason}"
                        ) from None
                    raise CorruptRecordError(
                        position, exc.reason, directory, "snapshot"
                    ) from None
                yield record
                count += 1
            if len(pairs) < READ_CHUNK:
                break
            next_key = encode_key(int.from_bytes(pairs[-1][0], "big") + 1)
        if count != ref.records:
            raise CorruptRecordError(
                count + 1,
                f"snapshot holds {count} records, its pointer says {ref.records}",
                directory,
                "snapshot",
            )
    except lmdb.Error as exc:
        raise LogDamagedError(
            f"snapshot {path} is unreadable ({exc}); "
            f"run `geofleetd check --dir {directory}`"
        ) from exc
    finally:
        env.close()
