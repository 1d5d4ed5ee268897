"""Channels survive a restart, and so does fence membership: an object inside before
the restart that moves out afterwards reports exit. The area of ``GET key id`` stays
the one the channel was created with, even when that object moved and the log was
compacted before the restart.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import start_server
from tests.fences.helpers import Events, command, payload, pipeline


def square(lat0: float, lon0: float, lat1: float, lon1: float) -> str:
    ring = [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


def test_channels_and_membership_survive_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        boxed = ["WITHIN", "fleet", "FENCE", "DETECT", "enter,exit"]
        boxed += ["BOUNDS", "0", "0", "10", "10"]
        near = ["NEARBY", "fleet", "FENCE", "POINT", "5", "5", "1000"]
        zoned = ["WITHIN", "fleet", "FENCE", "GET", "zones", "z1"]
        cmds = [
            ("SET", "zones", "z1", "OBJECT", square(0, 0, 10, 10)),
            ("SETCHAN", "boxed", *boxed),
            ("SETCHAN", "near", "META", "team", "blue", "EX", "1000", *near),
            ("SETCHAN", "zoned", *zoned),
            ("SETCHAN", "gone", *near),
            ("DELCHAN", "gone"),
            ("SET", "fleet", "truck", "POINT", "5", "5"),
            ("SET", "zones", "z1", "OBJECT", square(20, 20, 30, 30)),  # moves away
            ("AOFSHRINK",),
        ]
        assert pipeline(srv.port, cmds) == ["OK", 1, 1, 1, 1, 1, "OK", "OK", "OK"]
        deadline = time.monotonic() + 20
        while "compacted" not in srv.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "compacted" in srv.log_text()
    finally:
        assert srv.stop() == 0

    srv = start_server(data)
    sub: Events | None = None
    try:
        chans = command(srv.port, "CHANS", "*")
        assert [row[0] for row in chans] == ["boxed", "near", "zoned"]
        assert chans[0] == ["boxed", "fleet", ["local://boxed"], boxed, []]
        assert chans[1] == ["near", "fleet", ["local://near"], near, ["team", "blue"]]
        assert chans[2] == ["zoned", "fleet", ["local://zoned"], zoned, []]

        sub = Events(srv.port, "PSUBSCRIBE", "*").start()
        assert sub.wait(1) == [["psubscribe", "*", 1]]
        assert pipeline(srv.port, [("SET", "fleet", "truck", "POINT", "50", "50")])
        got = [(m[2], payload(m)["detect"]) for m in sub.wait(6)[1:]]
        # exits first, then outsides, each by channel name (Tile38's order)
        assert got == [
            ("boxed", "exit"),
            ("near", "exit"),
            ("zoned", "exit"),
            ("near", "outside"),
            ("zoned", "outside"),
        ]
        near_event = payload(sub.items[2])
        assert near_event["meta"] == {"team": "blue"} and near_event["id"] == "truck"
        sub.quiet(6)
    finally:
        if sub is not None:
            sub.close()
        srv.stop()
