"""Write the benchmark's pre-generated RESP command files.

Every file is a stream of RESP arrays of bulk strings, the input format that
``redis-cli --pipe`` expects, so the client side of a run is just bytes pushed
through a socket. Everything random comes from one fixed seed, split into one
independent stream per workload, so a file never changes unless this script
does (the manifest records a hash of this file; ``run.py`` regenerates when it
differs).

Output goes to ``bench/out/<scale>/`` (``full`` or ``quick``) with a
``manifest.json`` describing each file (command count, bytes) and the derived
parameters, such as the radius used for the Redis counterpart of NEARBY.

Usage: ``python bench/gen.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import math
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

SEED = 20201201
LAT_MIN, LAT_MAX = 40.49, 40.92
LON_MIN, LON_MAX = -74.26, -73.70
BOX_DEG = 0.01  # side of the WITHIN BOUNDS boxes, in degrees
FENCE_METERS = 500  # radius of the 1,000 NEARBY fences
NEAREST_K = 10
# Redis measures distance on a sphere of this radius (geohash_helper.c).
REDIS_EARTH_M = 6372797.560856

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "geofleetd" / "data"
AIS_WEEK = DATA / "nyharbor_ais_2020-12-01_07.csv.gz"
DISTRICTS = DATA / "nyc_community_districts.geojson"

# Workload sizes at scale "full"; "quick" divides the big ones by ten.
FULL = {
    "ids": 100_000,
    "sets": 200_000,
    "nearby": 20_000,
    "within": 20_000,
    "district": 300,
    "ais_rows": None,  # the whole week
    "recovery": 1_000_000,
    "fences": 1_000,
}
QUICK = {
    "ids": 10_000,
    "sets": 20_000,
    "nearby": 2_000,
    "within": 2_000,
    "district": 71,
    "ais_rows": 20_000,
    "recovery": 100_000,
    "fences": 1_000,
}


def command(args: Sequence[str | bytes]) -> bytes:
    """Encode one command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


class RespFile:
    """Collects commands and writes them to one file, counting them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._chunks: list[bytes] = []
        self._size = 0
        self._fh = path.open("wb")

    def add(self, args: Sequence[str | bytes]) -> None:
        data = command(args)
        self._chunks.append(data)
        self._size += len(data)
        self.count += 1
        if self._size > 8 << 20:
            self._flush()

    def _flush(self) -> None:
        self._fh.write(b"".join(self._chunks))
        self._chunks.clear()
        self._size = 0

    def close(self) -> dict[str, object]:
        self._flush()
        self._fh.close()
        return {
            "file": self.path.name,
            "commands": self.count,
            "bytes": self.path.stat().st_size,
        }


def fmt(x: float) -> str:
    return f"{x:.6f}"


def uniform_points(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n points uniform in the New York box, rounded to the 6 decimals sent."""
    lat = np.round(rng.uniform(LAT_MIN, LAT_MAX, n), 6)
    lon = np.round(rng.uniform(LON_MIN, LON_MAX, n), 6)
    return lat, lon


def haversine_m(
    lat1: np.ndarray | float,
    lon1: np.ndarray | float,
    lat2: np.ndarray | float,
    lon2: np.ndarray | float,
) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * REDIS_EARTH_M * np.arcsin(np.sqrt(a)))


