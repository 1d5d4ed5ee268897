"""Fence events beyond the position table: DETECT lists and the order of one
update's events, DEL/PDEL/DROP/expiry, FSET, WHERE and MATCH, COMMANDS, META, the
output kinds, and channels created or deleted in the middle of a pipeline.

Every fence here is the box lat 0..10, lon 0..10 on key ``fleet``.
"""

from __future__ import annotations

import socket
from typing import Any

from tests.conftest import ServerProc
from tests.fences.helpers import (
    GROUP_RE,
    TIME_RE,
    Events,
    command,
    payload,
    pipeline,
    resp,
)

BOX = ["BOUNDS", "0", "0", "10", "10"]


def within(*opts: str) -> list[str]:
    return ["WITHIN", "fleet", "FENCE", *opts, *BOX]


def setchan(server: ServerProc, name: str, *fence: str) -> None:
    assert command(server.port, "SETCHAN", name, *fence) == 1


def chan_events(sub: Events, n: int) -> list[tuple[str, str, str | None]]:
    """(channel, command or detect, id) of the n messages after the subscription."""
    out: list[tuple[str, str, str | None]] = []
    for m in sub.wait(n + 1)[1:]:
        e = payload(m)
        out.append((m[2], e.get("detect") or e["command"], e.get("id")))
    return out


def live_events(fence: Events, n: int) -> list[dict[str, Any]]:
    return [payload(m) for m in fence.wait(n + 1)[1:]]


def test_detect_lists_and_tile38_order_of_one_update(server: ServerProc) -> None:
    chans = {
        "c_all": within(),
        "c_ee": within("DETECT", "enter,exit"),
        "c_in": within("DETECT", "inside"),
        "c_out": within("DETECT", "outside"),
        "c_cross": within("DETECT", "cross"),
        "c_eec": within("DETECT", "enter,exit,cross"),
    }
    for name, fence in chans.items():
        setchan(server, name, *fence)
    sub = Events(server.port, "PSUBSCRIBE", "c_*").start()
    try:
        assert sub.wait(1) == [["psubscribe", "c_*", 1]]
        cmds = [
            ("SET", "fleet", "a", "POINT", "5", "-20"),  # west, outside
            ("SET", "fleet", "a", "POINT", "5", "30"),  # east: the path crossed
            ("SET", "fleet", "a", "POINT", "5", "5"),  # in
            ("SET", "fleet", "a", "POINT", "6", "6"),  # still in
            ("SET", "fleet", "a", "POINT", "5", "30"),  # out
            ("SET", "fleet", "a", "POINT", "5", "5"),  # in again
            ("DEL", "fleet", "a"),  # deleted inside
            ("SET", "fleet", "b", "POINT", "5", "30"),  # outside
            ("DEL", "fleet", "b"),  # deleted outside
        ]
        assert pipeline(server.port, cmds) == ["OK"] * 6 + [1, "OK", 1]
        # per update: cross/del first, then exit, outside, enter, inside; ties by name
        enter = [
            ("c_all", "enter", "a"),
            ("c_ee", "enter", "a"),
            ("c_eec", "enter", "a"),
            ("c_all", "inside", "a"),
            ("c_in", "inside", "a"),
        ]
        want = [
            ("c_all", "outside", "a"),
            ("c_out", "outside", "a"),
            ("c_all", "cross", "a"),
            ("c_cross", "cross", "a"),
            ("c_eec", "cross", "a"),
            ("c_all", "outside", "a"),
            ("c_out", "outside", "a"),
            *enter,
            ("c_all", "inside", "a"),
            ("c_in", "inside", "a"),
            ("c_all", "exit", "a"),
            ("c_ee", "exit", "a"),
            ("c_eec", "exit", "a"),
            ("c_all", "outside", "a"),
            ("c_out", "outside", "a"),
            *enter,
            *[(name, "del", "a") for name in sorted(chans)],
            ("c_all", "outside", "b"),
            ("c_out", "outside", "b"),
            ("c_all", "del", "b"),
            ("c_out", "del", "b"),
        ]
        assert chan_events(sub, len(want)) == want
        sub.quiet(len(want) + 1)
    finally:
        sub.close()


