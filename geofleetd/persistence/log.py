"""The append log: group commit of change records into LMDB, replay and compaction.

This module owns :class:`AppendLog`, the one object the server writes through:

- ``append(records, extra)`` commits a whole batch (one event-loop tick) in ONE
  LMDB write transaction and numbers the records ``last_seq + 1 ...``. ``extra``
  puts or deletes entries of other sub-databases (for example a hook outbox) in
  the same transaction, so they commit or vanish together with the records.
- ``replay()`` yields the current snapshot's records, then every log record after
  the snapshot's seq, checking each record's checksum and the sequence's
  contiguity; damage raises CorruptRecordError naming the seq and the repair.
- ``snapshot_and_compact(records, upto_seq)`` writes a new snapshot in its own
  environment, makes it current with one small commit, then deletes the log up to
  ``upto_seq`` in bounded chunks. It is meant to run in a worker thread while the
  event-loop thread keeps appending.

Durability, by policy (``fsync``):

- ``always``: every commit is synced before ``append`` returns (LMDB's default
  two-step commit: data pages are flushed, then the meta page with O_DSYNC). A
  power cut loses nothing that ``append`` acknowledged, and can't tear the file.
- ``everysec``: commits are not synced (MDB_NOSYNC); ``sync_if_due()``, called
  from a 1 s timer, flushes once a second if anything was committed. A process
  crash loses nothing (the pages are in the OS cache); a power cut can lose the
  last second, and on a file system that does not keep write order it can also
  leave LMDB structure damaged, which ``check`` detects but can't repair in place.
- ``no``: like ``everysec`` without the timer; the OS flushes when it likes.
  ``close()`` always syncs.

Map size: the memory map starts at ``initial_map_size`` and doubles when a commit
finds it full, up to ``map_size_max`` minus a reserve (1/16 of it, between
128 KiB and 256 MiB) that only compaction and the snapshot pointer may use, so
deleting old records still works when appends have hit the ceiling. At the
ceiling, or when the disk (or RLIMIT_FSIZE) refuses to grow the file, ``append``
raises StorageFullError and the batch is not in the log.

Thread rules: ``append`` may be called from any thread (sequence numbers are
assigned under the writer lock, so concurrent callers get ordered, gap-free
numbers); usually it is the event loop. One thread at a time may run
``snapshot_and_compact``; ``sync_if_due``/``sync`` may run in any thread and do not
take the writer lock. Every LMDB transaction of the log environment, and every map
resize, happens under one ``threading.Lock``; compaction takes it for the pointer
commit and then for one chunk of ``DELETE_CHUNK`` deletions at a time, so an
``append`` waits for at most one such transaction. Measured with
``bench/persistence_log.py`` (1M log records, 200k live, appends of 1,000 every
2 ms): one hold lasts 0.3 ms (``no``) to 0.7 ms (``always``, it includes the
synced commit) at the median and 1.5-2.1 ms at most on a quiet disk; a busy disk
stretches the synced ones to ~12 ms. The writer thread also competes for the GIL
and the disk: while the snapshot is encoded and flushed, appends of 1,000 took
2.5-4.2 ms at the median instead of 0.8-1.5 ms (p99 up to ~12 ms); during the
deletions, 1.0-1.6 ms. ``sys.setswitchinterval`` lower than Python's 5 ms shortens
the GIL part. Don't call ``close`` while a compaction runs; wait for it first.

Limits: this module does not decide when to compact (the server asks
``should_compact``), does not know what records mean, and does not run timers or
threads of its own. ``replay`` must not run concurrently with ``append`` or a
compaction. The LMDB file never shrinks: space freed by compaction is reused by
later appends. One process per directory (enforced with a lock file).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import statistics
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lmdb

from geofleetd.errors import StorageFullError
from geofleetd.persistence.codec import (
    CRC_START,
    FORMAT_VERSION,
    HEADER_SIZE,
    RecordDecodeError,
    RecordEncoder,
    decode_value,
    encode_key,
    keyrange,
    unpack_payload,
)
from geofleetd.persistence.errors import (
    CorruptRecordError,
    LogDamagedError,
    LogFormatError,
    check_command,
)
from geofleetd.persistence.layout import (
    DATA_FILE,
    LAYOUT_VERSION,
    LOG_DB,
    LOG_DIR,
    MAX_DBS,
    META_DB,
    META_LAYOUT,
    META_SNAPSHOT,
    MIB,
    RESERVED_DBS,
    SNAPSHOT_DIR,
    SNAPSHOT_PREFIX,
    DirLock,
    file_size,
    page_round,
    storage_full_cause,
)
from geofleetd.persistence.snapshot import (
    SnapshotRef,
    iter_snapshot,
    remove_snapshot,
    write_snapshot,
)

FsyncPolicy = Literal["always", "everysec", "no"]
_POLICIES: tuple[str, ...] = ("always", "everysec", "no")

ExtraOp = tuple[bytes, bytes, bytes | None]
"""(sub-database name, key, value) written with a batch; value None deletes."""

log = logging.getLogger(__name__)

_DAMAGE_ERRORS = (
    lmdb.CorruptedError,
    lmdb.PageNotFoundError,
    lmdb.InvalidError,
    lmdb.BadTxnError,
    lmdb.PanicError,
)


@dataclass(frozen=True)
class CompactionResult:
    """What one ``snapshot_and_compact`` did, with its timings."""

    upto_seq: int
    snapshot_records: int
    snapshot_bytes: int
    log_records_deleted: int
    snapshot_seconds: float
    delete_seconds: float
    lock_holds: int
    max_lock_hold_ms: float
    """Longest single hold of the log's writer lock (pointer commit or one chunk).
    This bounds how long an ``append`` on another thread waited for compaction,
    apart from waiting for the GIL."""
    median_lock_hold_ms: float


class AppendLog:
    """The durable log of change records under ``directory`` (see module doc)."""

    DELETE_CHUNK = 1_000
    """Log records deleted per compaction transaction: bounds append's wait."""
    READ_CHUNK = 8_192
    """Records copied out per read transaction during replay."""
    SYNC_INTERVAL = 1.0

    def __init__(
        self,
        directory: Path,
        fsync: FsyncPolicy = "always",
        map_size_max: int = 64 * 2**30,
        initial_map_size: int = 64 * 2**20,
    ) -> None:
        if fsync not in _POLICIES:
            raise ValueError(f"fsync must be one of {_POLICIES}, not {fsync!r}")
        if map_size_max < 256 * 1024:
            raise ValueError("map_size_max must be at least 256 KiB")
        self.directory = Path(directory)
        self.fsync: FsyncPolicy = fsync
        self.map_size_max = page_round(map_size_max)
        reserve = min(max(self.map_size_max // 16, 128 * 1024), 256 * MIB)
        self._append_limit = page_round(self.map_size_max - reserve)
        self._initial_map_size = page_round(
            max(min(initial_map_size, self._append_limit), 64 * 1024)
        )
        self._lock = threading.Lock()  # every txn on the log env, and resizes
        self._sync_lock = threading.Lock()  # env.sync() vs resize/close
        self._compact_lock = threading.Lock()
        self._closed = False
        self._encoders = threading.local()
        self._extra_dbs: dict[bytes, lmdb._Database] = {}
        self.last_seq = 0
        self._log_records = 0
        self._snapshot: SnapshotRef | None = None
        self._snapshot_bytes = 0
        self._commits = 0
        self._synced_commits = 0
        self._last_sync = time.monotonic()
        self._map_grows = 0

        self.directory.mkdir(parents=True, exist_ok=True)
        self._dirlock = DirLock(self.directory)
        try:
            self._open()
        except BaseException:
            self._dirlock.release()
            raise

    # -- opening -------------------------------------------------------------

    @property
    def _log_path(self) -> Path:
        return self.directory / LOG_DIR

    @property
    def _snap_root(self) -> Path:
        return self.directory / SNAPSHOT_DIR

    def _damaged(self, what: str, exc: BaseException | str) -> LogDamagedError:
        return LogDamagedError(
            f"{what} in {self.directory} ({exc}); "
            f"run `{check_command(self.directory)}` to inspect it"
        )

    def _open(self) -> None:
        self._log_path.mkdir(exist_ok=True)
        self._snap_root.mkdir(exist_ok=True)
        data_file = self._log_path / DATA_FILE
        map_size = page_round(max(self._initial_map_size, file_size(data_file)))
        try:
            self._env = lmdb.open(
                str(self._log_path),
                map_size=map_size,
                max_dbs=MAX_DBS,
                sync=self.fsync == "always",
                metasync=True,
                subdir=True,
                max_spare_txns=2,
            )
        except _DAMAGE_ERRORS as exc:
            raise self._damaged("the log environment can't be opened", exc) from exc
        except lmdb.VersionMismatchError as exc:
            raise LogFormatError(f"{self._log_path}: {exc}") from exc
        try:
            self._load_state()
        except BaseException:
            self._env.close()
            raise
        self._remove_stale_snapshots()

    def _load_state(self) -> None:
        env = self._env
        try:
            self._log_db = env.open_db(LOG_DB)
            self._meta_db = env.open_db(META_DB)
            with env.begin(write=True) as txn:
                layout = txn.get(META_LAYOUT, db=self._meta_db)
                if layout is None:
                    txn.put(META_LAYOUT, str(LAYOUT_VERSION).encode(), db=self._meta_db)
                elif layout != str(LAYOUT_VERSION).encode():
                    raise LogFormatError(
                        f"{self.directory} has layout {layout!r}; this geofleetd "
                        f"reads layout {LAYOUT_VERSION}"
                    )
                pointer = txn.get(META_SNAPSHOT, db=self._meta_db)
                cursor = txn.cursor(self._log_db)
                last_key = cursor.key() if cursor.last() else b""
                self._log_records = txn.stat(self._log_db)["entries"]
        except _DAMAGE_ERRORS as exc:
            raise self._damaged("the log can't be read", exc) from exc
        if pointer is not None:
            try:
                self._snapshot = SnapshotRef.from_value(pointer)
            except RecordDecodeError as exc:
                raise self._damaged("the snapshot pointer is damaged", exc) from None
            snap_file = self._snap_root / self._snapshot.name / DATA_FILE
            if not snap_file.exists():
                raise self._damaged(
                    "the current snapshot is missing", str(snap_file.parent)
                )
            self._snapshot_bytes = file_size(snap_file)
        last = int.from_bytes(last_key, "big") if last_key else 0
        self.last_seq = max(last, self.snapshot_seq)

    def _remove_stale_snapshots(self) -> None:
        current = self._snapshot.name if self._snapshot else None
        for entry in sorted(self._snap_root.iterdir()):
            if entry.name.startswith(SNAPSHOT_PREFIX) and entry.name != current:
                log.info("removing leftover snapshot %s", entry)
                remove_snapshot(self._snap_root, entry.name)

    # -- small accessors -----------------------------------------------------

    @property
    def snapshot_seq(self) -> int:
        """The seq the current snapshot describes (0 if there is none)."""
        return self._snapshot.upto_seq if self._snapshot else 0

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the log in {self.directory} is closed")

    # -- writing -------------------------------------------------------------

    def _grow(self, limit: int) -> bool:
        """Double the map, capped at ``limit``; False if already there.

        Caller holds ``self._lock`` and no transaction is open.
        """
        current = self._env.info()["map_size"]
        if current >= limit:
            return False
        new = page_round(min(limit, max(current * 2, current + MIB)))
        with self._sync_lock:
            self._env.set_mapsize(new)
        self._map_grows += 1
        log.info("log map grown from %d to %d bytes", current, new)
        return True

    def _write(
        self,
        body: Callable[[lmdb.Transaction[bytes]], None],
        limit: int,
        need: Callable[[], int],
    ) -> None:
        """Run ``body`` in one write transaction and commit it, growing the map.

        Caller holds ``self._lock``. Raises StorageFullError (nothing committed) at
        ``limit`` or when the disk refuses the write.
        """
        for _attempt in range(64):
            try:
                with self._env.begin(write=True) as txn:
                    body(txn)
                self._commits += 1
                return
            except lmdb.MapFullError:
                if not self._grow(limit):
                    raise StorageFullError(
                        f"the log reached its size ceiling ({self.map_size_max} "
                        "bytes); compact it (AOFSHRINK) or raise the ceiling",
                        "OOM",
                    ) from None
            except lmdb.Error as exc:
                cause = storage_full_cause(exc, self._log_path / DATA_FILE, need())
                if cause is None:
                    raise
                raise StorageFullError(f"the log can't grow: {cause}", "OOM") from exc
        raise RuntimeError("log map growth did not converge")

    def _thread_encoder(self) -> RecordEncoder:
        encoder: RecordEncoder | None = getattr(self._encoders, "encoder", None)
        if encoder is None:
            encoder = self._encoders.encoder = RecordEncoder()
        return encoder

    def _extra_db(self, name: bytes) -> lmdb._Database:
        db = self._extra_dbs.get(name)
        if db is None:
            if name in RESERVED_DBS or not name:
                raise ValueError(f"sub-database name {name!r} is reserved")
            with self._lock:
                self._check_open()
                db = self._env.open_db(name)
            self._extra_dbs[name] = db
        return db

    def append(self, records: Sequence[Any], extra: Sequence[ExtraOp] = ()) -> int:
        """Commit ``records`` (and ``extra`` ops) in one transaction; new last_seq.

        Under ``always`` the batch is on disk when this returns. Raises
        StorageFullError at the map ceiling or on a full disk, and msgpack's
        TypeError/ValueError/OverflowError for a record it can't pack; in every
        error case nothing of the batch is in the log and last_seq is unchanged.
        """
        self._check_open()
        count = len(records)
        if count == 0 and not extra:
            return self.last_seq
        values = self._thread_encoder().encode_values(records)
        if len(values) != count:
            raise ValueError("records changed length while being encoded")
        ops = [(self._extra_db(name), key, value) for name, key, value in extra]
        log_db = self._log_db
        first = 0

        def body(txn: lmdb.Transaction[bytes]) -> None:
            if values:
                items = zip(keyrange(first, count), values, strict=True)
                _consumed, added = txn.cursor(log_db).putmulti(items, append=True)
                if added != count:
                    raise RuntimeError(
                        f"log append of seq {first}.. stored {added} of {count} "
                        "records (sequence numbers out of order?)"
                    )
            for db, key, value in ops:
                if value is None:
                    txn.delete(key, db=db)
                else:
                    txn.put(key, value, db=db)

        def need() -> int:
            return sum(len(v) + 32 for v in values) + sum(
                len(k) + len(v or b"") + 32 for _, k, v in extra
            )

        with self._lock:
            self._check_open()
            # Numbers are assigned under the lock, so concurrent appends from
            # several threads stay ordered and gap-free.
            first = self.last_seq + 1
            self._write(body, self._append_limit, need)
            self._log_records += count
            self.last_seq = first + count - 1
            return self.last_seq

    def sync_if_due(self) -> None:
        """Under ``everysec``, flush if anything is unsynced and the last flush
        started about ``SYNC_INTERVAL`` ago (10% early is accepted, so a 1 s timer
        with jitter does not skip every other second). Does not take the writer
        lock: it may run in a worker thread while appends go on."""
        if self.fsync != "everysec" or self._commits == self._synced_commits:
            return
        if time.monotonic() - self._last_sync < self.SYNC_INTERVAL * 0.9:
            return
        self.sync()

    def sync(self) -> None:
        """Flush every commit so far to disk now (any policy)."""
        with self._sync_lock:
            if self._closed:
                return
            target = self._commits
            started = time.monotonic()
            self._env.sync(True)
            self._synced_commits = target
            self._last_sync = started

    def read_extra(self, name: bytes) -> list[tuple[bytes, bytes]]:
        """Every (key, value) of the extra sub-database ``name``, in key order."""
        db = self._extra_db(name)
        with self._lock:
            self._check_open()
            with self._env.begin() as txn:
                return list(txn.cursor(db).iternext())

    # -- reading -------------------------------------------------------------

    def replay(self) -> Iterator[Any]:
        """Yield the snapshot's records, then the log's records after it, in order.

        Raises CorruptRecordError at the first damaged or missing record: records
        before it have been yielded, nothing after it is. Raises LogFormatError
        for an intact record of a newer format, and LogDamagedError if LMDB
        itself can't read a file.
        """
        self._check_open()
        snapshot = self._snapshot
        if snapshot is not None:
            path = self._snap_root / snapshot.name
            yield from iter_snapshot(path, snapshot, self.directory)
        yield from self._replay_log(snapshot.upto_seq + 1 if snapshot else 1)

    def _read_chunk(self, start: int) -> list[tuple[bytes, bytes]]:
        with self._lock:
            self._check_open()
            try:
                with self._env.begin() as txn:
                    cursor = txn.cursor(self._log_db)
                    if not cursor.set_range(encode_key(start)):
                        return []
                    return list(itertools.islice(cursor.iternext(), self.READ_CHUNK))
            except _DAMAGE_ERRORS as exc:
                raise self._damaged(
                    f"the log can't be read after seq {start - 1}", exc
                ) from exc

    def _replay_log(self, expected: int) -> Iterator[Any]:
        directory = self.directory
        crc_start = CRC_START
        crc32 = zlib.crc32
        version = FORMAT_VERSION
        unpack = unpack_payload
        from_bytes = int.from_bytes
        while True:
            pairs = self._read_chunk(expected)
            for key, value in pairs:
                seq = from_bytes(key, "big")
                if seq != expected or len(key) != 8:
                    if seq > expected and len(key) == 8:
                        reason = f"records {expected}..{seq - 1} are missing"
                    else:
                        reason = f"malformed key {key.hex()}"
                    raise CorruptRecordError(expected, reason, directory)
                payload = value[HEADER_SIZE:]
                if (
                    value[0] != version
                    or len(payload) == 0
                    or crc32(payload, crc_start) != from_bytes(value[1:5], "big")
                ):
                    try:
                        decode_value(value)  # says precisely what is wrong
                    except RecordDecodeError as exc:
                        if exc.newer:
                            raise LogFormatError(
                                f"log record seq {seq}: {exc.reason}"
                            ) from None
                        raise CorruptRecordError(seq, exc.reason, directory) from None
                    raise CorruptRecordError(seq, "bad record header", directory)
                try:
                    record = unpack(payload)
                except RecordDecodeError as exc:
                    raise CorruptRecordError(seq, exc.reason, directory) from None
                yield record
                expected += 1
            if len(pairs) < self.READ_CHUNK:
                return

    # -- compaction ------------------------------------------------------------

    def should_compact(
        self, live_records: int, ratio: float, min_log_records: int = 10_000
    ) -> bool:
        """True when the log holds more than ``ratio`` x ``live_records`` records
        (and at least ``min_log_records``, so a tiny data set isn't compacted on
        every write)."""
        n = self._log_records
        return n >= min_log_records and n > ratio * live_records

    def snapshot_and_compact(
        self, records: Iterable[Any], upto_seq: int
    ) -> CompactionResult:
        """Make ``records`` (the whole state as of ``upto_seq``) the snapshot, then
        delete log records <= ``upto_seq``. Safe to run in a worker thread while
        another thread appends; ``records`` must not change while it is read
        (pass a list, or a generator over a frozen copy).

        A failure before the pointer commit (StorageFullError, an unpackable
        record) leaves the previous snapshot and the whole log in place.
        """
        if not self._compact_lock.acquire(blocking=False):
            raise RuntimeError("a compaction is already running")
        try:
            return self._compact(records, upto_seq)
        finally:
            self._compact_lock.release()

    def _compact(self, records: Iterable[Any], upto_seq: int) -> CompactionResult:
        self._check_open()
        previous = self._snapshot
        if upto_seq < self.snapshot_seq or upto_seq > self.last_seq:
            raise ValueError(
                f"upto_seq {upto_seq} outside [{self.snapshot_seq}, {self.last_seq}]"
            )
        t0 = time.perf_counter()
        ref, nbytes = write_snapshot(
            self._snap_root,
            records,
            upto_seq,
            self._initial_map_size,
            self.map_size_max,
        )
        t1 = time.perf_counter()
        holds: list[float] = []
        try:
            with self._lock:
                h0 = time.perf_counter()
                self._check_open()
                value = ref.to_value()
                meta = self._meta_db

                def put_pointer(txn: lmdb.Transaction[bytes]) -> None:
                    txn.put(META_SNAPSHOT, value, db=meta)

                self._write(put_pointer, self.map_size_max, lambda: len(value) + 64)
                self._snapshot = ref
                self._snapshot_bytes = nbytes
                holds.append(time.perf_counter() - h0)
        except BaseException:
            remove_snapshot(self._snap_root, ref.name)
            raise
        # The pointer must be on disk before the old snapshot or any log record
        # it replaces is deleted, whatever the policy. Outside the writer lock:
        # under "no" this may flush a lot, and appends need not wait for it.
        self.sync()
        if previous is not None:
            remove_snapshot(self._snap_root, previous.name)

        deleted = self._delete_upto(upto_seq, holds)
        t2 = time.perf_counter()
        self._shrink_map_to_append_limit()
        return CompactionResult(
            upto_seq=upto_seq,
            snapshot_records=ref.records,
            snapshot_bytes=nbytes,
            log_records_deleted=deleted,
            snapshot_seconds=t1 - t0,
            delete_seconds=t2 - t1,
            lock_holds=len(holds),
            max_lock_hold_ms=max(holds) * 1000.0,
            median_lock_hold_ms=statistics.median(holds) * 1000.0,
        )

    def _delete_upto(self, upto_seq: int, holds: list[float]) -> int:
        """Delete log records <= upto_seq, DELETE_CHUNK per transaction."""
        upto_key = encode_key(upto_seq)
        chunk = self.DELETE_CHUNK
        log_db = self._log_db
        deleted = 0
        # Only records <= upto_seq are deleted and no new ones can appear, so
        # this many rounds always suffice.
        rounds = self._log_records // chunk + 2
        for _round in range(rounds):
            n = 0

            def body(txn: lmdb.Transaction[bytes]) -> None:
                nonlocal n
                n = 0
                cursor = txn.cursor(log_db)
                if not cursor.first():
                    return
                while n < chunk:
                    key = cursor.key()
                    if not key or key > upto_key:
                        return
                    if not cursor.delete():
                        return
                    n += 1

            with self._lock:
                h0 = time.perf_counter()
                self._check_open()
                self._write(body, self.map_size_max, lambda: 64 * 1024)
                self._log_records -= n
                holds.append(time.perf_counter() - h0)
            deleted += n
            if n < chunk:
                break
            # Let a waiting append take the lock (and the GIL) between chunks.
            time.sleep(0.0001)
        return deleted

    def _shrink_map_to_append_limit(self) -> None:
        """Give back the reserve compaction may have used (LMDB keeps the map at
        least as large as the file's used pages)."""
        with self._lock:
            if self._closed:
                return
            if self._env.info()["map_size"] > self._append_limit:
                with self._sync_lock:
                    self._env.set_mapsize(self._append_limit)

    # -- information -----------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters for INFO/SERVER replies and tests."""
        with self._lock:
            self._check_open()
            with self._env.begin() as txn:
                st = txn.stat(self._log_db)
            info = self._env.info()
        pages = st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
        return {
            "last_seq": self.last_seq,
            "snapshot_seq": self.snapshot_seq,
            "log_records": self._log_records,
            "log_bytes": pages * st["psize"],
            "log_file_bytes": file_size(self._log_path / DATA_FILE),
            "snapshot_records": self._snapshot.records if self._snapshot else 0,
            "snapshot_bytes": self._snapshot_bytes,
            "map_size": info["map_size"],
            "map_size_max": self.map_size_max,
            "map_used_bytes": (info["last_pgno"] + 1) * st["psize"],
            "map_grows": self._map_grows,
            "commits": self._commits,
            "unsynced_commits": (
                0 if self.fsync == "always" else self._commits - self._synced_commits
            ),
        }

    def close(self) -> None:
        """Sync, close the environment and release the directory. Idempotent."""
        if self._closed:
            return
        with self._lock, self._sync_lock:
            if self._closed:
                return
            self._closed = True
            try:
                with contextlib.suppress(lmdb.Error):
                    self._env.sync(True)
                self._env.close()
            finally:
                self._dirlock.release()

    def __enter__(self) -> AppendLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
