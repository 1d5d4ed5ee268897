"""The record codec: exact round trips, and damage told apart from newer formats."""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geofleetd.persistence.codec import (
    FORMAT_VERSION,
    RecordDecodeError,
    RecordEncoder,
    decode_key,
    decode_value,
    encode_key,
    keyrange,
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=10) | st.integers(-5, 5), inner, max_size=5)
    ),
    max_leaves=20,
)
records = st.lists(values, min_size=1, max_size=8)


def same(a: Any, b: Any) -> bool:
    """Equality that also tells str from bytes, int from float and -0.0 from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@given(st.lists(records, max_size=20))
def test_round_trip_is_exact(batch: list[list[Any]]) -> None:
    encoder = RecordEncoder()
    items = encoder.encode_items(batch, 7)
    assert [decode_key(k) for k, _ in items] == list(range(7, 7 + len(batch)))
    for (_, value), record in zip(items, batch, strict=True):
        assert value[0] == FORMAT_VERSION
        assert same(decode_value(value), record)


def test_floats_keep_every_bit() -> None:
    tricky = [0.1, -0.0, 1e-310, 2.0**1023, math.inf, -math.inf, 40.712775, -74.005973]
    value = RecordEncoder().encode(["p", *tricky])
    back = decode_value(value)
    assert [struct.pack(">d", x) for x in back[1:]] == [
        struct.pack(">d", x) for x in tricky
    ]


def test_str_and_bytes_stay_apart() -> None:
    back = decode_value(RecordEncoder().encode(["s", "abc", b"abc", {b"k": "v"}]))
    assert back == ["s", "abc", b"abc", {b"k": "v"}]
    assert isinstance(back[1], str) and isinstance(back[2], bytes)


def test_keys_sort_numerically() -> None:
    keys = [*keyrange(250, 10), encode_key(2**40), encode_key(1)]
    assert sorted(keys) == [encode_key(s) for s in sorted(decode_key(k) for k in keys)]


@pytest.mark.parametrize("index", [0, 1, 4, 5, -1])
def test_any_flipped_byte_is_damage(index: int) -> None:
    value = bytearray(RecordEncoder().encode(["set", "fleet", "t1", ["p", 1.0, 2.0]]))
    value[index] ^= 0x01
    with pytest.raises(RecordDecodeError) as info:
        decode_value(bytes(value))
    assert not info.value.newer


def test_newer_version_is_not_damage() -> None:
    payload = b"\x91\x01"  # msgpack [1]
    crc = zlib.crc32(payload, zlib.crc32(b"\x02"))
    with pytest.raises(RecordDecodeError) as info:
        decode_value(struct.pack(">BI", 2, crc) + payload)
    assert info.value.newer


@pytest.mark.parametrize("value", [b"", b"\x01", b"\x01\x00\x00\x00\x00"])
def test_short_values_are_damage(value: bytes) -> None:
    with pytest.raises(RecordDecodeError):
        decode_value(value)


def test_checksummed_garbage_payload_is_damage() -> None:
    payload = b"\xc1"  # never used in msgpack
    crc = zlib.crc32(payload, zlib.crc32(b"\x01"))
    with pytest.raises(RecordDecodeError, match="msgpack"):
        decode_value(struct.pack(">BI", 1, crc) + payload)


def test_unpackable_record_raises_before_storing() -> None:
    with pytest.raises((TypeError, OverflowError, ValueError)):
        RecordEncoder().encode_values([["ok"], [2**64]])
    with pytest.raises(TypeError):
        RecordEncoder().encode_values([[object()]])
