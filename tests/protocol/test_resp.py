"""RequestParser: any split of a byte stream yields the same commands, in order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geofleetd.errors import ProtocolError
from geofleetd.protocol.resp import RequestParser, encode_command, split_inline

arg = st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=12)
command = st.lists(arg, min_size=1, max_size=6).filter(lambda c: c[0] != "")


@given(
    cmds=st.lists(command, min_size=1, max_size=30),
    cuts=st.lists(st.integers(0, 2000), max_size=20),
)
def test_any_split_of_resp_stream_gives_same_commands(
    cmds: list[list[str]], cuts: list[int]
) -> None:
    data = b"".join(encode_command(c) for c in cmds)
    points = sorted({c % (len(data) + 1) for c in cuts})
    parser = RequestParser()
    got: list[list[str]] = []
    prev = 0
    for p in [*points, len(data)]:
        if p > prev:
            got += parser.feed(data[prev:p])
            prev = p
    assert got == cmds


@given(cuts=st.lists(st.integers(1, 60), max_size=10))
def test_inline_then_resp_split_anywhere(cuts: list[int]) -> None:
    data = b"PING\r\nSET fleet 'a b' POINT 1 2\r\n" + encode_command(["GET", "k", "x"])
    parser = RequestParser()
    got: list[list[str]] = []
    prev = 0
    for p in [*sorted({c % len(data) for c in cuts}), len(data)]:
        if p > prev:
            got += parser.feed(data[prev:p])
            prev = p
    assert got == [
        ["PING"],
        ["SET", "fleet", "a b", "POINT", "1", "2"],
        ["GET", "k", "x"],
    ]


def test_request_cap() -> None:
    parser = RequestParser(max_request=1000)
    with pytest.raises(ProtocolError, match="larger than 1000"):
        parser.feed(b"*2\r\n$3\r\nSET\r\n$5000\r\n" + b"x" * 2000)
    inline = RequestParser(max_request=1000)
    with pytest.raises(ProtocolError, match="larger than 1000"):
        inline.feed(b"SET " + b"x" * 2000)


def test_split_inline_quotes() -> None:
    assert split_inline('SET k "a \\"b\\"" \'c d\'') == ["SET", "k", 'a "b"', "c d"]
    with pytest.raises(ProtocolError):
        split_inline('SET "open')
