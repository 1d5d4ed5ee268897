"""``geofleetd check``: verify a data directory and, on request, repair it.

This module owns :func:`check` and its :class:`CheckReport`. A check, with the
directory lock held (so no server is running on it):

1. verifies each LMDB file's structure with py-lmdb's offline verifier
   (``lmdb.verify``), which reads the file byte by byte and never hands it to
   liblmdb, so a damaged B-tree is reported instead of crashing the checker;
2. opens the files read-only and reads every entry of every sub-database;
3. decodes every snapshot record and every log record after the snapshot
   (checksum, format version, msgpack), and checks that the log's sequence
   numbers continue the snapshot's without gaps.

``repair=True`` then, if the damage is of a kind it can fix: copies the whole
directory to ``<dir>.backup-<YYYYmmdd-HHMMSS>`` next to it, deletes the first
damaged log record and every log record after it, deletes damaged snapshot
records (each snapshot record stands alone, so the others stay valid), records
the new snapshot size, and checks again. The report says what was dropped.

Limits: a repair never rewrites a damaged B-tree. LMDB structure damage (the
verifier's findings), a damaged or dangling snapshot pointer, and records written
by a newer geofleetd are reported as needing a restore from a backup or replica,
and the directory is left untouched. Log records at or below the snapshot's seq
are obsolete (already in the snapshot, waiting for compaction to delete them) and
are not decoded. Extra sub-databases (e.g. a hook outbox) hold caller-defined
bytes: they are read to the end, not decoded.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import lmdb
from lmdb import verify as lmdb_verify

from geofleetd.persistence.codec import (
    RecordDecodeError,
    RecordEncoder,
    decode_value,
    encode_key,
)
from geofleetd.persistence.errors import repair_command
from geofleetd.persistence.layout import (
    DATA_FILE,
    LOG_DB,
    LOG_DIR,
    MAX_DBS,
    META_DB,
    META_SNAPSHOT,
    SNAPSHOT_DB,
    SNAPSHOT_DIR,
    SNAPSHOT_INFO,
    DirLock,
    file_size,
    fsync_dir,
    grow_hint,
    open_readonly,
)
from geofleetd.persistence.snapshot import SnapshotRef, read_info

_MAX_LISTED = 20
_DELETE_CHUNK = 10_000


@dataclass
class CheckReport:
    """What a check found and, after a repair, what it changed."""

    directory: Path
    log_records: int = 0
    first_seq: int = 0
    last_seq: int = 0
    obsolete_records: int = 0
    snapshot_seq: int = 0
    snapshot_records: int = 0
    extra_entries: dict[str, int] = field(default_factory=dict)
    damaged_seq: int | None = None
    """First damaged (or missing) log seq; it and every later record must go."""
    damage_reason: str = ""
    log_records_to_drop: int = 0
    damaged_snapshot_positions: list[int] = field(default_factory=list)
    snapshot_records_missing: int = 0
    problems: list[str] = field(default_factory=list)
    """Every finding that is damage, in the order found."""
    unrepairable: list[str] = field(default_factory=list)
    """The subset of findings a repair can't fix in place."""
    warnings: list[str] = field(default_factory=list)
    repair_requested: bool = False
    repaired: bool = False
    repaired_problems: list[str] = field(default_factory=list)
    dropped_log_records: int = 0
    dropped_snapshot_records: int = 0
    backup: Path | None = None

    @property
    def ok(self) -> bool:
        """True when nothing (left) is damaged."""
        return not self.problems

    @property
    def repairable(self) -> bool:
        return bool(self.problems) and not self.unrepairable

    def _problem(self, text: str, repairable: bool = True) -> None:
        self.problems.append(text)
        if not repairable:
            self.unrepairable.append(text)

    def summary(self) -> str:
        """A few human-readable lines; the first says OK, DAMAGED or REPAIRED."""
        d = self.directory
        if self.repaired:
            state = "REPAIRED, now OK" if self.ok else "REPAIRED, still DAMAGED"
        else:
            state = "OK" if self.ok else "DAMAGED"
        lines = [f"geofleetd check {d}: {state}"]
        if self.snapshot_seq or self.snapshot_records:
            lines.append(
                f"  snapshot: state as of seq {self.snapshot_seq}, "
                f"{self.snapshot_records} records"
            )
        else:
            lines.append("  snapshot: none")
        if self.log_records:
            lines.append(
                f"  log: {self.log_records} records, seq {self.first_seq}.."
                f"{self.last_seq}"
                + (
                    f" ({self.obsolete_records} already in the snapshot, "
                    "awaiting compaction)"
                    if self.obsolete_records
                    else ""
                )
            )
        else:
            lines.append("  log: empty")
        for name, count in sorted(self.extra_entries.items()):
            lines.append(f"  sub-database {name}: {count} entries")
        if self.repaired:
            lines.append(f"  backup of the damaged directory: {self.backup}")
            for text in self.repaired_problems:
                lines.append(f"  repaired: {text}")
            lines.append(
                f"  dropped {self.dropped_log_records} log records and "
                f"{self.dropped_snapshot_records} snapshot records"
            )
        for text in self.problems:
            lines.append(f"  damage: {text}")
        for text in self.warnings:
            lines.append(f"  warning: {text}")
        if self.problems and not self.repaired:
            if self.unrepairable:
                lines.append(
                    "  a repair can't fix this in place: restore the directory "
                    "from a backup or a replica"
                    + (" (nothing was changed)" if self.repair_requested else "")
                )
            else:
                drop = []
                if self.damaged_seq is not None:
                    drop.append(
                        f"{self.log_records_to_drop} log records (seq "
                        f"{self.damaged_seq} and everything after it)"
                    )
                if self.damaged_snapshot_positions:
                    drop.append(
                        f"{len(self.damaged_snapshot_positions)} damaged "
                        "snapshot records"
                    )
                what = " and ".join(drop) or "nothing but the bookkeeping"
                lines.append(
                    f"  `{repair_command(d)}` keeps a backup, then drops {what}"
                )
        return "\n".join(lines)


