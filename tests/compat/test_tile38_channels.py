"""Channels (SETCHAN, CHANS, DELCHAN, PDELCHAN) and plain pub/sub, checked against
Tile38 1.37.0's replies and pushed messages.

Channels are server-wide state, so each test here gets a server of its own rather
than the module's shared one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.helpers import (
    as_json,
    assert_silent,
    assert_subset,
    call_error,
    jcall,
    read_push,
)
from tests.conftest import RawClient, ServerProc, start_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProc]:
    srv = start_server(tmp_path / "data", extra=["--fsync", "no"])
    yield srv
    srv.stop()


SQUARE = '{"type":"Polygon","coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]]]}'
NEAR_PHOENIX = ("NEARBY", "fleet", "FENCE", "POINT", "33", "-115", "1000")


def read_message(sub: RawClient, channel: str) -> object:
    """A channel event: ["message", channel, json]; returns the parsed JSON."""
    kind, name, payload = read_push(sub)
    assert (kind, name) == ("message", channel)
    return as_json(payload)


def test_setchan_answers_1_when_new_and_0_when_replaced(c: RawClient) -> None:
    chan = ("SETCHAN", "A", "WITHIN", "points", "FENCE", "OBJECT", SQUARE)
    assert c.call(*chan) == 1
    assert c.call(*chan) == 0


def test_subscriber_receives_channel_events(server: ServerProc, c: RawClient) -> None:
    assert c.call("SETCHAN", "A", "WITHIN", "points", "FENCE", "OBJECT", SQUARE) == 1
    sub = server.raw()
    try:
        assert sub.call("SUBSCRIBE", "A") == ["subscribe", "A", 1]
        assert c.call("SET", "points", "p", "POINT", "5", "5") == "OK"
        head = {"command": "set", "hook": "A", "key": "points", "id": "p"}
        assert_subset(read_message(sub, "A"), {**head, "detect": "enter"})
        assert_subset(read_message(sub, "A"), {**head, "detect": "inside"})
        assert c.call("SET", "points", "p", "POINT", "50", "50") == "OK"
        leaving = {"hook": "A", "id": "p"}
        assert_subset(read_message(sub, "A"), {**leaving, "detect": "exit"})
        assert_subset(read_message(sub, "A"), {**leaving, "detect": "outside"})
    finally:
        sub.close()


def test_chans_lists_and_delchan_pdelchan_remove(c: RawClient) -> None:
    assert c.call("SETCHAN", "c1", *NEAR_PHOENIX) == 1
    assert c.call("SETCHAN", "c2", *NEAR_PHOENIX) == 1
    bounds = ("WITHIN", "other", "FENCE", "BOUNDS", "0", "0", "1", "1")
    assert c.call("SETCHAN", "x1", *bounds) == 1
    assert c.call("CHANS", "*") == [
        ["c1", "fleet", ["local://c1"], list(NEAR_PHOENIX), []],
        ["c2", "fleet", ["local://c2"], list(NEAR_PHOENIX), []],
        ["x1", "other", ["local://x1"], list(bounds), []],
    ]
    assert c.call("DELCHAN", "c1") == 1
    assert c.call("DELCHAN", "c1") == 0
    assert c.call("PDELCHAN", "*") == 2
    assert c.call("CHANS", "*") == []


def test_chans_needs_a_pattern(c: RawClient) -> None:
    assert call_error(c, "CHANS") == "ERR wrong number of arguments for 'chans' command"


def test_chans_in_json_mode_shows_ttl_of_an_expiring_channel(c: RawClient) -> None:
    assert c.call("SETCHAN", "c3", "EX", "100", *NEAR_PHOENIX) == 1
    jcall(c, "OUTPUT", "json")
    body = jcall(c, "CHANS", "*")
    assert body["ok"] is True and len(body["chans"]) == 1
    chan = body["chans"][0]
    assert_subset(
        chan,
        {"name": "c3", "key": "fleet", "command": list(NEAR_PHOENIX), "meta": {}},
    )
    assert isinstance(chan["ttl"], int | float) and 0 < chan["ttl"] <= 100


def test_plain_publish_and_subscribe(server: ServerProc, c: RawClient) -> None:
    sub = server.raw()
    try:
        assert sub.call("SUBSCRIBE", "news", "sports") == ["subscribe", "news", 1]
        assert read_push(sub) == ["subscribe", "sports", 2]
        assert c.call("PUBLISH", "news", "hello") == 1
        assert read_push(sub) == ["message", "news", "hello"]
        assert c.call("PUBLISH", "sports", '{"score":1}') == 1
        assert read_push(sub) == ["message", "sports", '{"score":1}']
        assert c.call("PUBLISH", "weather", "rain") == 0
        assert_silent(sub, 0.3)
    finally:
        sub.close()


def test_drop_of_the_key_sends_a_drop_event(server: ServerProc, c: RawClient) -> None:
    assert c.call("SETCHAN", "dc", *NEAR_PHOENIX) == 1
    sub = server.raw()
    try:
        assert sub.call("SUBSCRIBE", "dc") == ["subscribe", "dc", 1]
        assert c.call("SET", "fleet", "a", "POINT", "33", "-115") == "OK"
        assert_subset(read_message(sub, "dc"), {"detect": "enter"})
        assert_subset(read_message(sub, "dc"), {"detect": "inside"})
        assert c.call("DROP", "fleet") == 1
        assert_subset(
            read_message(sub, "dc"), {"command": "drop", "key": "fleet", "hook": "dc"}
        )
    finally:
        sub.close()
