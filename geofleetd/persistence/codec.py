"""The stored form of one change record: key, version, checksum and msgpack payload.

This module owns the byte layout every log and snapshot entry shares:

- key: the sequence number (log) or position (snapshot) as 8 bytes, big-endian,
  so LMDB's byte order is numeric order and appends go to the end of the B-tree;
- value: 1 byte format version (currently 1), 4 bytes CRC-32 (zlib, big-endian)
  computed over the version byte followed by the payload, then the payload: the
  record packed by msgpack with ``use_bin_type=True``.

Covering the version byte with the checksum lets a reader tell a flipped version
byte (damage) from a record written by a newer format (``newer=True``), which a
repair must never drop.

Text is packed and unpacked with ``unicode_errors="surrogateescape"``: the server
decodes client bytes that are not UTF-8 that way (an id or field sent as raw
bytes), and such a str must be stored and come back unchanged rather than make
the whole batch fail. Decoding uses ``raw=False`` (msgpack str comes back as
``str``, bin as ``bytes``), ``strict_map_key=False`` (map keys may be any hashable
msgpack value) and lists for arrays. Floats are packed as 64-bit doubles, so they
come back bit-for-bit.

Limits: the codec checks integrity, not meaning: a record that decodes is returned
whatever its shape. It does not compress. A record msgpack can't pack (an int
outside -2**63..2**64-1, a str with a lone surrogate outside U+DC80..U+DCFF, an
arbitrary object) raises from :meth:`RecordEncoder.encode_values` before anything
is stored. Tuples are stored as arrays and come back as lists.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from typing import Any

import msgpack

FORMAT_VERSION = 1
HEADER_SIZE = 5
KEY_SIZE = 8

_HEADER = struct.Struct(">BI")
_crc32 = zlib.crc32
# CRC of the version byte alone: the starting value for the payload's CRC.
_CRC_START = {v: _crc32(bytes([v])) for v in range(256)}
_SUPPORTED = frozenset({FORMAT_VERSION})
_UNICODE_ERRORS = "surrogateescape"
CRC_START = _CRC_START[FORMAT_VERSION]
"""Starting CRC value for payloads of the current version (for inlined loops)."""


class RecordDecodeError(ValueError):
    """One stored value is not a valid record; ``reason`` says why.

    ``newer`` is True when the value is intact but uses a format version this
    build does not know (written by a newer geofleetd): not damage.
    """

    def __init__(self, reason: str, newer: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.newer = newer


def encode_key(seq: int) -> bytes:
    """The 8-byte big-endian key of sequence number ``seq`` (0 <= seq < 2**64)."""
    return seq.to_bytes(KEY_SIZE, "big")


def decode_key(key: bytes | memoryview) -> int:
    """The sequence number stored in ``key``; ValueError if it is not 8 bytes."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"key of {len(key)} bytes, expected {KEY_SIZE}")
    return int.from_bytes(key, "big")


class RecordEncoder:
    """Packs records into stored values, reusing one msgpack Packer.

    Not thread-safe: give each thread its own encoder.
    """

    def __init__(self) -> None:
        self._packer = msgpack.Packer(
            use_bin_type=True, autoreset=True, unicode_errors=_UNICODE_ERRORS
        )

    def encode(self, record: Any) -> bytes:
        """The stored value of one record."""
        payload: bytes = self._packer.pack(record)
        crc = _crc32(payload, _CRC_START[FORMAT_VERSION])
        return _HEADER.pack(FORMAT_VERSION, crc) + payload

    def encode_values(self, records: Iterable[Any]) -> list[bytes]:
        """The stored values of ``records``, in order."""
        pack = self._packer.pack
        header = _HEADER.pack
        crc32 = _crc32
        start = _CRC_START[FORMAT_VERSION]
        version = FORMAT_VERSION
        out: list[bytes] = []
        add = out.append
        for record in records:
            payload = pack(record)
            add(header(version, crc32(payload, start)) + payload)
        return out

    def encode_items(
        self, records: Iterable[Any], first_seq: int
    ) -> list[tuple[bytes, bytes]]:
        """(key, value) pairs for ``records`` numbered from ``first_seq`` up."""
        values = self.encode_values(records)
        return list(zip(keyrange(first_seq, len(values)), values, strict=True))


def keyrange(first_seq: int, count: int) -> list[bytes]:
    """The keys of ``count`` consecutive sequence numbers from ``first_seq``."""
    return [seq.to_bytes(8, "big") for seq in range(first_seq, first_seq + count)]


def decode_value(value: bytes | memoryview) -> Any:
    """The record stored in ``value``; RecordDecodeError if it is damaged."""
    if len(value) < HEADER_SIZE + 1:
        raise RecordDecodeError(f"value of {len(value)} bytes is too short")
    version, crc = _HEADER.unpack_from(value)
    view = memoryview(value)[HEADER_SIZE:]
    if _crc32(view, _CRC_START[version]) != crc:
        if version not in _SUPPORTED:
            raise RecordDecodeError(
                f"unknown format version {version} and checksum mismatch"
            )
        raise RecordDecodeError("checksum mismatch")
    if version not in _SUPPORTED:
        raise RecordDecodeError(
            f"format version {version} is newer than this geofleetd supports",
            newer=True,
        )
    return unpack_payload(view)


def unpack_payload(payload: bytes | memoryview) -> Any:
    """Decode a checksummed payload; RecordDecodeError if msgpack rejects it."""
    try:
        return msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=False,
            use_list=True,
            unicode_errors=_UNICODE_ERRORS,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        # ExtraData, FormatError and StackError are ValueError subclasses.
        raise RecordDecodeError(f"msgpack decode failed: {exc}") from exc
