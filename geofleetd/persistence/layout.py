"""Where things live inside a data directory, and the small file-system helpers.

This module owns the directory layout and everything about it that is not LMDB
records: the names of environments and sub-databases, the exclusive process
lock, directory fsync, LMDB open settings shared by the log and the tools, map
size rounding, and the decision whether a failed LMDB write means "storage full".

Layout of a data directory ``D``::

    D/LOCK                     flock()ed by the one process using D
    D/log/data.mdb, lock.mdb   LMDB environment of the append log, sub-databases:
                                 "log"   seq (8 bytes BE) -> record
                                 "meta"  "layout" -> layout version,
                                         "snapshot" -> pointer to the snapshot
                                 others  caller-defined (e.g. a hook outbox)
    D/snapshots/snap-<seq>-<ns>/data.mdb
                               one LMDB environment per snapshot; only the one the
                               pointer names is current, others are leftovers that
                               opening the log removes.

Limits: no LMDB transactions happen here beyond the storage-full probe, and the
lock only excludes processes that use it (geofleetd itself); it does not protect
against other programs writing into ``D``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import resource
from pathlib import Path

import lmdb

from geofleetd.persistence.errors import LogLockedError

LAYOUT_VERSION = 1

LOCK_FILE = "LOCK"
LOG_DIR = "log"
SNAPSHOT_DIR = "snapshots"
SNAPSHOT_PREFIX = "snap-"
DATA_FILE = "data.mdb"

LOG_DB = b"log"
META_DB = b"meta"
SNAPSHOT_DB = b"snap"
RESERVED_DBS = frozenset({LOG_DB, META_DB})

META_LAYOUT = b"layout"
META_SNAPSHOT = b"snapshot"
SNAPSHOT_INFO = b"info"

MAX_DBS = 16
PAGE = 4096
MIB = 2**20


def page_round(size: int) -> int:
    """``size`` rounded up to a whole number of 4 KiB pages (at least one page)."""
    return max(PAGE, -(-size // PAGE) * PAGE)


def grow_hint(size: int) -> int:
    """A map size with room to delete records in a file of ``size`` bytes."""
    return page_round(max(size + 4 * MIB, size + size // 4))


def file_size(path: Path) -> int:
    """Size of ``path`` in bytes, 0 if it does not exist."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirLock:
    """An exclusive, non-blocking flock on ``D/LOCK``, held until release()."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LogLockedError(
                f"{directory} is in use by another geofleetd process "
                "(or another AppendLog in this one); stop it first"
            ) from None
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def open_readonly(path: Path, max_dbs: int = MAX_DBS) -> lmdb.Environment:
    """Open an environment for reading while holding the directory lock.

    ``lock=False``: the directory lock already keeps writers out, and a read-only
    open must not need to write ``lock.mdb``.
    """
    return lmdb.open(
        str(path),
        readonly=True,
        lock=False,
        max_dbs=max_dbs,
        subdir=True,
        create=False,
    )


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_EIO_TEXT = os.strerror(errno.EIO)


def _errno_of(exc: BaseException) -> int | None:
    args: tuple[object, ...] = exc.args
    if len(args) >= 2 and isinstance(args[1], int):
        return args[1]
    return None


def storage_full_cause(exc: BaseException, data_file: Path, need: int) -> str | None:
    """Why a failed LMDB write is "storage full", or None if it is something else.

    LMDB reports a short ``pwrite`` (the usual shape of a full disk or of a file
    size limit) as EIO, so for EIO this probes free space and RLIMIT_FSIZE.
    """
    if isinstance(exc, lmdb.DiskError):
        return "no space left on device"
    code = _errno_of(exc)
    if code in _FULL_ERRNOS:
        return os.strerror(code) if code is not None else "storage full"
    if code != errno.EIO and _EIO_TEXT not in str(exc):
        return None
    margin = need + 4 * MIB
    try:
        st = os.statvfs(data_file.parent)
    except OSError:
        return None
    blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    free = blocks * st.f_frsize
    if free < margin:
        return f"disk full ({free} bytes free)"
    soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY and file_size(data_file) + margin > soft:
        return f"file size limit reached ({soft} bytes)"
    return None
