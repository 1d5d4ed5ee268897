"""Micro-benchmark of geofleetd.index.points.PointIndex (prints figures, asserts none).

Workload: N points uniform in lat 40.49..40.92, lon -74.26..-73.70 (New York City).

    python3 bench/index_points.py                 # default cell size, 100k points
    python3 bench/index_points.py --cells 0.005 0.01 0.02 --points 100000

Figures per cell size:
- memory of the index for N points (tracemalloc; the id strings are created before
  measuring and reported apart) and the RSS growth of the process;
- set: moves of existing ids to uniformly random new positions, as set() calls per
  second and with the final flush of pending moves included (the honest amortized
  figure, since filing is deferred to the flush); also small moves (about 10 m, the
  usual fleet update) and an interleaved mix of moves and queries;
- nearest: first 10 results from random positions in the area, and from far away
  (Tokyo, the occupied-cell fallback);
- count_bbox / in_bbox of random 0.01-degree boxes;
- WITHIN a district: candidates_bbox over the district's bounds, then
  shapely.contains_xy, cycling through the 71 NYC community districts.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import random
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import shapely  # noqa: E402
from shapely.geometry import shape  # noqa: E402

from geofleetd.index.points import PointIndex  # noqa: E402

MINLAT, MAXLAT, MINLON, MAXLON = 40.49, 40.92, -74.26, -73.70
DISTRICTS = ROOT / "geofleetd" / "data" / "nyc_community_districts.geojson"


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds / 1e3:9.1f}k/s  ({seconds / n * 1e6:7.2f} us each)"


def timed(fn: Callable[[], int], budget_s: float = 1.0) -> tuple[int, float]:
    """Run fn (returning how many operations it did) until budget_s has passed."""
    total = 0
    start = time.perf_counter()
    while True:
        total += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s:
            return total, elapsed


def load_districts() -> list[shapely.Geometry]:
    deadline = time.monotonic() + 120
    while not DISTRICTS.exists():  # being copied in by someone else
        if time.monotonic() > deadline:
            raise SystemExit(f"{DISTRICTS} did not appear")
        time.sleep(1)
    with open(DISTRICTS, encoding="utf-8") as f:
        doc = json.load(f)
    geoms = [shape(feat["geometry"]) for feat in doc["features"]]
    for g in geoms:
        shapely.prepare(g)
    return geoms


def memory_child(cell: float, n: int, seed: int) -> None:
    """Print the RSS growth of building the index, measured in this fresh process
    (the ids are created before the baseline: the store owns them)."""
    rng = random.Random(seed)
    ids = [f"truck{i}" for i in range(n)]
    pos = [(rng.uniform(MINLAT, MAXLAT), rng.uniform(MINLON, MAXLON)) for _ in ids]
    idx = PointIndex(cell)
    idx.set("warmup", 40.7, -74.0)
    idx.remove("warmup")
    gc.collect()
    before = rss_bytes()
    for oid, (la, lo) in zip(ids, pos, strict=True):
        idx.set(oid, la, lo)
    idx.count_bbox(0.0, 0.0, 0.0, 0.0)
    gc.collect()
    print(rss_bytes() - before)


def rss_growth(cell: float, n: int, seed: int) -> int:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(cell), str(n), str(seed)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return int(out.stdout.split()[-1])


def bench_cell(
    cell: float, n: int, seed: int, districts: list[shapely.Geometry]
) -> None:
    rng = random.Random(seed)
    ids = [f"truck{i}" for i in range(n)]
    lats = [rng.uniform(MINLAT, MAXLAT) for _ in range(n)]
    lons = [rng.uniform(MINLON, MAXLON) for _ in range(n)]

    # memory: tracemalloc over a build, then the RSS growth in a fresh process
    gc.collect()
    tracemalloc.start()
    probe = PointIndex(cell)
    for oid, la, lo in zip(ids, lats, lons, strict=True):
        probe.set(oid, la, lo)
    probe.count_bbox(0.0, 0.0, 0.0, 0.0)
    traced, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del probe
    gc.collect()
    rss = rss_growth(cell, n, seed)
    id_bytes = sum(sys.getsizeof(s) for s in ids)

    idx = PointIndex(cell)
    t0 = time.perf_counter()
    for oid, la, lo in zip(ids, lats, lons, strict=True):
        idx.set(oid, la, lo)
    idx.count_bbox(0.0, 0.0, 0.0, 0.0)  # files the pending inserts
    t_ins = time.perf_counter() - t0
    print(f"\n== cell {idx.cell_deg:g} deg, {n} points, {len(idx._cells)} cells ==")
    print(f"insert (incl. filing)      {rate(n, t_ins)}")
    print(
        f"memory: tracemalloc {traced / n:.1f} B/point, RSS growth {rss / n:.1f} "
        f"B/point (index only; the id strings, {id_bytes / n:.0f} B/point, belong "
        "to the caller)"
    )

    # the per-cell containers, as built, against a list or a set per cell
    arrays = list(idx._cells.values())
    as_array = sum(sys.getsizeof(a) for a in arrays)
    as_list = sum(sys.getsizeof(a.tolist()) for a in arrays)
    as_set = sum(sys.getsizeof(set(a)) for a in arrays)
    print(
        f"cell containers: array('q') {as_array / n:.1f} B/point, list "
        f"{as_list / n:.1f}, set {as_set / n:.1f} (plus the cells dict, "
        f"{sys.getsizeof(idx._cells) / n:.1f})"
    )

    # --- moves to random positions
    m = 300_000
    moves = [
        (
            ids[rng.randrange(n)],
            rng.uniform(MINLAT, MAXLAT),
            rng.uniform(MINLON, MAXLON),
        )
        for _ in range(m)
    ]
    s = idx.set
    t0 = time.perf_counter()
    for oid, la, lo in moves:
        s(oid, la, lo)
    t_calls = time.perf_counter() - t0
    idx.count_bbox(0.0, 0.0, 0.0, 0.0)  # flush what is still pending
    t_all = time.perf_counter() - t0
    print(f"set, random moves          {rate(m, t_calls)}  (set() calls, with the")
    print(f"  + final flush            {rate(m, t_all)}   filing they triggered)")

    # --- small moves (about 10 m) of random vehicles
    cur = {oid: (la, lo) for oid, la, lo in moves}
    small = []
    for _ in range(m):
        oid = ids[rng.randrange(n)]
        la, lo = cur.get(oid) or idx.get(oid) or (0.0, 0.0)
        la = min(MAXLAT, max(MINLAT, la + rng.uniform(-1e-4, 1e-4)))
        lo = min(MAXLON, max(MINLON, lo + rng.uniform(-1e-4, 1e-4)))
        cur[oid] = (la, lo)
        small.append((oid, la, lo))
    t0 = time.perf_counter()
    for oid, la, lo in small:
        s(oid, la, lo)
    idx.count_bbox(0.0, 0.0, 0.0, 0.0)
    t_small = time.perf_counter() - t0
    print(f"set, ~10 m moves + flush   {rate(m, t_small)}")

    # --- interleaved: 100 random moves, then one nearest-10 query
    qpts = [
        (rng.uniform(MINLAT, MAXLAT), rng.uniform(MINLON, MAXLON)) for _ in range(3000)
    ]
    t0 = time.perf_counter()
    k = 0
    for q, (qla, qlo) in enumerate(qpts):
        for oid, la, lo in moves[k : k + 100]:
            s(oid, la, lo)
        k = (k + 100) % (m - 100)
        list(itertools.islice(idx.nearest(qla, qlo), 10))
        del q
    t_mix = time.perf_counter() - t0
    print(
        f"mix 100 random moves + 1 nearest-10, per move (query included) "
        f"{rate(len(qpts) * 100, t_mix)}"
    )

    # --- nearest, first 10
    qs = [
        (rng.uniform(MINLAT, MAXLAT), rng.uniform(MINLON, MAXLON))
        for _ in range(20_000)
    ]
    nearest = idx.nearest
    islice = itertools.islice

    def run_nearest() -> int:
        for qla, qlo in qs:
            list(islice(nearest(qla, qlo), 10))
        return len(qs)

    cnt, el = timed(run_nearest)
    print(f"nearest first 10           {rate(cnt, el)}")

    def run_far() -> int:
        for _ in range(20):
            list(islice(nearest(35.68, 139.69), 10))
        return 20

    cnt, el = timed(run_far, 0.5)
    print(f"nearest first 10, far away {rate(cnt, el)}")

    # --- bbox of random 0.01-degree boxes
    boxes = [
        (la, lo, la + 0.01, lo + 0.01)
        for la, lo in (
            (rng.uniform(MINLAT, MAXLAT - 0.01), rng.uniform(MINLON, MAXLON - 0.01))
            for _ in range(20_000)
        )
    ]
    count_bbox = idx.count_bbox
    in_bbox = idx.in_bbox
    avg = sum(count_bbox(*b) for b in boxes[:2000]) / 2000

    def run_count() -> int:
        for b in boxes:
            count_bbox(*b)
        return len(boxes)

    def run_in() -> int:
        for b in boxes:
            in_bbox(*b)
        return len(boxes)

    cnt, el = timed(run_count)
    print(f"count_bbox 0.01 deg        {rate(cnt, el)}  (avg {avg:.1f} hits)")
    cnt, el = timed(run_in)
    print(f"in_bbox 0.01 deg           {rate(cnt, el)}")

    # --- WITHIN a district polygon
    dbounds = [g.bounds for g in districts]  # (minx, miny, maxx, maxy)
    cand = idx.candidates_bbox
    hits = 0
    for g, (x0, y0, x1, y1) in zip(districts, dbounds, strict=True):
        _i, plats, plons = cand(y0, x0, y1, x1)
        hits += int(np.count_nonzero(shapely.contains_xy(g, plons, plats)))

    def run_poly() -> int:
        for g, (x0, y0, x1, y1) in zip(districts, dbounds, strict=True):
            oids, plats, plons = cand(y0, x0, y1, x1)
            inside = shapely.contains_xy(g, plons, plats)
            [oids[i] for i in np.flatnonzero(inside).tolist()]
        return len(districts)

    cnt, el = timed(run_poly)
    print(
        f"district polygon query     {rate(cnt, el)}  "
        f"(avg {hits / len(districts):.0f} points inside)"
    )

    def run_poly_cand() -> int:
        for y0x0 in dbounds:
            cand(y0x0[1], y0x0[0], y0x0[3], y0x0[2])
        return len(dbounds)

    cnt, el = timed(run_poly_cand, 0.5)
    print(f"  of which candidates_bbox {rate(cnt, el)}")


def bench_sparse(seed: int) -> None:
    """Few points spread over the world: the fallback to the occupied cells."""
    rng = random.Random(seed)
    for n in (100, 10_000):
        idx = PointIndex()
        for i in range(n):
            idx.set(f"v{i}", rng.uniform(-90, 90), rng.uniform(-180, 180))
        qs = [(rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(200)]

        def run(qs: list[tuple[float, float]] = qs, idx: PointIndex = idx) -> int:
            for qla, qlo in qs:
                list(itertools.islice(idx.nearest(qla, qlo), 10))
            return len(qs)

        cnt, el = timed(run, 0.5)
        print(f"sparse world, {n:6d} points, nearest first 10 {rate(cnt, el)}")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--memory-child":
        memory_child(float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=float, nargs="+", default=[0.01])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    py = sys.version.split()[0]
    print(f"python {py}, numpy {np.__version__}, shapely {shapely.__version__}")
    districts = load_districts()
    for cell in args.cells:
        bench_cell(cell, args.points, args.seed, districts)
    print()
    bench_sparse(args.seed)


if __name__ == "__main__":
    main()
