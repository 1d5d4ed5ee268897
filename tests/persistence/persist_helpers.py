"""Helpers for the persistence tests: record factories and byte-level tampering.

Tampering goes through the lmdb API on the closed directory (never through
AppendLog), the way bit rot or a bad copy would look to the code under test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lmdb

from geofleetd.persistence.codec import encode_key
from geofleetd.persistence.layout import LOG_DB, LOG_DIR, MAX_DBS, SNAPSHOT_DB


def make_records(n: int, start: int = 0, tag: str = "r") -> list[list[Any]]:
    """SET-like change records, distinct by id."""
    return [
        [
            "set",
            "fleet",
            f"{tag}{i}",
            ["p", 40.7 + i * 1e-6, -74.0 - i * 1e-7],
            {"speed": float(i % 90)},
            None,
        ]
        for i in range(start, start + n)
    ]


def _env(path: Path, max_dbs: int = MAX_DBS) -> lmdb.Environment:
    return lmdb.open(str(path), max_dbs=max_dbs, map_size=1 << 30)


def flip_log_byte(directory: Path, seq: int, offset: int = -1) -> bytes:
    """Flip one byte of log record ``seq`` in place; returns the new value."""
    env = _env(directory / LOG_DIR)
    try:
        db = env.open_db(LOG_DB, create=False)
        with env.begin(write=True) as txn:
            value = txn.get(encode_key(seq), db=db)
            assert value is not None, f"no log record {seq}"
            raw = bytearray(value)
            raw[offset] ^= 0x40
            txn.put(encode_key(seq), bytes(raw), db=db)
        return bytes(raw)
    finally:
        env.close()


def put_log_value(directory: Path, seq: int, value: bytes | None) -> None:
    """Store ``value`` as log record ``seq`` (None deletes it)."""
    env = _env(directory / LOG_DIR)
    try:
        db = env.open_db(LOG_DB, create=False)
        with env.begin(write=True) as txn:
            if value is None:
                txn.delete(encode_key(seq), db=db)
            else:
                txn.put(encode_key(seq), value, db=db)
    finally:
        env.close()


def log_value(directory: Path, seq: int) -> bytes | None:
    env = _env(directory / LOG_DIR)
    try:
        db = env.open_db(LOG_DB, create=False)
        with env.begin() as txn:
            return txn.get(encode_key(seq), db=db)
    finally:
        env.close()


def log_keys(directory: Path) -> list[int]:
    env = _env(directory / LOG_DIR)
    try:
        db = env.open_db(LOG_DB, create=False)
        with env.begin() as txn:
            return [
                int.from_bytes(k, "big") for k in txn.cursor(db).iternext(values=False)
            ]
    finally:
        env.close()


def flip_snapshot_byte(snapshot_dir: Path, position: int) -> None:
    """Flip the last byte of snapshot record ``position``."""
    env = _env(snapshot_dir, max_dbs=2)
    try:
        db = env.open_db(SNAPSHOT_DB, create=False)
        with env.begin(write=True) as txn:
            value = txn.get(encode_key(position), db=db)
            assert value is not None
            raw = bytearray(value)
            raw[-1] ^= 0x01
            txn.put(encode_key(position), bytes(raw), db=db)
    finally:
        env.close()
