"""Roaming fences: ``NEARBY key FENCE ROAM key2 pattern meters [NODWELL]``.

For an update of object w from p to q, with the other objects where they stand at
that moment: every object within ``meters`` of q is ``nearby`` (with NODWELL, not
the ones that were already within ``meters`` of p), every object that was within
``meters`` of p but is not of q is ``faraway``; each list sorted by distance to q,
then id; distances are truncated to whole millimetres. The expectations below are
computed by the test's own haversine on Tile38's sphere.
"""

from __future__ import annotations

import math
import random
from typing import Any

from tests.conftest import ServerProc
from tests.fences.helpers import Events, haversine, payload, pipeline

Pos = tuple[float, float]


def roam_oracle(
    updates: list[tuple[str, float, float]], meters: float, nodwell: bool = False
) -> list[tuple[str, str, str, float]]:
    """(moving id, nearby|faraway, other id, meters) for a sequence of SETs."""
    where: dict[str, Pos] = {}
    out: list[tuple[str, str, str, float]] = []
    for oid, lat, lon in updates:
        old = where.get(oid)
        near_new = {
            o: haversine(lat, lon, *p)
            for o, p in where.items()
            if o != oid and haversine(lat, lon, *p) <= meters
        }
        near_old = (
            {o for o, p in where.items() if o != oid and haversine(*old, *p) <= meters}
            if old is not None
            else set()
        )
        nearby = [
            (d, o) for o, d in near_new.items() if not (nodwell and o in near_old)
        ]
        faraway = [
            (haversine(lat, lon, *where[o]), o) for o in near_old if o not in near_new
        ]
        out += [(oid, "nearby", o, d) for d, o in sorted(nearby)]
        out += [(oid, "faraway", o, d) for d, o in sorted(faraway)]
        where[oid] = (lat, lon)
    return out


def summary(event: dict[str, Any]) -> tuple[str, str, str, float]:
    assert event["command"] == "set" and event["detect"] == "roam", event
    kind = "nearby" if "nearby" in event else "faraway"
    other = event[kind]
    return (event["id"], kind, other["id"], other["meters"])


def check(got: list[dict[str, Any]], want: list[tuple[str, str, str, float]]) -> None:
    rows = [summary(e) for e in got]
    assert [r[:3] for r in rows] == [w[:3] for w in want]
    for r, w in zip(rows, want, strict=True):
        # Tile38 truncates to millimetres; allow one for the last bit of the sine
        assert abs(r[3] - math.floor(w[3] * 1000) / 1000) <= 0.0011, (r, w)
        assert abs(r[3] * 1000 - round(r[3] * 1000)) < 1e-6  # whole millimetres


def test_two_cars_approach_pass_and_leave(server: ServerProc) -> None:
    lat = 33.414750027566235
    car1 = [-111.93669319152832, -111.93051338195801, -111.92416191101074]
    car1 += [-111.91789627075195, -111.9111156463623, -111.90510749816895]
    car2 = [-111.89746856689453, -111.90519332885742, -111.91154479980467]
    car2 += [-111.91781044006346, -111.92416191101074, -111.93059921264648]
    updates = []
    for a, b in zip(car1, car2, strict=True):
        updates += [("car1", lat, a), ("car2", lat, b)]
    fence = Events(server.port, "NEARBY", "cars", "FENCE", "ROAM", "cars", "*", "1000")
    fence.start()
    try:
        assert fence.wait(1) == ["OK"]
        for oid, la, lo in updates:  # one at a time: each its own batch
            assert pipeline(
                server.port, [("SET", "cars", oid, "POINT", repr(la), repr(lo))]
            )
        want = roam_oracle(updates, 1000)
        assert [w[:3] for w in want] == [
            ("car1", "nearby", "car2"),
            ("car2", "nearby", "car1"),
            ("car1", "nearby", "car2"),
            ("car2", "faraway", "car1"),
        ]
        got = [payload(m) for m in fence.wait(1 + len(want))[1:]]
        check(got, want)
        # the values Tile38 1.37 printed for this drive
        assert [summary(e)[3] for e in got] == [
            589.512, 7.966, 621.377, 1210.89,
        ]  # fmt: skip
        last = got[-1]
        assert last["object"] == {"type": "Point", "coordinates": [car2[4], lat]}
        assert last["faraway"] == {
            "key": "cars",
            "id": "car1",
            "object": {"type": "Point", "coordinates": [car1[4], lat]},
            "meters": 1210.89,
        }
        assert list(last) == [
            "command", "group", "detect", "key", "time", "id", "object", "faraway",
        ]  # fmt: skip
        fence.quiet(1 + len(want))
    finally:
        fence.close()


def test_nodwell_reports_a_pair_once_while_it_stays_near(server: ServerProc) -> None:
    fence = Events(
        server.port,
        *["NEARBY", "people", "MATCH", "p*", "FENCE", "NODWELL"],
        *["ROAM", "people", "p*", "100"],
    ).start()
    try:
        assert fence.wait(1) == ["OK"]
        updates = [
            ("p1", 33.0, -115.0),
            ("p2", 33.0001, -115.0),  # near p1: nearby
            ("p2", 33.0002, -115.0),  # still near: nothing (NODWELL)
            ("p1", 33.0003, -115.0),  # still near: nothing
            ("x9", 33.0002, -115.0),  # not matched by the fence's MATCH
            ("p2", 33.01, -115.0),  # gone: faraway
            ("p2", 33.0004, -115.0),  # back: nearby again
        ]
        for oid, la, lo in updates:
            assert pipeline(
                server.port, [("SET", "people", oid, "POINT", repr(la), repr(lo))]
            )
        got = [payload(m) for m in fence.wait(4)[1:]]
        assert [summary(e)[:3] for e in got] == [
            ("p2", "nearby", "p1"),
            ("p2", "faraway", "p1"),
            ("p2", "nearby", "p1"),
        ]
        assert got[0]["nearby"]["meters"] == 11.119
        fence.quiet(4)
    finally:
        fence.close()


def test_thirty_random_walkers_match_pairwise_distances(server: ServerProc) -> None:
    rng = random.Random(20201201)
    walkers = {f"w{n:02d}": (33.0 + rng.uniform(0, 0.02), -115.0 + rng.uniform(0, 0.02))
               for n in range(30)}  # fmt: skip
    updates: list[tuple[str, float, float]] = [(w, *p) for w, p in walkers.items()]
    for _ in range(600):
        w = rng.choice(sorted(walkers))
        lat, lon = walkers[w]
        lat = round(min(33.02, max(33.0, lat + rng.uniform(-0.0015, 0.0015))), 6)
        lon = round(min(-114.98, max(-115.0, lon + rng.uniform(-0.0015, 0.0015))), 6)
        walkers[w] = (lat, lon)
        updates.append((w, lat, lon))
    fence = Events(server.port, "NEARBY", "fleet", "FENCE", "ROAM", "fleet", "*", "300")
    fence.start()
    try:
        assert fence.wait(1) == ["OK"]
        cmds = [
            ("SET", "fleet", w, "POINT", repr(la), repr(lo)) for w, la, lo in updates
        ]
        # pipelined: many updates land in one batch and must still see each other
        # where they stood at that moment
        assert pipeline(server.port, cmds, chunk=200) == ["OK"] * len(cmds)
        want = roam_oracle(updates, 300)
        assert len(want) > 1000 and any(w[1] == "faraway" for w in want)
        got = [payload(m) for m in fence.wait(1 + len(want), timeout=20)[1:]]
        check(got, want)
        fence.quiet(1 + len(want))
    finally:
        fence.close()
