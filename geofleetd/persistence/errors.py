"""Exceptions the persistence layer raises when stored data can't be trusted.

This module owns the errors that stop a server from starting or a tool from going
on: a damaged record (:class:`CorruptRecordError`), an LMDB file LMDB itself can't
use (:class:`LogDamagedError`), a data directory already in use by another process
(:class:`LogLockedError`) and a directory written by a newer, incompatible
geofleetd (:class:`LogFormatError`). Every damage message names the command that
inspects and repairs the directory.

Limits: a full map or disk is not an error of this module; it is
``geofleetd.errors.StorageFullError`` (wire code ``OOM``), because the server
answers it to clients. Nothing here is sent to a client.
"""

from __future__ import annotations

from pathlib import Path


def repair_command(directory: Path | str) -> str:
    """The shell command that keeps a backup and drops the damage in ``directory``."""
    return f"geofleetd check --dir {directory} --repair"


def check_command(directory: Path | str) -> str:
    """The shell command that only inspects ``directory``."""
    return f"geofleetd check --dir {directory}"


class LogDamagedError(Exception):
    """Stored data is damaged; the server must not start on it."""


class CorruptRecordError(LogDamagedError):
    """A record failed its checksum or could not be decoded.

    ``seq`` is the record's sequence number in the log, or, when ``source`` is
    ``"snapshot"``, the record's position (1-based) in the current snapshot.
    """

    def __init__(
        self,
        seq: int,
        reason: str,
        directory: Path | str | None = None,
        source: str = "log",
    ) -> None:
        self.seq = seq
        self.reason = reason
        self.directory = directory
        self.source = source
        where = "D" if directory is None else str(directory)
        if source == "log":
            what = f"log record seq {seq} is damaged: {reason}"
            fix = "keep a backup, then drop it and every record after it"
        else:
            what = f"snapshot record #{seq} is damaged: {reason}"
            fix = "keep a backup, then drop the damaged snapshot records"
        super().__init__(f"{what}; run `{repair_command(where)}` to {fix}")


class LogLockedError(Exception):
    """Another process (or another AppendLog in this one) has the directory open."""


class LogFormatError(Exception):
    """The directory was written in a layout or record format this build can't read.

    This is not damage: the data is intact but newer than this geofleetd.
    """