def test_del_pdel_drop_and_expiry(server: ServerProc) -> None:
    setchan(server, "lc", *within())
    live = Events(server.port, *within()).start()
    sub = Events(server.port, "SUBSCRIBE", "lc").start()
    try:
        assert live.wait(1) == ["OK"] and sub.wait(1) == [["subscribe", "lc", 1]]
        assert pipeline(
            server.port, [("SET", "fleet", "a", "EX", "0.4", "POINT", "5", "5")]
        )
        expiry = [("set", "enter", "a"), ("set", "inside", "a"), ("del", None, "a")]
        for got in (live_events(live, 3), [payload(m) for m in sub.wait(4)[1:]]):
            assert [(e["command"], e.get("detect"), e["id"]) for e in got] == expiry
        cmds = [
            ("SET", "fleet", "b", "POINT", "5", "5"),
            ("SET", "fleet", "c", "POINT", "6", "6"),
            ("SET", "fleet", "d", "POINT", "50", "50"),
            ("PDEL", "fleet", "*"),
            ("SET", "fleet", "e", "POINT", "5", "5"),
            ("DROP", "fleet"),
        ]
        assert pipeline(server.port, cmds) == ["OK", "OK", "OK", 3, "OK", 1]
        want: list[tuple[str, str | None, str | None]] = [
            ("set", "enter", "b"),
            ("set", "inside", "b"),
            ("set", "enter", "c"),
            ("set", "inside", "c"),
            ("set", "outside", "d"),
            ("del", None, "b"),
            ("del", None, "c"),
            ("del", None, "d"),
            ("set", "enter", "e"),
            ("set", "inside", "e"),
            ("drop", None, None),
        ]
        got_live = live_events(live, 3 + len(want))[3:]
        got_chan = [payload(m) for m in sub.wait(4 + len(want))[4:]]
        for got in (got_live, got_chan):
            assert [(e["command"], e.get("detect"), e.get("id")) for e in got] == want
        assert list(got_chan[5]) == ["command", "hook", "key", "id", "time"]
        assert got_chan[5]["hook"] == "lc" and got_chan[5]["key"] == "fleet"
        assert list(got_chan[-1]) == ["command", "hook", "key", "time"]
        assert list(got_live[-1]) == ["command", "key", "time"]
        assert TIME_RE.match(got_live[-1]["time"])
        live.quiet(4 + len(want), 0.2)
        sub.quiet(4 + len(want), 0.05)
    finally:
        live.close()
        sub.close()


def test_fset_reports_inside_or_outside_with_fields(server: ServerProc) -> None:
    plain = Events(server.port, *within()).start()
    nofields = Events(server.port, *within("NOFIELDS")).start()
    try:
        assert plain.wait(1) == ["OK"] and nofields.wait(1) == ["OK"]
        cmds = [
            ("SET", "fleet", "a", "POINT", "5", "5"),
            ("FSET", "fleet", "a", "speed", "10"),
            ("FSET", "fleet", "a", "speed", "10"),  # no change: no event
            ("SET", "fleet", "b", "POINT", "50", "50"),
            ("FSET", "fleet", "b", "speed", "3"),
            ("SET", "fleet", "a", "POINT", "50", "50"),
        ]
        assert pipeline(server.port, cmds) == ["OK", 1, 0, "OK", 1, "OK"]
        got = live_events(plain, 7)
        assert [(e["command"], e["detect"], e["id"], e.get("fields")) for e in got] == [
            ("set", "enter", "a", None),
            ("set", "inside", "a", None),
            ("fset", "inside", "a", {"speed": 10}),
            ("set", "outside", "b", None),
            ("fset", "outside", "b", {"speed": 3}),
            ("set", "exit", "a", {"speed": 10}),
            ("set", "outside", "a", {"speed": 10}),
        ]
        assert got[2]["group"] == got[0]["group"] == got[5]["group"]
        assert list(got[2]) == [
            "command", "group", "detect", "key", "time", "id", "object", "fields",
        ]  # fmt: skip
        quiet = live_events(nofields, 5)
        assert [(e["command"], e["detect"], e["id"]) for e in quiet] == [
            ("set", "enter", "a"),
            ("set", "inside", "a"),
            ("set", "outside", "b"),
            ("set", "exit", "a"),
            ("set", "outside", "a"),
        ]
        assert all("fields" not in e for e in quiet)
        plain.quiet(8, 0.2)
        nofields.quiet(6, 0.05)
    finally:
        plain.close()
        nofields.close()


def test_where_tests_old_and_new_fields_and_match_filters_ids(
    server: ServerProc,
) -> None:
    where = Events(server.port, *within("WHERE", "speed", "10", "+inf")).start()
    match = Events(server.port, *within("MATCH", "truck*")).start()
    try:
        assert where.wait(1) == ["OK"] and match.wait(1) == ["OK"]
        cmds = [
            ("SET", "fleet", "truck1", "FIELD", "speed", "50", "POINT", "5", "5"),
            ("FSET", "fleet", "truck1", "speed", "5"),  # fails WHERE now: nothing
            # back to 50 where it was: its old state failed WHERE, so this enters
            ("SET", "fleet", "truck1", "FIELD", "speed", "50", "POINT", "5", "5"),
            ("SET", "fleet", "truck1", "FIELD", "speed", "5", "POINT", "50", "50"),
            ("SET", "fleet", "car1", "FIELD", "speed", "50", "POINT", "5", "5"),
        ]
        assert pipeline(server.port, cmds) == ["OK", 1, "OK", "OK", "OK"]
        got = live_events(where, 6)
        assert [(e["command"], e["detect"], e["id"]) for e in got] == [
            ("set", "enter", "truck1"),
            ("set", "inside", "truck1"),
            ("set", "enter", "truck1"),
            ("set", "inside", "truck1"),
            ("set", "enter", "car1"),
            ("set", "inside", "car1"),
        ]
        assert got[0]["fields"] == {"speed": 50}
        got = live_events(match, 5)
        assert [(e["command"], e["detect"], e["id"]) for e in got] == [
            ("set", "enter", "truck1"),
            ("set", "inside", "truck1"),
            ("fset", "inside", "truck1"),
            ("set", "inside", "truck1"),
            ("set", "exit", "truck1"),
        ]
        where.quiet(7, 0.2)
        # exit is followed by outside; car1 never passes MATCH
        assert [payload(m)["detect"] for m in match.wait(7)[6:]] == ["outside"]
        match.quiet(7, 0.05)
    finally:
        where.close()
        match.close()


