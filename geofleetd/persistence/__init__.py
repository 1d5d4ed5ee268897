"""Durable storage of change records: the LMDB append log, snapshots and repair.

This package owns everything geofleetd keeps on disk under ``--dir``:

- ``codec``: the stored form of a record (8-byte big-endian seq key; value =
  version byte, CRC-32 of version + payload, msgpack payload);
- ``log``: :class:`AppendLog`, group commit (one LMDB transaction per batch, synced
  under ``fsync = always``), replay, snapshot + compaction, map growth up to a
  ceiling and StorageFullError beyond it;
- ``snapshot``: snapshot environments and the pointer to the current one;
- ``check``: :func:`check` (verify everything, optionally back up and repair);
- ``layout``: directory layout, the process lock, file-system helpers;
- ``errors``: CorruptRecordError and the other reasons not to start.

What survives what: under ``always`` a record is on disk when ``append`` returns,
so a crash or power cut loses nothing acknowledged. Under ``everysec`` a process
crash loses nothing and a power cut up to about a second (call ``sync_if_due``
from a 1 s timer). Under ``no`` a power cut loses what the OS had not written.

Limits: the package stores and returns records; it does not interpret them (the
server and store own their meaning), schedules nothing (the server calls
``sync_if_due`` and decides when to compact) and serves no clients.
"""

from geofleetd.persistence.check import CheckReport, check
from geofleetd.persistence.errors import (
    CorruptRecordError,
    LogDamagedError,
    LogFormatError,
    LogLockedError,
)
from geofleetd.persistence.log import (
    AppendLog,
    CompactionResult,
    ExtraOp,
    FsyncPolicy,
)

__all__ = [
    "AppendLog",
    "CheckReport",
    "CompactionResult",
    "CorruptRecordError",
    "ExtraOp",
    "FsyncPolicy",
    "LogDamagedError",
    "LogFormatError",
    "LogLockedError",
    "check",
]
