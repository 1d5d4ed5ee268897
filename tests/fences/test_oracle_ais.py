"""Oracle replay: the shipped AIS week against the 71 NYC districts as channels.

Every fix of ``nyharbor_ais_2020-12-01_07.csv.gz`` goes to the server, in file order
and pipelined, as ``SET harbor <vessel> POINT lat lon``; every district is a channel
``SETCHAN <id> WITHIN harbor FENCE DETECT enter,exit OBJECT <geometry>`` and one
``PSUBSCRIBE *`` connection collects the events. The expected events come from
shapely alone: for each fix, which districts cover it (boundary inside) and which
covered the vessel's previous fix; a district gained is an enter, one lost an exit.
The events of one fix are ordered as Tile38 orders them: exits, then enters, each
by channel name. The whole sequence must match: nothing missed, nothing spurious,
the same order.
"""

from __future__ import annotations

import csv
import gzip
import json
import time
from pathlib import Path

import numpy as np
import shapely

from tests.conftest import DATA, start_server
from tests.fences.helpers import Events, payload, pipeline

AIS = DATA / "nyharbor_ais_2020-12-01_07.csv.gz"
DISTRICTS = DATA / "nyc_community_districts.geojson"


def load() -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    with gzip.open(AIS, "rt", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        assert header[:4] == ["vehicle_id", "timestamp_iso", "lat", "lon"]
        fixes = [(row[0], row[2], row[3]) for row in reader]
    doc = json.loads(DISTRICTS.read_text())
    districts = [(f["id"], json.dumps(f["geometry"])) for f in doc["features"]]
    return fixes, districts


def expected_events(
    fixes: list[tuple[str, str, str]], districts: list[tuple[str, str]]
) -> list[tuple[str, str, str]]:
    """(vessel, district, enter|exit) in the order the server must send them."""
    lat = np.array([float(f[1]) for f in fixes])
    lon = np.array([float(f[2]) for f in fixes])
    points = shapely.points(lon, lat)
    names = [d[0] for d in districts]
    covered = np.zeros((len(fixes), len(districts)), dtype=bool)
    for k, (_, geometry) in enumerate(districts):
        area = shapely.from_geojson(geometry)
        shapely.prepare(area)
        covered[:, k] = shapely.covers(area, points)
    order = np.argsort(names)
    last: dict[str, int] = {}
    out: list[tuple[str, str, str]] = []
    for row, (vessel, _, _) in enumerate(fixes):
        now = covered[row]
        before = covered[last[vessel]] if vessel in last else np.zeros_like(now)
        last[vessel] = row
        if (now == before).all():
            continue
        out += [(vessel, names[k], "exit") for k in order if before[k] and not now[k]]
        out += [(vessel, names[k], "enter") for k in order if now[k] and not before[k]]
    return out


def test_ais_week_against_districts_matches_brute_force(tmp_path: Path) -> None:
    fixes, districts = load()
    assert len(fixes) == 172_679 and len(districts) == 71
    want = expected_events(fixes, districts)
    # ~1,261 in Tile38's run of the same workload (the issue's figure)
    assert 1_200 <= len(want) <= 1_320, len(want)

    srv = start_server(tmp_path / "data", ["--fsync", "no"])
    sub: Events | None = None
    try:
        fence = ["WITHIN", "harbor", "FENCE", "DETECT", "enter,exit", "OBJECT"]
        setchans = [("SETCHAN", name, *fence, geometry) for name, geometry in districts]
        assert pipeline(srv.port, setchans, chunk=10) == [1] * 71
        sub = Events(srv.port, "PSUBSCRIBE", "*").start()
        assert sub.wait(1) == [["psubscribe", "*", 1]]

        sets = [("SET", "harbor", v, "POINT", la, lo) for v, la, lo in fixes]
        t0 = time.perf_counter()
        replies = pipeline(srv.port, sets, chunk=10_000)
        seconds = time.perf_counter() - t0
        assert replies == ["OK"] * len(sets)

        msgs = sub.wait(1 + len(want), timeout=30)[1:]
        got = []
        for m in msgs:
            assert m[:2] == ["pmessage", "*"], m
            e = payload(m)
            assert e["hook"] == m[2] and e["key"] == "harbor" and e["command"] == "set"
            got.append((e["id"], e["hook"], e["detect"]))
        missed = [e for e in want if e not in got]
        spurious = [e for e in got if e not in want]
        assert not missed and not spurious, (missed[:5], spurious[:5])
        assert got == want
        by_vessel: dict[str, list[tuple[str, str]]] = {}
        for vessel, name, kind in got:
            by_vessel.setdefault(vessel, []).append((name, kind))
        for events in by_vessel.values():  # a vessel alternates enter/exit per district
            inside: set[str] = set()
            for name, kind in events:
                assert (kind == "enter") == (name not in inside)
                inside ^= {name}
        sub.quiet(1 + len(want), wait=0.5)
        print(f"AIS week: {len(got)} events, {len(sets) / seconds:,.0f} SET/s")
    finally:
        if sub is not None:
            sub.close()
        srv.stop()