# -- scanning -----------------------------------------------------------------


def _verify_file(env_dir: Path, label: str, report: CheckReport) -> bool:
    """Run the offline structure verifier; False (and a problem) if it fails."""
    data_file = env_dir / DATA_FILE
    try:
        found = cast(
            "list[str]",
            lmdb_verify.verify(str(data_file), subdir=False),  # type: ignore[no-untyped-call]
        )
    except (lmdb_verify.VerifyError, OSError) as exc:
        report._problem(f"{label}: LMDB file can't be verified: {exc}", False)
        return False
    errors = [text for text in found if "a leak" not in text]
    for text in found:
        if "a leak" in text:
            report.warnings.append(f"{label}: {text} (space only, no data lost)")
    for text in errors[:_MAX_LISTED]:
        report._problem(f"{label}: LMDB structure: {text}", False)
    return not errors


def _scan_snapshot(directory: Path, ref: SnapshotRef, report: CheckReport) -> None:
    path = directory / SNAPSHOT_DIR / ref.name
    report.snapshot_seq = ref.upto_seq
    if not (path / DATA_FILE).exists():
        report._problem(f"the current snapshot {path} is missing", False)
        return
    if not _verify_file(path, f"snapshot {ref.name}", report):
        return
    env = open_readonly(path, max_dbs=2)
    try:
        try:
            info = read_info(env)
        except RecordDecodeError as exc:
            report._problem(f"snapshot info is damaged: {exc.reason}", False)
            return
        if info is None or info.get("upto_seq") != ref.upto_seq:
            report._problem(
                f"snapshot info {info} does not match its pointer {ref}", False
            )
            return
        db = env.open_db(SNAPSHOT_DB, create=False)
        good = 0
        with env.begin() as txn:
            for key, value in txn.cursor(db).iternext():
                position = int.from_bytes(key, "big")
                try:
                    if len(key) != 8:
                        raise RecordDecodeError(f"malformed key {key.hex()}")
                    decode_value(value)
                except RecordDecodeError as exc:
                    if exc.newer:
                        report._problem(
                            f"snapshot record #{position}: {exc.reason}", False
                        )
                        return
                    report.damaged_snapshot_positions.append(position)
                    if len(report.damaged_snapshot_positions) <= _MAX_LISTED:
                        report._problem(f"snapshot record #{position}: {exc.reason}")
                    continue
                good += 1
        damaged = len(report.damaged_snapshot_positions)
        if damaged > _MAX_LISTED:
            report._problem(
                f"... {damaged - _MAX_LISTED} more damaged snapshot records"
            )
        report.snapshot_records = good
        missing = ref.records - good - damaged
        if missing > 0:
            report.snapshot_records_missing = missing
            report._problem(f"{missing} snapshot records are missing")
        elif missing < 0:
            report._problem(
                f"snapshot holds {good + damaged} records, its pointer says "
                f"{ref.records}"
            )
    finally:
        env.close()


