"""The detect table end to end: every (old, new) position pair against each fence
shape, through a live fence connection and a SETCHAN channel (SUBSCRIBE), in one
pipeline, asserting the exact event sequence.

Positions per shape: IN and IN2 inside; OUT_E and OUT_N outside, the straight path
between them missing the fence; OUT_W outside, the path OUT_W -> OUT_E crossing the
fence; for the polygon with a hole, HOLE (inside the hole: outside the fence).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import ServerProc
from tests.fences.helpers import Events, brief, command, payload, pipeline

C_LAT, C_LON = 33.0, -115.0


def square(d: float) -> list[list[float]]:
    return [
        [C_LON - d, C_LAT - d],
        [C_LON + d, C_LAT - d],
        [C_LON + d, C_LAT + d],
        [C_LON - d, C_LAT + d],
        [C_LON - d, C_LAT - d],
    ]


HOLED = json.dumps({"type": "Polygon", "coordinates": [square(0.05), square(0.02)]})
DIAMOND = json.dumps(
    {
        "type": "Polygon",
        "coordinates": [
            [
                [C_LON, C_LAT - 0.05],
                [C_LON + 0.05, C_LAT],
                [C_LON, C_LAT + 0.05],
                [C_LON - 0.05, C_LAT],
                [C_LON, C_LAT - 0.05],
            ]
        ],
    }
)
ZONE = json.dumps({"type": "Polygon", "coordinates": [square(0.05)]})

FAR = {
    "OUT_E": (C_LAT, C_LON + 0.5),
    "OUT_N": (C_LAT + 0.5, C_LON),
    "OUT_W": (C_LAT, C_LON - 0.5),
}
SHAPES: dict[str, tuple[list[str], dict[str, tuple[float, float]]]] = {
    "nearby-circle": (
        ["NEARBY", "fleet", "FENCE", "POINT", "33", "-115", "5000"],
        {"IN": (C_LAT, C_LON), "IN2": (C_LAT + 0.01, C_LON), **FAR},
    ),
    "within-bounds": (
        ["WITHIN", "fleet", "FENCE", "BOUNDS", "32.95", "-115.05", "33.05", "-114.95"],
        {"IN": (C_LAT, C_LON), "IN2": (C_LAT + 0.049, C_LON - 0.049), **FAR},
    ),
    "within-polygon-hole": (
        ["WITHIN", "fleet", "FENCE", "OBJECT", HOLED],
        {
            "IN": (C_LAT + 0.035, C_LON),
            "IN2": (C_LAT - 0.035, C_LON + 0.01),
            "HOLE": (C_LAT, C_LON),
            **FAR,
        },
    ),
    "intersects-polygon": (
        ["INTERSECTS", "fleet", "FENCE", "OBJECT", DIAMOND],
        {"IN": (C_LAT, C_LON), "IN2": (C_LAT + 0.01, C_LON + 0.01), **FAR},
    ),
    "within-get": (
        ["WITHIN", "fleet", "FENCE", "GET", "zones", "z1"],
        {"IN": (C_LAT, C_LON), "IN2": (C_LAT - 0.04, C_LON + 0.04), **FAR},
    ),
}

# (first position or None, second position or "DEL") -> events of each step
COMBOS: list[tuple[str | None, str, list[str], list[str]]] = [
    (None, "IN", [], ["enter", "inside"]),
    (None, "OUT_E", [], ["outside"]),
    ("IN", "IN2", ["enter", "inside"], ["inside"]),
    ("IN", "OUT_E", ["enter", "inside"], ["exit", "outside"]),
    ("OUT_E", "IN", ["outside"], ["enter", "inside"]),
    ("OUT_E", "OUT_N", ["outside"], ["outside"]),
    ("OUT_W", "OUT_E", ["outside"], ["cross", "outside"]),
    ("IN", "DEL", ["enter", "inside"], ["del"]),
]
HOLE_COMBOS: list[tuple[str | None, str, list[str], list[str]]] = [
    ("IN", "HOLE", ["enter", "inside"], ["exit", "outside"]),
    ("HOLE", "IN", ["outside"], ["enter", "inside"]),
    ("OUT_W", "HOLE", ["outside"], ["cross", "outside"]),
]


def expected(
    pos: dict[str, tuple[float, float]],
    combos: list[tuple[str | None, str, list[str], list[str]]],
    fillers: int,
) -> tuple[list[tuple[str, ...]], list[tuple[Any, ...]]]:
    """(commands of both steps, expected brief events in order).

    ``fillers`` far-away objects move first in each step: enough of them make the
    server take its vectorized path instead of the note-by-note one.
    """
    cmds: list[tuple[str, ...]] = []
    events: list[tuple[Any, ...]] = []
    for step in (0, 1):
        for n in range(fillers):
            lat, lon = -60.0 + step, 100.0 + n / 1000
            cmds.append(("SET", "fleet", f"f{n}", "POINT", repr(lat), repr(lon)))
            events.append(("set", "outside", f"f{n}", [lon, lat]))
        for n, (first, second, ev1, ev2) in enumerate(combos):
            oid = f"v{n}"
            where = first if step == 0 else second
            kinds = ev1 if step == 0 else ev2
            if where is None:
                continue
            if where == "DEL":
                cmds.append(("DEL", "fleet", oid))
                events += [("del", None, oid, None) for _ in kinds]
                continue
            lat, lon = pos[where]
            cmds.append(("SET", "fleet", oid, "POINT", repr(lat), repr(lon)))
            events += [("set", k, oid, [lon, lat]) for k in kinds]
    return cmds, events


def check_groups(events: list[dict[str, Any]]) -> None:
    """Events of one visit share a group; enter and cross start a new one."""
    current: dict[str, str] = {}
    for e in events:
        if e["command"] != "set":
            continue
        if e["detect"] in ("enter", "cross"):
            assert e["group"] != current.get(e["id"]), e
        elif e["id"] in current:
            assert e["group"] == current[e["id"]], e
        current[e["id"]] = e["group"]


@pytest.mark.parametrize("fillers", [0, 60], ids=["small-batch", "large-batch"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_position_pair_through_fence_and_channel(
    server: ServerProc, shape: str, fillers: int
) -> None:
    fence, pos = SHAPES[shape]
    combos = COMBOS + (HOLE_COMBOS if "HOLE" in pos else [])
    assert command(server.port, "SET", "zones", "z1", "OBJECT", ZONE) == "OK"
    assert command(server.port, "SETCHAN", "chan", *fence) == 1
    # without "outside" a channel only looks at updates near it (Tile38's rule)
    near = [fence[0], fence[1], "FENCE", "DETECT", "inside,enter,exit,cross"]
    assert command(server.port, "SETCHAN", "near", *near, *fence[3:]) == 1
    live = Events(server.port, *fence).start()
    sub = Events(server.port, "SUBSCRIBE", "chan").start()
    sub_near = Events(server.port, "SUBSCRIBE", "near").start()
    try:
        assert live.wait(1) == ["OK"]
        assert sub.wait(1) == [["subscribe", "chan", 1]]
        assert sub_near.wait(1) == [["subscribe", "near", 1]]
        cmds, want = expected(pos, combos, fillers)
        replies = pipeline(server.port, cmds)
        assert replies == [1 if cmd[0] == "DEL" else "OK" for cmd in cmds]

        got_live = [payload(m) for m in live.wait(1 + len(want))[1:]]
        got_chan = [payload(m) for m in sub.wait(1 + len(want))[1:]]
        assert [brief(e) for e in got_live] == want
        assert [brief(e) for e in got_chan] == want
        want_near = [w for w in want if w[1] != "outside"]
        got_near = [payload(m) for m in sub_near.wait(1 + len(want_near))[1:]]
        assert [brief(e) for e in got_near] == want_near
        assert all(e["hook"] == "near" for e in got_near)
        sub_near.quiet(1 + len(want_near), wait=0.05)
        for e in got_live:
            assert e["key"] == "fleet" and "hook" not in e, e
        for m, e in zip(sub.items[1:], got_chan, strict=True):
            assert m[:2] == ["message", "chan"] and e["hook"] == "chan", m
        check_groups(got_live)
        check_groups(got_chan)
        first_set = next(e for e in got_chan if e["command"] == "set")
        assert list(first_set) == [
            "command", "group", "detect", "hook", "key", "time", "id", "object",
        ]  # fmt: skip
        first_del = next(e for e in got_chan if e["command"] == "del")
        assert list(first_del) == ["command", "hook", "key", "id", "time"]
        live.quiet(1 + len(want))
        sub.quiet(1 + len(want), wait=0.05)
    finally:
        live.close()
        sub.close()
        sub_near.close()