def kth_nearest_m(
    plat: np.ndarray, plon: np.ndarray, qlat: np.ndarray, qlon: np.ndarray, k: int
) -> np.ndarray:
    """Distance in meters from each query to its k-th nearest point.

    A uniform grid over a local flat projection finds candidates ring by ring;
    the final distances are haversine (on Redis' sphere). A ring is accepted
    once the k-th candidate lies well inside the area the rings cover.
    """
    lat0 = math.radians((LAT_MIN + LAT_MAX) / 2)
    ky = REDIS_EARTH_M * math.pi / 180
    kx = ky * math.cos(lat0)
    px, py = (plon - LON_MIN) * kx, (plat - LAT_MIN) * ky
    density = len(plat) / (px.max() * py.max())
    cell = max(100.0, math.sqrt(k / density))
    cx = (px // cell).astype(np.int64)
    cy = (py // cell).astype(np.int64)
    ncx, ncy = int(cx.max()) + 1, int(cy.max()) + 1
    cell_id = cy * ncx + cx
    order = np.argsort(cell_id, kind="stable")
    starts = np.searchsorted(cell_id[order], np.arange(ncx * ncy + 1))

    out = np.empty(len(qlat))
    for i in range(len(qlat)):
        qx, qy = (qlon[i] - LON_MIN) * kx, (qlat[i] - LAT_MIN) * ky
        gx, gy = int(qx // cell), int(qy // cell)
        for ring in range(1, max(ncx, ncy) + 1):
            x0, x1 = max(gx - ring, 0), min(gx + ring, ncx - 1)
            y0, y1 = max(gy - ring, 0), min(gy + ring, ncy - 1)
            idx = np.concatenate(
                [
                    order[starts[y * ncx + x0] : starts[y * ncx + x1 + 1]]
                    for y in range(y0, y1 + 1)
                ]
            )
            if len(idx) < k:
                continue
            d = haversine_m(qlat[i], qlon[i], plat[idx], plon[idx])
            kth = np.partition(d, k - 1)[k - 1]
            # The rings surely hold every point closer than `ring * cell`
            # (flat distance); keep 2% for the projection's error.
            covered = ring * cell * 0.98
            whole = x0 == 0 and y0 == 0 and x1 == ncx - 1 and y1 == ncy - 1
            if kth <= covered or whole:
                out[i] = kth
                break
        else:  # pragma: no cover - the loop always reaches the whole grid
            raise RuntimeError("k-nearest search did not converge")
    return out


def read_districts() -> list[tuple[str, str]]:
    """(id, compact GeoJSON geometry) for every district, in file order."""
    doc = json.loads(DISTRICTS.read_text())
    out = []
    for feat in doc["features"]:
        fid = feat.get("id") or feat["properties"]["id"]
        geom = json.dumps(feat["geometry"], separators=(",", ":"))
        out.append((str(fid), geom))
    return out


def read_ais(limit: int | None) -> Iterable[tuple[str, str, str]]:
    """(vehicle_id, lat, lon) text of the AIS week, in file order."""
    with gzip.open(AIS_WEEK, "rt", newline="") as fh:
        reader = csv.DictReader(fh)
        for n, row in enumerate(reader):
            if limit is not None and n >= limit:
                return
            yield row["vehicle_id"], row["lat"], row["lon"]


def source_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def generate(scale: str, out: Path) -> dict[str, object]:
    sizes = QUICK if scale == "quick" else FULL
    out.mkdir(parents=True, exist_ok=True)
    seeds = np.random.SeedSequence(SEED).spawn(8)
    rng_set, rng_near, rng_within, rng_fence, rng_rec = (
        np.random.default_rng(s) for s in seeds[:5]
    )
    files: dict[str, dict[str, object]] = {}
    params: dict[str, object] = {}
    t0 = time.monotonic()

    # set200k: the first pass creates v0..v{ids-1} in order, the second
    # moves every vehicle once, in a random order, to a fresh random point.
    n_ids, n_sets = int(sizes["ids"]), int(sizes["sets"])
    lat, lon = uniform_points(rng_set, n_sets)
    ids = np.concatenate(
        [
            np.arange(n_ids),
            *(rng_set.permutation(n_ids) for _ in range(n_sets // n_ids - 1)),
        ]
    )
    ids = ids[:n_sets]
    g = RespFile(out / "set.geofleetd.resp")
    r = RespFile(out / "set.redis.resp")
    for i in range(n_sets):
        name, la, lo = f"v{ids[i]}", fmt(lat[i]), fmt(lon[i])
        g.add(("SET", "fleet", name, "POINT", la, lo))
        r.add(("GEOADD", "fleet", lo, la, name))
    files["set.geofleetd"], files["set.redis"] = g.close(), r.close()
    # Final position of each vehicle, for the NEARBY radius below.
    final_lat = np.empty(n_ids)
    final_lon = np.empty(n_ids)
    for start in range(0, n_sets, n_ids):  # each pass holds each id once
        part = slice(start, min(start + n_ids, n_sets))
        final_lat[ids[part]], final_lon[ids[part]] = lat[part], lon[part]

    # nearby: k=10 at random points. Redis has no k-nearest without a
    # radius, so GEOSEARCH gets one fixed radius, the smallest (rounded up to
    # 10 m) for which every query of the file finds at least 10 members.
    n_near = int(sizes["nearby"])
    qlat, qlon = uniform_points(rng_near, n_near)
    kth = kth_nearest_m(final_lat, final_lon, qlat, qlon, NEAREST_K)
    radius = int(math.ceil(kth.max() * 1.001 / 10.0) * 10)
    worst = np.argsort(kth)[-5:]
    params["nearby_radius_m"] = radius
    params["nearby_kth_m"] = {
        "p50": round(float(np.median(kth)), 1),
        "p99": round(float(np.percentile(kth, 99)), 1),
        "max": round(float(kth.max()), 1),
    }
    params["nearby_check"] = [[fmt(qlat[i]), fmt(qlon[i])] for i in worst]
    g = RespFile(out / "nearby.geofleetd.resp")
    r = RespFile(out / "nearby.redis.resp")
    for i in range(n_near):
        la, lo = fmt(qlat[i]), fmt(qlon[i])
        g.add(("NEARBY", "fleet", "LIMIT", str(NEAREST_K), "IDS", "POINT", la, lo))
        r.add(
            (
                "GEOSEARCH",
                "fleet",
                "FROMLONLAT",
                lo,
                la,
                "BYRADIUS",
                str(radius),
                "m",
                "ASC",
                "COUNT",
                str(NEAREST_K),
            )
        )
    files["nearby.geofleetd"], files["nearby.redis"] = g.close(), r.close()

    # within: random 0.01-degree boxes inside the box. Redis' BYBOX takes a
    # centre and a width/height in meters: the same box measured on its
    # sphere at the box's centre latitude.
    n_within = int(sizes["within"])
    blat = np.round(rng_within.uniform(LAT_MIN, LAT_MAX - BOX_DEG, n_within), 6)
    blon = np.round(rng_within.uniform(LON_MIN, LON_MAX - BOX_DEG, n_within), 6)
    deg_m = REDIS_EARTH_M * math.pi / 180
    g = RespFile(out / "within.geofleetd.resp")
    r = RespFile(out / "within.redis.resp")
    for i in range(n_within):
        a, b = blat[i], blon[i]
        g.add(
            (
                "WITHIN",
                "fleet",
                "COUNT",
                "BOUNDS",
                fmt(a),
                fmt(b),
                fmt(a + BOX_DEG),
                fmt(b + BOX_DEG),
            )
        )
        clat, clon = a + BOX_DEG / 2, b + BOX_DEG / 2
        width = BOX_DEG * deg_m * math.cos(math.radians(clat))
        height = BOX_DEG * deg_m
        r.add(
            (
                "GEOSEARCH",
                "fleet",
                "FROMLONLAT",
                fmt(clon),
                fmt(clat),
                "BYBOX",
                f"{width:.2f}",
                f"{height:.2f}",
                "m",
            )
        )
    files["within.geofleetd"], files["within.redis"] = g.close(), r.close()

    # district: WITHIN COUNT OBJECT over the 71 districts, cycling.
    districts = read_districts()
    g = RespFile(out / "district.geofleetd.resp")
    for i in range(int(sizes["district"])):
        g.add(("WITHIN", "fleet", "COUNT", "OBJECT", districts[i % len(districts)][1]))
    files["district.geofleetd"] = g.close()

    # aisweek: the real AIS week in file order.
    g = RespFile(out / "ais.geofleetd.resp")
    r = RespFile(out / "ais.redis.resp")
    for vid, la, lo in read_ais(sizes["ais_rows"]):  # type: ignore[arg-type]
        g.add(("SET", "harbor", vid, "POINT", la, lo))
        r.add(("GEOADD", "harbor", lo, la, vid))
    files["ais.geofleetd"], files["ais.redis"] = g.close(), r.close()

    # recovery: one SET per distinct id, so the log holds exactly as many
    # live records as commands and compaction has nothing to fold away.
    n_rec = int(sizes["recovery"])
    lat, lon = uniform_points(rng_rec, n_rec)
    g = RespFile(out / "recovery.geofleetd.resp")
    r = RespFile(out / "recovery.redis.resp")
    for i in range(n_rec):
        name, la, lo = f"v{i}", fmt(lat[i]), fmt(lon[i])
        g.add(("SET", "fleet", name, "POINT", la, lo))
        r.add(("GEOADD", "fleet", lo, la, name))
    files["recovery.geofleetd"], files["recovery.redis"] = g.close(), r.close()

    # fences (issue 4): 1,000 static NEARBY channels of 500 m, and one
    # WITHIN channel per district on the AIS key.
    flat, flon = uniform_points(rng_fence, int(sizes["fences"]))
    g = RespFile(out / "chans_nearby.geofleetd.resp")
    for i in range(len(flat)):
        g.add(
            (
                "SETCHAN",
                f"f{i}",
                "NEARBY",
                "fleet",
                "FENCE",
                "DETECT",
                "enter,exit",
                "POINT",
                fmt(flat[i]),
                fmt(flon[i]),
                str(FENCE_METERS),
            )
        )
    files["chans_nearby.geofleetd"] = g.close()
    g = RespFile(out / "chans_district.geofleetd.resp")
    for fid, geom in districts:
        g.add(
            (
                "SETCHAN",
                fid,
                "WITHIN",
                "harbor",
                "FENCE",
                "DETECT",
                "enter,exit",
                "OBJECT",
                geom,
            )
        )
    files["chans_district.geofleetd"] = g.close()

    manifest = {
        "scale": scale,
        "seed": SEED,
        "generator": source_hash(),
        "sizes": sizes,
        "box": {"lat": [LAT_MIN, LAT_MAX], "lon": [LON_MIN, LON_MAX]},
        "params": params,
        "files": files,
        "seconds": round(time.monotonic() - t0, 1),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a tenth of the big workloads, for a fast check",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default bench/out/full or bench/out/quick)",
    )
    args = ap.parse_args(argv)
    scale = "quick" if args.quick else "full"
    out = args.out or HERE / "out" / scale
    manifest = generate(scale, out)
    files = manifest["files"]
    assert isinstance(files, dict)
    for name, info in files.items():
        print(
            f"{name:28s} {info['commands']:>9,d} commands {info['bytes']:>12,d} bytes"
        )
    print(
        f"nearby radius for Redis: {manifest['params']['nearby_radius_m']} m "  # type: ignore[index]
        f"(10th-nearest distance {manifest['params']['nearby_kth_m']})"
    )  # type: ignore[index]
    print(f"wrote {out} in {manifest['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