def _scan_log(env: lmdb.Environment, report: CheckReport) -> None:
    snap_seq = report.snapshot_seq
    expected = snap_seq + 1
    with env.begin() as txn:
        log_db = env.open_db(LOG_DB, txn=txn, create=False)
        cursor = txn.cursor(log_db)
        for key, value in cursor.iternext():
            report.log_records += 1
            seq = int.from_bytes(key, "big")
            if report.first_seq == 0:
                report.first_seq = seq
            report.last_seq = seq
            if report.damaged_seq is not None:
                report.log_records_to_drop += 1
                continue
            if len(key) != 8:
                report.damaged_seq = expected
                report.damage_reason = f"malformed key {key.hex()}"
            elif seq <= snap_seq:
                report.obsolete_records += 1
                continue
            elif seq != expected:
                report.damaged_seq = expected
                report.damage_reason = f"records {expected}..{seq - 1} are missing"
            else:
                try:
                    decode_value(value)
                except RecordDecodeError as exc:
                    if exc.newer:
                        report._problem(f"log record seq {seq}: {exc.reason}", False)
                        return
                    report.damaged_seq = seq
                    report.damage_reason = exc.reason
            if report.damaged_seq is not None:
                report.log_records_to_drop += 1
                report._problem(
                    f"log record seq {report.damaged_seq}: {report.damage_reason}"
                )
            expected += 1


def _scan_extras(env: lmdb.Environment, report: CheckReport) -> None:
    with env.begin() as txn:
        names = [bytes(n) for n in env.dbs(txn)]
        for name in names:
            if name in (LOG_DB, META_DB):
                continue
            db = env.open_db(name, txn=txn, create=False)
            count = sum(1 for _ in txn.cursor(db).iternext(values=True))
            report.extra_entries[name.decode(errors="backslashreplace")] = count


def _scan(directory: Path, report: CheckReport) -> SnapshotRef | None:
    """Fill ``report``; the current snapshot's pointer, if any."""
    log_path = directory / LOG_DIR
    if not (log_path / DATA_FILE).exists():
        report.warnings.append("no log yet (the directory has never been used)")
        return None
    if not _verify_file(log_path, "log", report):
        return None
    ref: SnapshotRef | None = None
    try:
        env = open_readonly(log_path)
    except lmdb.Error as exc:
        report._problem(f"log: LMDB can't open it: {exc}", False)
        return None
    try:
        with env.begin() as txn:
            meta = env.open_db(META_DB, txn=txn, create=False)
            pointer = txn.get(META_SNAPSHOT, db=meta)
        if pointer is not None:
            try:
                ref = SnapshotRef.from_value(pointer)
            except RecordDecodeError as exc:
                report._problem(f"the snapshot pointer is damaged: {exc}", False)
                return None
            _scan_snapshot(directory, ref, report)
            report.snapshot_seq = ref.upto_seq
        _scan_log(env, report)
        _scan_extras(env, report)
    except lmdb.Error as exc:
        report._problem(f"log: LMDB error while reading: {exc}", False)
    finally:
        env.close()
    return ref


# -- repairing ----------------------------------------------------------------