def geohash(lat: float, lon: float, precision: int) -> str:
    chars = "0123456789bcdefghjkmnpqrstuvwxyz"
    lat_r, lon_r = [-90.0, 90.0], [-180.0, 180.0]
    bits, even, ch = 0, True, 0
    out: list[str] = []
    while len(out) < precision:
        r, v = (lon_r, lon) if even else (lat_r, lat)
        mid = (r[0] + r[1]) / 2
        ch <<= 1
        if v >= mid:
            ch |= 1
            r[0] = mid
        else:
            r[1] = mid
        even = not even
        bits += 1
        if bits == 5:
            out.append(chars[ch])
            bits, ch = 0, 0
    return "".join(out)


def test_commands_meta_and_output_kinds(server: ServerProc) -> None:
    meta = ["META", "a", "1", "META", "b", "2"]
    assert command(server.port, "SETCHAN", "m", *meta, *within()) == 1
    sub = Events(server.port, "SUBSCRIBE", "m").start()
    fences = {
        "del-only": Events(server.port, *within("COMMANDS", "del")).start(),
        "IDS": Events(server.port, *within("IDS")).start(),
        "POINTS": Events(server.port, *within("POINTS")).start(),
        "HASHES": Events(server.port, *within("HASHES", "5")).start(),
        "BOUNDS": Events(server.port, *within("BOUNDS")).start(),
        "COUNT": Events(server.port, *within("COUNT")).start(),
    }
    try:
        assert sub.wait(1) == [["subscribe", "m", 1]]
        for f in fences.values():
            assert f.wait(1) == ["OK"]
        cmds = [("SET", "fleet", "a", "POINT", "5", "6"), ("DEL", "fleet", "a")]
        assert pipeline(server.port, cmds) == ["OK", 1]
        e = payload(sub.wait(2)[1])
        assert list(e)[:6] == ["command", "group", "detect", "hook", "meta", "key"]
        assert e["meta"] == {"a": "1", "b": "2"} and e["hook"] == "m"
        only_del = live_events(fences["del-only"], 1)
        assert [(e["command"], e.get("detect")) for e in only_del] == [("del", None)]
        tails: dict[str, dict[str, Any]] = {
            "IDS": {},
            "POINTS": {"point": {"lat": 5, "lon": 6}},
            "HASHES": {"hash": geohash(5, 6, 5)},
            "BOUNDS": {
                "bounds": {"sw": {"lat": 5, "lon": 6}, "ne": {"lat": 5, "lon": 6}}
            },
        }
        for kind, tail in tails.items():
            got = live_events(fences[kind], 3)
            assert [(x["detect"] if x["command"] == "set" else "del") for x in got] == [
                "enter",
                "inside",
                "del",
            ]
            for x in got[:2]:
                assert GROUP_RE.match(x["group"])
                body = {
                    k: v
                    for k, v in x.items()
                    if k not in ("command", "group", "detect", "key", "time")
                }
                assert body == {"id": "a", **tail}, kind
        # COUNT writes no object, so SET sends nothing; DEL still reports (Tile38)
        assert [e["command"] for e in live_events(fences["COUNT"], 1)] == ["del"]
        fences["COUNT"].quiet(2, 0.2)
        fences["del-only"].quiet(2, 0.01)
    finally:
        sub.close()
        for f in fences.values():
            f.close()


def test_channels_set_or_deleted_mid_pipeline_see_only_their_part(
    server: ServerProc,
) -> None:
    setchan(server, "old", *within())
    sub = Events(server.port, "PSUBSCRIBE", "*").start()
    try:
        assert sub.wait(1) == [["psubscribe", "*", 1]]
        burst = b"".join(
            [
                resp("SET", "fleet", "a", "POINT", "5", "5"),
                resp("SETCHAN", "new", *within()),
                resp("SET", "fleet", "b", "POINT", "5", "5"),
                resp("DELCHAN", "old"),
                resp("SET", "fleet", "c", "POINT", "5", "5"),
            ]
        )
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(burst)  # one read on the server side: one batch
            data = b""
            while data.count(b"\r\n") < 5:
                data += s.recv(1 << 16)
        assert data == b"+OK\r\n:1\r\n+OK\r\n:1\r\n+OK\r\n"
        got = chan_events(sub, 8)
        assert got == [
            ("old", "enter", "a"),
            ("old", "inside", "a"),
            ("new", "enter", "b"),
            ("old", "enter", "b"),
            ("new", "inside", "b"),
            ("old", "inside", "b"),
            ("new", "enter", "c"),
            ("new", "inside", "c"),
        ]
        sub.quiet(9)
    finally:
        sub.close()
