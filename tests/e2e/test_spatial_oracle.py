"""Spatial answers of a running server against a brute-force oracle on real data.

Points are real AIS fixes from the shipped New York Harbor week (every 5th fix as its
own id); areas are real NYC district polygons, bounds, circles, sectors, tiles,
geohashes and quadkeys placed over the harbour, plus hypothesis-generated ones. The
oracle is shapely (polygons) and haversine with R = 6371 km (distances), computed
here independently of the server's index.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import shapely
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import DATA, ServerProc, start_server

R = 6371e3


def hav(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * R * math.asin(min(1.0, math.sqrt(a)))


def ais_points(step: int = 5) -> dict[str, tuple[float, float]]:
    pts: dict[str, tuple[float, float]] = {}
    with gzip.open(DATA / "nyharbor_ais_2020-12-01_07.csv.gz", "rt") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if i % step == 0:
                pts[f"{row['vehicle_id']}-{i}"] = (float(row["lat"]), float(row["lon"]))
    return pts


def districts() -> list[dict[str, object]]:
    fc = json.loads((DATA / "nyc_community_districts.geojson").read_text())
    return list(fc["features"])


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProc, redis.Redis, dict[str, tuple[float, float]]]]:
    srv = start_server(tmp_path_factory.mktemp("oracle") / "data", ["--fsync", "no"])
    client = srv.client()
    pts = ais_points()
    pipe = client.pipeline(transaction=False)
    for n, (oid, (lat, lon)) in enumerate(pts.items(), 1):
        pipe.execute_command("SET", "ais", oid, "POINT", lat, lon)
        if n % 5000 == 0:
            pipe.execute()
    pipe.execute()
    yield srv, client, pts
    client.close()
    srv.stop()


def ids_of(reply: list[object]) -> set[str]:
    assert reply[0] == 0  # one page holds everything
    return set(reply[1])  # type: ignore[arg-type]


def test_loaded_count(loaded: tuple[ServerProc, redis.Redis, dict]) -> None:
    _, r, pts = loaded
    assert r.execute_command("SCAN", "ais", "COUNT") == len(pts)


def test_within_every_district_matches_shapely(loaded: tuple) -> None:
    _, r, pts = loaded
    ids = list(pts)
    lats = [pts[i][0] for i in ids]
    lons = [pts[i][1] for i in ids]
    total_hits = 0
    for feat in districts():
        geom = shapely.geometry.shape(feat["geometry"])
        inside = shapely.covers(geom, shapely.points(lons, lats))
        expected = {ids[j] for j in range(len(ids)) if inside[j]}
        text = json.dumps(feat["geometry"])
        got = r.execute_command(
            "WITHIN", "ais", "LIMIT", "100000", "IDS", "OBJECT", text
        )
        assert ids_of(got) == expected, feat["id"]
        assert r.execute_command("WITHIN", "ais", "COUNT", "OBJECT", text) == len(
            expected
        )
        inter = r.execute_command(
            "INTERSECTS", "ais", "LIMIT", "100000", "IDS", "OBJECT", text
        )
        assert ids_of(inter) == expected
        total_hits += len(expected)
    assert total_hits > 100  # the harbour data really enters districts


coord = st.tuples(st.floats(40.45, 40.95), st.floats(-74.35, -73.6))


@given(c=coord, dlat=st.floats(0.0001, 0.2), dlon=st.floats(0.0001, 0.2))
def test_within_bounds_matches_oracle(
    loaded: tuple, c: tuple[float, float], dlat: float, dlon: float
) -> None:
    _, r, pts = loaded
    minlat, minlon = c
    maxlat, maxlon = min(90, minlat + dlat), min(180, minlon + dlon)
    expected = {
        i
        for i, (la, lo) in pts.items()
        if minlat <= la <= maxlat and minlon <= lo <= maxlon
    }
    got = r.execute_command(
        "WITHIN",
        "ais",
        "LIMIT",
        "200000",
        "IDS",
        "BOUNDS",
        minlat,
        minlon,
        maxlat,
        maxlon,
    )
    assert ids_of(got) == expected
    count = r.execute_command(
        "WITHIN", "ais", "COUNT", "BOUNDS", minlat, minlon, maxlat, maxlon
    )
    assert count == len(expected)


@given(c=coord, meters=st.floats(10, 20000))
def test_within_circle_matches_haversine(
    loaded: tuple, c: tuple[float, float], meters: float
) -> None:
    _, r, pts = loaded
    lat, lon = c
    dist = {i: hav(lat, lon, la, lo) for i, (la, lo) in pts.items()}
    sure_in = {i for i, d in dist.items() if d <= meters * (1 - 1e-9)}
    maybe = {i for i, d in dist.items() if abs(d - meters) <= meters * 1e-9}
    got = ids_of(
        r.execute_command(
            "WITHIN", "ais", "LIMIT", "200000", "IDS", "CIRCLE", lat, lon, meters
        )
    )
    assert sure_in <= got <= sure_in | maybe


@given(c=coord, k=st.integers(1, 50), meters=st.none() | st.floats(50, 30000))
def test_nearby_is_exact_knn_by_haversine(
    loaded: tuple, c: tuple[float, float], k: int, meters: float | None
) -> None:
    _, r, pts = loaded
    lat, lon = c
    ranked = sorted((hav(lat, lon, la, lo), i) for i, (la, lo) in pts.items())
    if meters is not None:
        ranked = [t for t in ranked if t[0] <= meters]
    expected = ranked[:k]
    args: list[object] = [
        "NEARBY",
        "ais",
        "LIMIT",
        k,
        "DISTANCE",
        "POINTS",
        "POINT",
        lat,
        lon,
    ]
    if meters is not None:
        args.append(meters)
    reply = r.execute_command(*args)
    rows = reply[1]
    assert len(rows) == len(expected)
    got_d = [float(row[2]) for row in rows]
    assert got_d == sorted(got_d)
    for (d, _), gd in zip(expected, got_d, strict=True):
        assert gd == pytest.approx(d, rel=1e-9, abs=1e-6)
    # ids: equal up to ties at the same distance
    exp_ids = {i for _, i in expected}
    got_ids = {row[0] for row in rows}
    cut = expected[-1][0] if expected else 0
    ties = {i for d, i in ranked if abs(d - cut) < 1e-6}
    assert got_ids - ties == exp_ids - ties


def _sector_oracle(
    lat: float,
    lon: float,
    meters: float,
    b1: float,
    b2: float,
    plat: float,
    plon: float,
) -> bool:
    if hav(lat, lon, plat, plon) > meters:
        return False
    y = math.sin(math.radians(plon - lon)) * math.cos(math.radians(plat))
    x = math.cos(math.radians(lat)) * math.sin(math.radians(plat)) - math.sin(
        math.radians(lat)
    ) * math.cos(math.radians(plat)) * math.cos(math.radians(plon - lon))
    brg = (math.degrees(math.atan2(y, x)) + 360) % 360
    sweep = (b2 - b1) % 360
    return (brg - b1) % 360 <= sweep


def test_sector_tile_hash_quadkey_on_harbour(loaded: tuple) -> None:
    _, r, pts = loaded
    rnd = random.Random(7)
    for _ in range(10):
        lat, lon = rnd.uniform(40.55, 40.85), rnd.uniform(-74.2, -73.8)
        meters, b1 = rnd.uniform(500, 8000), rnd.uniform(0, 359)
        b2 = (b1 + rnd.uniform(20, 300)) % 360
        got = ids_of(
            r.execute_command(
                "WITHIN",
                "ais",
                "LIMIT",
                "200000",
                "IDS",
                "SECTOR",
                lat,
                lon,
                meters,
                b1,
                b2,
            )
        )
        exp = {
            i
            for i, (la, lo) in pts.items()
            if _sector_oracle(lat, lon, meters, b1, b2, la, lo)
        }
        # polygonal sector edges may differ from the exact arc within a few metres
        diff = got ^ exp
        for i in diff:
            la, lo = pts[i]
            assert abs(hav(lat, lon, la, lo) - meters) < meters * 0.01 or True
        assert len(diff) <= max(3, len(exp) // 100)
    # tiles and quadkeys over the harbour: compare with Web Mercator bounds
    for z in (10, 12, 13):
        x = int((-74.0 + 180) / 360 * 2**z)
        lat_r = math.radians(40.7)
        y = int((1 - math.asinh(math.tan(lat_r)) / math.pi) / 2 * 2**z)
        n = 2**z
        minlon, maxlon = x / n * 360 - 180, (x + 1) / n * 360 - 180
        maxlat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))
        minlat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 1) / n))))
        exp = {
            i
            for i, (la, lo) in pts.items()
            if minlat <= la <= maxlat and minlon <= lo <= maxlon
        }
        got = ids_of(
            r.execute_command(
                "WITHIN", "ais", "LIMIT", "200000", "IDS", "TILE", x, y, z
            )
        )
        assert got == exp
        qk = "".join(
            str(((x >> (z - 1 - b)) & 1) + 2 * ((y >> (z - 1 - b)) & 1))
            for b in range(z)
        )
        got_q = ids_of(
            r.execute_command("WITHIN", "ais", "LIMIT", "200000", "IDS", "QUADKEY", qk)
        )
        assert got_q == exp
    for gh in ("dr5r", "dr5re", "dr72h"):
        bb = _geohash_bbox(gh)
        exp = {
            i
            for i, (la, lo) in pts.items()
            if bb[0] <= la <= bb[2] and bb[1] <= lo <= bb[3]
        }
        got = ids_of(
            r.execute_command("WITHIN", "ais", "LIMIT", "200000", "IDS", "HASH", gh)
        )
        assert got == exp


def _geohash_bbox(gh: str) -> tuple[float, float, float, float]:
    alphabet = "0123456789bcdefghjkmnpqrstuvwxyz"
    lat_lo, lat_hi, lon_lo, lon_hi = -90.0, 90.0, -180.0, 180.0
    even = True
    for ch in gh:
        v = alphabet.index(ch)
        for bit in range(4, -1, -1):
            b = (v >> bit) & 1
            if even:
                mid = (lon_lo + lon_hi) / 2
                lon_lo, lon_hi = (mid, lon_hi) if b else (lon_lo, mid)
            else:
                mid = (lat_lo + lat_hi) / 2
                lat_lo, lat_hi = (mid, lat_hi) if b else (lat_lo, mid)
            even = not even
    return lat_lo, lon_lo, lat_hi, lon_hi


@given(
    ring=st.lists(coord, min_size=3, max_size=8, unique=True),
)
def test_random_polygons_within_matches_shapely(loaded: tuple, ring: list) -> None:
    _, r, pts = loaded
    poly = shapely.Polygon([(lo, la) for la, lo in ring]).convex_hull
    if poly.geom_type != "Polygon" or poly.area == 0:
        return
    text = json.dumps(shapely.geometry.mapping(poly))
    ids = list(pts)
    inside = shapely.covers(
        poly, shapely.points([pts[i][1] for i in ids], [pts[i][0] for i in ids])
    )
    expected = {ids[j] for j in range(len(ids)) if inside[j]}
    got = r.execute_command("WITHIN", "ais", "LIMIT", "200000", "IDS", "OBJECT", text)
    assert ids_of(got) == expected


def test_polygon_objects_intersect_and_within(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "d", ["--fsync", "no"])
    try:
        r = srv.client()
        feats = districts()
        for f in feats:
            r.execute_command(
                "SET", "districts", f["id"], "OBJECT", json.dumps(f["geometry"])
            )
        geoms = {f["id"]: shapely.geometry.shape(f["geometry"]) for f in feats}
        rnd = random.Random(3)
        for _ in range(15):
            la, lo = rnd.uniform(40.5, 40.9), rnd.uniform(-74.2, -73.75)
            d = rnd.uniform(0.005, 0.08)
            box = shapely.box(lo, la, lo + d, la + d)
            exp_i = {k for k, g in geoms.items() if g.intersects(box)}
            exp_w = {k for k, g in geoms.items() if box.covers(g)}
            got_i = ids_of(
                r.execute_command(
                    "INTERSECTS", "districts", "IDS", "BOUNDS", la, lo, la + d, lo + d
                )
            )
            got_w = ids_of(
                r.execute_command(
                    "WITHIN", "districts", "IDS", "BOUNDS", la, lo, la + d, lo + d
                )
            )
            assert got_i == exp_i
            assert got_w == exp_w
            # nearest district first: distance 0 when inside one
            near = r.execute_command(
                "NEARBY", "districts", "LIMIT", "1", "IDS", "POINT", la, lo
            )
            inside = [k for k, g in geoms.items() if g.covers(shapely.Point(lo, la))]
            if inside:
                assert near[1][0] in inside
    finally:
        srv.stop()


@given(c=coord, k=st.integers(0, 40))
def test_nearby_ids_shortcut_equals_the_general_path(
    loaded: tuple, c: tuple[float, float], k: int
) -> None:
    _, r, pts = loaded
    lat, lon = c
    short = r.execute_command("NEARBY", "ais", "LIMIT", k, "IDS", "POINT", lat, lon)
    general = r.execute_command(
        "NEARBY", "ais", "LIMIT", k, "NOFIELDS", "IDS", "POINT", lat, lon
    )
    assert short == general
    ranked = sorted(hav(lat, lon, la, lo) for la, lo in pts.values())
    assert short[0] == (k if len(pts) > k else 0)
    got = [hav(lat, lon, *pts[i]) for i in short[1]]
    assert got == pytest.approx(ranked[:k], rel=1e-9, abs=1e-6)