def _backup(directory: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = directory.parent / f"{directory.name}.backup-{stamp}"
    target = base
    for n in range(1, 1000):
        if not target.exists():
            break
        target = base.with_name(f"{base.name}-{n}")
    else:
        raise FileExistsError(f"no free backup name next to {directory}")
    shutil.copytree(
        directory, target, ignore=shutil.ignore_patterns("lock.mdb", "LOCK")
    )
    for root, _dirs, files in os.walk(target):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))
    fsync_dir(target.parent)
    return target


def _open_for_repair(path: Path, max_dbs: int) -> lmdb.Environment:
    size = grow_hint(file_size(path / DATA_FILE))
    return lmdb.open(str(path), map_size=size, max_dbs=max_dbs, subdir=True)


def _drop_log_tail(directory: Path, from_seq: int) -> int:
    env = _open_for_repair(directory / LOG_DIR, MAX_DBS)
    try:
        log_db = env.open_db(LOG_DB, create=False)
        start = encode_key(from_seq)
        dropped = 0
        for _round in range(2**40 // _DELETE_CHUNK):
            n = 0
            with env.begin(write=True) as txn:
                cursor = txn.cursor(log_db)
                if cursor.set_range(start):
                    while n < _DELETE_CHUNK and cursor.key() and cursor.delete():
                        n += 1
            dropped += n
            if n < _DELETE_CHUNK:
                break
        env.sync(True)
        return dropped
    finally:
        env.close()


def _drop_snapshot_records(
    directory: Path, ref: SnapshotRef, positions: list[int], kept: int
) -> int:
    """Delete damaged snapshot records; record the count that remains."""
    path = directory / SNAPSHOT_DIR / ref.name
    env = _open_for_repair(path, 2)
    dropped = 0
    try:
        db = env.open_db(SNAPSHOT_DB, create=False)
        meta = env.open_db(META_DB, create=False)
        encoder = RecordEncoder()
        with env.begin(write=True) as txn:
            for position in positions:
                if txn.delete(encode_key(position), db=db):
                    dropped += 1
            info = {"upto_seq": ref.upto_seq, "records": kept}
            txn.put(SNAPSHOT_INFO, encoder.encode(info), db=meta)
        env.sync(True)
    finally:
        env.close()
    log_env = _open_for_repair(directory / LOG_DIR, MAX_DBS)
    try:
        meta_db = log_env.open_db(META_DB, create=False)
        new_ref = SnapshotRef(ref.name, ref.upto_seq, kept)
        with log_env.begin(write=True) as txn:
            txn.put(META_SNAPSHOT, new_ref.to_value(), db=meta_db)
        log_env.sync(True)
    finally:
        log_env.close()
    return dropped


def check(directory: Path, repair: bool = False) -> CheckReport:
    """Verify every record and LMDB's structure under ``directory``.

    With ``repair=True`` and repairable damage: back up, drop, re-check (see the
    module doc). Raises LogLockedError if a server has the directory open.
    """
    directory = Path(directory).resolve()
    report = CheckReport(directory=directory, repair_requested=repair)
    if not directory.is_dir():
        report._problem(f"{directory} is not a directory", False)
        return report
    lock = DirLock(directory)
    try:
        ref = _scan(directory, report)
        if not (repair and report.repairable):
            return report
        backup = _backup(directory)
        dropped_log = 0
        dropped_snap = 0
        if report.damaged_seq is not None:
            dropped_log = _drop_log_tail(directory, report.damaged_seq)
        if ref is not None and (
            report.damaged_snapshot_positions or report.snapshot_records_missing
        ):
            dropped_snap = _drop_snapshot_records(
                directory,
                ref,
                report.damaged_snapshot_positions,
                report.snapshot_records,
            )
            dropped_snap += report.snapshot_records_missing
        after = CheckReport(directory=directory, repair_requested=True)
        _scan(directory, after)
        after.repaired = True
        after.repaired_problems = list(report.problems)
        after.backup = backup
        after.dropped_log_records = dropped_log
        after.dropped_snapshot_records = dropped_snap
        return after
    finally:
        lock.release()
