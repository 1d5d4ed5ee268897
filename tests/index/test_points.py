"""PointIndex against brute-force oracles.

Every query of the index is compared with a plain filter over a dict of the
expected positions; nearest-neighbour order is compared by distance (ties may come
in any order), with distances from the scalar haversine of geometry.distance
(Tile38's formula). Covered: random set/move/remove sequences (a hypothesis state
machine), each of the index's filing paths (forced by small thresholds), the
antimeridian, the poles, sparse points worldwide, far queries over a dense city,
and real AIS positions replayed as moves.
"""

from __future__ import annotations

import csv
import itertools
import math
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import geofleetd.index.points as points_mod
from geofleetd.geometry.distance import haversine_m
from geofleetd.index.points import PointIndex

DATA = Path(__file__).resolve().parents[2] / "geofleetd" / "data"
AIS_CSV = DATA / "nyharbor_ais_2020-06-30_first_hour.csv"

Pos = tuple[float, float]


# ---------------------------------------------------------------- the oracles


def tolerance(meters: float) -> float:
    # The index computes with numpy and subtracts degrees before scaling, so it
    # may differ from the scalar formula (Tile38's operation order) in the last
    # bits; near the antipode the arcsine amplifies that.
    return max(1e-6, 1e-9 * meters)


def in_box(pts: dict[str, Pos], box: tuple[float, float, float, float]) -> list[str]:
    minlat, minlon, maxlat, maxlon = box
    return sorted(
        oid
        for oid, (la, lo) in pts.items()
        if minlat <= la <= maxlat and minlon <= lo <= maxlon
    )


def check_box(
    idx: PointIndex, pts: dict[str, Pos], box: tuple[float, float, float, float]
) -> None:
    expected = in_box(pts, box)
    got = idx.in_bbox(*box)
    assert len(got) == len(set(got))
    assert sorted(got) == expected, box
    assert idx.count_bbox(*box) == len(expected), box
    ids, lats, lons = idx.candidates_bbox(*box)
    assert sorted(ids) == expected, box
    assert lats.dtype == np.float64 and lons.dtype == np.float64
    assert len(lats) == len(lons) == len(ids)
    for oid, la, lo in zip(ids, lats.tolist(), lons.tolist(), strict=True):
        assert pts[oid] == (la, lo)


def check_nearest(
    idx: PointIndex,
    pts: dict[str, Pos],
    lat: float,
    lon: float,
    max_meters: float | None = None,
    first: int | None = None,
) -> None:
    """The yielded (id, meters) are the brute-force ranking, compared by distance.

    With ``first``, only that many results are taken (the lazy path)."""
    truth = sorted(haversine_m(lat, lon, la, lo) for la, lo in pts.values())
    if max_meters is not None:
        truth = [d for d in truth if d <= max_meters]
    it = idx.nearest(lat, lon, max_meters)
    got = list(it if first is None else itertools.islice(it, first))
    if first is not None:
        truth = truth[:first]
    assert len(got) == len(truth), (lat, lon, max_meters, len(got), len(truth))
    assert len({oid for oid, _ in got}) == len(got)
    previous = -1.0
    for (oid, meters), want in zip(got, truth, strict=True):
        assert isinstance(oid, str)
        assert meters >= previous  # never out of order
        previous = meters
        assert abs(meters - want) <= tolerance(want), (lat, lon, oid, meters, want)
        actual = haversine_m(lat, lon, *pts[oid])
        assert abs(meters - actual) <= tolerance(actual), (oid, meters, actual)


def check_internal(idx: PointIndex) -> None:
    """White-box: every live slot is filed exactly once, under its own cell, at
    the position the index records; nothing else is filed."""
    idx.count_bbox(0.0, 0.0, 0.0, 0.0)  # files pending moves
    assert not idx._pending
    live = set(idx._slot_of.values())
    filed: set[int] = set()
    for key, cell in idx._cells.items():
        assert len(cell) > 0
        for position, slot in enumerate(cell):
            assert slot not in filed
            filed.add(slot)
            assert idx._home[slot] == key
            assert idx._pos[slot] == position
            la = float(idx._lat[slot])
            lo = float(idx._lon[slot])
            row = int((la + 90.0) * idx._inv)
            col = int((lo + 180.0) * idx._inv)
            assert row * idx._stride + col == key
            assert math.isclose(idx._coslat[slot], math.cos(math.radians(la)))
    assert filed == live
    for oid, slot in idx._slot_of.items():
        assert idx._ids[slot] == oid


def random_queries(
    rng: random.Random, pts: dict[str, Pos], n: int
) -> list[tuple[float, float]]:
    """Query positions: near stored points, anywhere, and on the edges."""
    out = []
    values = list(pts.values())
    for _ in range(n):
        r = rng.random()
        if values and r < 0.5:
            la, lo = rng.choice(values)
            la = min(90.0, max(-90.0, la + rng.uniform(-0.02, 0.02)))
            lo = min(180.0, max(-180.0, lo + rng.uniform(-0.02, 0.02)))
        elif r < 0.8:
            la, lo = rng.uniform(-90, 90), rng.uniform(-180, 180)
        else:
            la = rng.choice([90.0, -90.0, 89.9, -89.9, 0.0, rng.uniform(-90, 90)])
            lo = rng.choice([180.0, -180.0, 179.999, -179.999, 0.0])
        out.append((la, lo))
    return out


def random_boxes(
    rng: random.Random, pts: dict[str, Pos], n: int
) -> list[tuple[float, float, float, float]]:
    out = [(-90.0, -180.0, 90.0, 180.0), (10.0, 10.0, 5.0, 20.0)]  # world, empty
    values = list(pts.values())
    for _ in range(n):
        if values and rng.random() < 0.7:
            la, lo = rng.choice(values)
            w = rng.choice([0.0, 1e-4, 0.01, 0.3, 5.0, 60.0])
            box = (la - w * rng.random(), lo - w * rng.random(), la + w, lo + w)
        else:
            a, b = sorted((rng.uniform(-95, 95), rng.uniform(-95, 95)))
            c, d = sorted((rng.uniform(-185, 185), rng.uniform(-185, 185)))
            box = (a, c, b, d)
        out.append(box)
    return out


# ------------------------------------------------------------------ unit tests


def test_empty_index() -> None:
    idx = PointIndex()
    assert len(idx) == 0
    assert "a" not in idx
    assert idx.get("a") is None
    assert not idx.remove("a")
    assert idx.bounds() is None
    assert list(idx.ids()) == []
    assert idx.in_bbox(-90, -180, 90, 180) == []
    assert idx.count_bbox(-90, -180, 90, 180) == 0
    ids, lats, lons = idx.candidates_bbox(-90, -180, 90, 180)
    assert ids == [] and lats.size == 0 and lons.size == 0
    assert list(idx.nearest(0.0, 0.0)) == []


def test_set_get_move_remove() -> None:
    idx = PointIndex()
    idx.set("truck1", 33.5, -112.1)
    idx.set("truck2", 33.6, -112.0)
    assert len(idx) == 2 and "truck1" in idx and 5 not in idx
    assert idx.get("truck1") == (33.5, -112.1)
    idx.set("truck1", 40.7, -74.0)  # move to another cell
    idx.set("truck1", 40.70001, -74.00001)  # move inside the cell
    assert idx.get("truck1") == (40.70001, -74.00001)
    assert idx.in_bbox(40, -75, 41, -73) == ["truck1"]
    assert idx.bounds() == (33.6, -112.0, 40.70001, -74.00001)
    assert sorted(idx.ids()) == ["truck1", "truck2"]
    assert idx.remove("truck1")
    assert not idx.remove("truck1")
    assert idx.get("truck1") is None and len(idx) == 1
    assert idx.in_bbox(40, -75, 41, -73) == []
    idx.set("truck3", 40.7, -74.0)  # reuses the freed slot
    assert idx.in_bbox(40, -75, 41, -73) == ["truck3"]
    assert [oid for oid, _ in idx.nearest(40.7, -74.0)] == ["truck3", "truck2"]
    check_internal(idx)


@pytest.mark.parametrize("small", [1, 24])
def test_moves_through_the_corner_cells(
    monkeypatch: pytest.MonkeyPatch, small: int
) -> None:
    """Cell key 0 (the south pole at lon -180) and the extra column (lon 180)
    are cells like any other: points move in and out of them."""
    monkeypatch.setattr(points_mod, "_SMALL_FLUSH", small)
    idx = PointIndex()
    pts: dict[str, Pos] = {}
    for path in [(-90.0, -180.0), (0.0, 0.0), (-90.0, -180.0), (90.0, 180.0),
                 (-89.999, -179.999), (0.0, 180.0), (0.0, -180.0)]:  # fmt: skip
        for oid in ("a", "b"):
            idx.set(oid, *path)
            pts[oid] = path
            check_internal(idx)
            check_box(idx, pts, (-90.0, -180.0, -89.99, -179.99))
            check_box(idx, pts, (-1.0, 179.99, 1.0, 180.0))
            check_nearest(idx, pts, -90.0, 0.0)
    assert idx.remove("a") and idx.remove("b")
    check_internal(idx)
    assert idx._cells == {}


def test_ids_is_a_snapshot() -> None:
    idx = PointIndex()
    for i in range(10):
        idx.set(f"v{i}", 1.0, float(i))
    seen = []
    for oid in idx.ids():
        idx.remove(oid)
        seen.append(oid)
    assert sorted(seen) == sorted(f"v{i}" for i in range(10))
    assert len(idx) == 0


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(90.5, 0.0), (-91.0, 0.0), (0.0, 180.1), (0.0, -181.0), (math.nan, 0.0),
     (0.0, math.nan), (math.inf, 0.0)],
)  # fmt: skip
def test_rejects_bad_positions(lat: float, lon: float) -> None:
    idx = PointIndex()
    with pytest.raises(ValueError):
        idx.set("a", lat, lon)
    with pytest.raises(ValueError):
        idx.nearest(lat, lon)
    assert len(idx) == 0


def test_rejects_bad_arguments() -> None:
    for bad in (0.0, -1.0, math.nan, math.inf, 400.0, 1e-7):
        with pytest.raises(ValueError):
            PointIndex(bad)
    idx = PointIndex()
    for bad_m in (-1.0, math.nan):
        with pytest.raises(ValueError):
            idx.nearest(0.0, 0.0, bad_m)


def test_cell_size_is_rounded_to_whole_columns() -> None:
    assert PointIndex(0.01).cell_deg == pytest.approx(0.01)
    assert PointIndex(7.0).cell_deg == pytest.approx(360 / 51)
    assert PointIndex(360.0).cell_deg == 360.0


def test_tile38_distances() -> None:
    idx = PointIndex()
    idx.set("a", 33.414750027566235, -111.91154479980467)
    idx.set("b", 33.0001, -115.0)
    ((oid, meters),) = idx.nearest(33.414750027566235, -111.91789627075195, 1000)
    assert oid == "a" and round(meters, 3) == 589.512
    oid, meters = next(idx.nearest(33.0, -115.0))
    assert oid == "b" and round(meters, 3) == 11.119


def test_bbox_edges_are_inclusive() -> None:
    idx = PointIndex()
    corners = {"sw": (10.0, 20.0), "ne": (11.0, 21.0), "mid": (10.5, 20.5)}
    for oid, (la, lo) in corners.items():
        idx.set(oid, la, lo)
    assert sorted(idx.in_bbox(10.0, 20.0, 11.0, 21.0)) == ["mid", "ne", "sw"]
    assert idx.in_bbox(10.0, 20.0, 10.0, 20.0) == ["sw"]
    assert idx.in_bbox(10.0 + 1e-12, 20.0, 10.5, 20.5) == ["mid"]
    assert idx.count_bbox(11.0, 21.0, 10.0, 22.0) == 0  # min > max: empty
    assert idx.count_bbox(math.nan, 0, 90, 180) == 0


def test_max_meters_is_inclusive() -> None:
    idx = PointIndex()
    idx.set("p", 40.0, -74.0)
    idx.set("q", 40.001, -74.0)
    (near, d_near), (far, d_far) = idx.nearest(40.0005, -74.0003)
    assert d_near < d_far and {near, far} == {"p", "q"}
    assert list(idx.nearest(40.0005, -74.0003, d_far)) == [(near, d_near), (far, d_far)]
    assert list(idx.nearest(40.0005, -74.0003, d_near)) == [(near, d_near)]
    assert list(idx.nearest(40.0005, -74.0003, d_near * 0.999)) == []
    assert [o for o, _ in idx.nearest(40.0, -74.0, 0.0)] == ["p"]


def test_nearest_is_lazy_and_survives_growth() -> None:
    idx = PointIndex()
    rng = random.Random(3)
    pts = {f"v{i}": (rng.uniform(0, 1), rng.uniform(0, 1)) for i in range(200)}
    for oid, (la, lo) in pts.items():
        idx.set(oid, la, lo)
    it = idx.nearest(0.5, 0.5)
    first = next(it)
    for i in range(5000):  # grows every column while the iterator is suspended
        idx.set(f"w{i}", -10.0, -10.0)
    rest = list(it)  # results are unspecified now, but well-formed
    assert all(isinstance(o, str) and isinstance(d, float) for o, d in rest)
    assert first[0] in pts


# --------------------------------------------------------- scenario oracles


def fill(idx: PointIndex, pts: dict[str, Pos]) -> None:
    for oid, (la, lo) in pts.items():
        idx.set(oid, la, lo)


def test_antimeridian() -> None:
    rng = random.Random(11)
    for cell in (0.01, 0.7, 45.0):
        idx = PointIndex(cell)
        pts = {
            f"a{i}": (rng.uniform(-5, 5), rng.choice([1, -1]) * rng.uniform(179.0, 180))
            for i in range(300)
        }
        pts["east_edge"] = (0.0, 180.0)
        pts["west_edge"] = (0.0, -180.0)
        fill(idx, pts)
        for la, lo in [(0.0, 180.0), (0.0, -180.0), (1.0, 179.9999), (-2, -179.9999),
                       (0.0, 179.5), (4.0, -179.0), (0.0, 0.0)]:  # fmt: skip
            check_nearest(idx, pts, la, lo)
            check_nearest(idx, pts, la, lo, first=5)
            check_nearest(idx, pts, la, lo, max_meters=50_000)
        for box in [(-1, 179.5, 1, 180), (-1, -180, 1, -179.5), (-90, -180, 90, 180),
                    (0, 180, 0, 180), (0, -180, 0, -180)]:  # fmt: skip
            check_box(idx, pts, box)
        check_internal(idx)


POLE_QUERIES = [
    (89.9, 0.0),
    (89.9, 180.0),
    (-89.9, -45.0),
    (90.0, 10.0),
    (-90.0, 0.0),
    (89.999, -179.9),
    (60.0, 0.0),
    (0.0, 0.0),
]


def test_poles() -> None:
    rng = random.Random(12)
    for cell in (0.01, 1.0):
        idx = PointIndex(cell)
        pts = {
            f"p{i}": (
                rng.choice([1, -1]) * rng.uniform(89.5, 90.0),
                rng.uniform(-180, 180),
            )
            for i in range(300)
        }
        pts["north"] = (90.0, 0.0)
        pts["north_again"] = (90.0, 123.0)  # the same place, another longitude
        pts["south"] = (-90.0, -180.0)
        fill(idx, pts)
        for la, lo in POLE_QUERIES:
            check_nearest(idx, pts, la, lo)
            check_nearest(idx, pts, la, lo, first=7)
            check_nearest(idx, pts, la, lo, max_meters=30_000)
        for box in [(89.9, -180, 90, 180), (-90, -180, -89.9, 180), (90, 0, 90, 0),
                    (89.5, -10, 90, 10)]:  # fmt: skip
            check_box(idx, pts, box)
        check_internal(idx)


def test_sparse_worldwide() -> None:
    rng = random.Random(13)
    for cell in (0.01, 0.001, 2.0):
        idx = PointIndex(cell)
        pts = {
            f"s{i}": (rng.uniform(-90, 90), rng.uniform(-180, 180)) for i in range(25)
        }
        fill(idx, pts)
        for la, lo in random_queries(rng, pts, 25):
            check_nearest(idx, pts, la, lo)
            check_nearest(idx, pts, la, lo, first=3)
            check_nearest(idx, pts, la, lo, max_meters=rng.choice([1e5, 3e6, 2.1e7]))
        for box in random_boxes(rng, pts, 25):
            check_box(idx, pts, box)


@pytest.mark.parametrize("cell", [5.0, 45.0, 120.0])
def test_worldwide_large_cells(cell: float) -> None:
    """Many points in few big cells: the searched rectangle grows to every
    column (a cap holding a pole) while still cheaper than the occupied cells."""
    rng = random.Random(int(cell))
    idx = PointIndex(cell)
    pts = {f"w{i}": (rng.uniform(-90, 90), rng.uniform(-180, 180)) for i in range(1500)}
    fill(idx, pts)
    for la, lo in [
        (80.0, 0.0),
        (-80.0, 170.0),
        (70.0, -179.0),
        (0.0, 0.0),
        (89.0, 5.0),
    ]:
        check_nearest(idx, pts, la, lo, first=40)
    for la, lo in random_queries(rng, pts, 10):
        check_nearest(idx, pts, la, lo, first=25)
    check_nearest(idx, pts, 80.0, 0.0)


def test_single_point_and_duplicates() -> None:
    idx = PointIndex()
    pts = {"only": (12.0, 34.0)}
    fill(idx, pts)
    for la, lo in [(12.0, 34.0), (-12.0, -146.0), (90.0, 0.0), (0.0, 180.0)]:
        check_nearest(idx, pts, la, lo)
    pts.update({f"d{i}": (12.0, 34.0) for i in range(50)})  # one position, many ids
    fill(idx, pts)
    check_nearest(idx, pts, 12.0, 34.0)
    check_nearest(idx, pts, 12.0, 34.0, first=10)
    check_box(idx, pts, (12.0, 34.0, 12.0, 34.0))


@pytest.mark.parametrize("cell", [0.01, 0.05])
def test_dense_city_far_queries(cell: float) -> None:
    """Dense points with the query far away: after the growing search gives up,
    all points are ranked (0.01: few per cell) or the occupied cells are (0.05)."""
    rng = random.Random(14)
    idx = PointIndex(cell)
    pts = {
        f"t{i}": (rng.uniform(40.49, 40.92), rng.uniform(-74.26, -73.70))
        for i in range(4000)
    }
    fill(idx, pts)
    far = [(35.68, 139.69), (-40.7, 106.0), (40.0, -75.5), (89.99, 0.0), (-90.0, 0.0),
           (0.0, -180.0), (40.7, -73.0)]  # fmt: skip
    for la, lo in far:
        check_nearest(idx, pts, la, lo, first=20)
    check_nearest(idx, pts, 35.68, 139.69)
    check_nearest(idx, pts, 40.7, -74.0)


# ----------------------------------------------- random sequences, all paths


@pytest.mark.parametrize(
    ("flush_limit", "small", "grouped_min", "grouped_ratio"),
    [(1, 24, 2048, 2), (7, 1, 1, 100), (500, 1, 1, 0), (500, 1000, 1, 100),
     (32768, 24, 2048, 2)],
)  # fmt: skip
def test_random_sequences_every_filing_path(
    monkeypatch: pytest.MonkeyPatch,
    flush_limit: int,
    small: int,
    grouped_min: int,
    grouped_ratio: int,
) -> None:
    """Random set/move/remove sequences with the filing thresholds forced, so
    that the per-slot, plain-Python and cell-by-cell paths all run."""
    monkeypatch.setattr(points_mod, "_FLUSH_LIMIT", flush_limit)
    monkeypatch.setattr(points_mod, "_SMALL_FLUSH", small)
    monkeypatch.setattr(points_mod, "_GROUPED_MIN", grouped_min)
    monkeypatch.setattr(points_mod, "_GROUPED_RATIO", grouped_ratio)
    rng = random.Random(flush_limit * 31 + small)
    for cell in (0.05, 3.0):
        idx = PointIndex(cell)
        pts: dict[str, Pos] = {}
        for step in range(3000):
            oid = f"o{rng.randrange(400)}"
            r = rng.random()
            if r < 0.1:
                assert idx.remove(oid) == (oid in pts)
                pts.pop(oid, None)
            else:
                if r < 0.6:
                    pos = (rng.uniform(40.0, 41.0), rng.uniform(-74.5, -73.5))
                elif r < 0.8 and oid in pts:  # a small move
                    la, lo = pts[oid]
                    pos = (min(90.0, la + 1e-4), max(-180.0, lo - 1e-4))
                else:
                    pos = (rng.uniform(-90, 90), rng.uniform(-180, 180))
                idx.set(oid, *pos)
                pts[oid] = pos
            if step % 500 == 499:
                check_internal(idx)
                for box in random_boxes(rng, pts, 5):
                    check_box(idx, pts, box)
                for la, lo in random_queries(rng, pts, 3):
                    check_nearest(idx, pts, la, lo, first=15)
        assert len(idx) == len(pts)
        for oid, pos in pts.items():
            assert idx.get(oid) == pos


REGIONS = {
    "city": (st.floats(40.49, 40.92), st.floats(-74.26, -73.70)),
    "world": (st.floats(-90, 90), st.floats(-180, 180)),
    "pole": (st.floats(89.0, 90.0), st.floats(-180, 180)),
    "antimeridian": (
        st.floats(-1, 1),
        st.sampled_from([-180.0, -179.99, 179.99, 180.0]),
    ),
}


@st.composite
def positions(draw: st.DrawFn) -> Pos:
    lats, lons = REGIONS[draw(st.sampled_from(sorted(REGIONS)))]
    return draw(lats), draw(lons)


class IndexMachine(RuleBasedStateMachine):
    """Random sequences of set/move/remove; every query rule checks an oracle."""

    def __init__(self) -> None:
        super().__init__()
        self.idx = PointIndex()
        self.pts: dict[str, Pos] = {}

    @initialize(cell=st.sampled_from([0.01, 0.37, 5.0, 60.0, 0.002]))
    def make(self, cell: float) -> None:
        self.idx = PointIndex(cell)

    @rule(n=st.integers(0, 40), pos=positions())
    def set(self, n: int, pos: Pos) -> None:
        self.idx.set(f"id{n}", *pos)
        self.pts[f"id{n}"] = pos

    @rule(n=st.integers(0, 40), seed=st.integers(0, 2**16), region=positions())
    def set_many(self, n: int, seed: int, region: Pos) -> None:
        rng = random.Random(seed)
        for _ in range(n):
            oid = f"id{rng.randrange(60)}"
            pos = (
                min(90.0, max(-90.0, region[0] + rng.uniform(-0.05, 0.05))),
                min(180.0, max(-180.0, region[1] + rng.uniform(-0.05, 0.05))),
            )
            self.idx.set(oid, *pos)
            self.pts[oid] = pos

    @rule(n=st.integers(0, 60))
    def remove(self, n: int) -> None:
        assert self.idx.remove(f"id{n}") == (f"id{n}" in self.pts)
        self.pts.pop(f"id{n}", None)

    @rule(a=positions(), b=positions())
    def box(self, a: Pos, b: Pos) -> None:
        box = (min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1]))
        check_box(self.idx, self.pts, box)

    @precondition(lambda self: bool(self.pts))
    @rule(data=st.data(), w=st.sampled_from([0.0, 0.001, 0.1, 3.0]))
    def box_around_a_point(self, data: st.DataObject, w: float) -> None:
        la, lo = data.draw(st.sampled_from(sorted(self.pts.values())))
        check_box(self.idx, self.pts, (la - w, lo - w, la + w, lo + w))

    @rule(
        q=positions(),
        max_m=st.one_of(st.none(), st.sampled_from([0.0, 500.0, 2e5, 1e7])),
        first=st.one_of(st.none(), st.integers(1, 12)),
    )
    def nearest(self, q: Pos, max_m: float | None, first: int | None) -> None:
        check_nearest(self.idx, self.pts, q[0], q[1], max_m, first)

    @invariant()
    def same_contents(self) -> None:
        assert len(self.idx) == len(self.pts)
        for oid, pos in self.pts.items():
            assert self.idx.get(oid) == pos

    def teardown(self) -> None:
        check_internal(self.idx)


TestIndexMachine = IndexMachine.TestCase
TestIndexMachine.settings = settings(
    max_examples=80,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# ----------------------------------------------------------- real AIS fixes


def load_ais() -> list[tuple[str, float, float]]:
    with open(AIS_CSV, newline="", encoding="utf-8") as f:
        return [
            (row["vehicle_id"], float(row["lat"]), float(row["lon"]))
            for row in csv.DictReader(f)
        ]


def test_ais_replay() -> None:
    """Replay the first hour of New York Harbor AIS fixes as moves (checking
    along the way), then check queries all over the harbor."""
    rows = load_ais()
    assert len(rows) > 8000
    rng = random.Random(15)
    for cell in (0.01, 0.001):
        idx = PointIndex(cell)
        pts: dict[str, Pos] = {}
        for i, (vid, la, lo) in enumerate(rows):
            idx.set(vid, la, lo)
            pts[vid] = (la, lo)
            if i % 2000 == 1999:
                for la_q, lo_q in random_queries(rng, pts, 3):
                    check_nearest(idx, pts, la_q, lo_q, first=10)
                check_box(idx, pts, (40.6, -74.1, 40.7, -74.0))
        assert len(idx) == len(pts) > 250
        check_internal(idx)
        bounds = idx.bounds()
        lats = [p[0] for p in pts.values()]
        lons = [p[1] for p in pts.values()]
        assert bounds == (min(lats), min(lons), max(lats), max(lons))
        for la, lo in random_queries(rng, pts, 30):
            check_nearest(idx, pts, la, lo, first=10)
        for la, lo in random_queries(rng, pts, 8):
            check_nearest(idx, pts, la, lo)
            check_nearest(idx, pts, la, lo, max_meters=2000.0)
        for box in random_boxes(rng, pts, 40):
            check_box(idx, pts, box)
        # the harbor cut in 0.01-degree boxes
        for la in np.arange(40.45, 40.95, 0.05).tolist():
            for lo in np.arange(-74.3, -73.7, 0.05).tolist():
                check_box(idx, pts, (la, lo, la + 0.01, lo + 0.01))
        # vessels leave: remove half, check again
        for vid in sorted(pts)[::2]:
            assert idx.remove(vid)
            del pts[vid]
        for la, lo in random_queries(rng, pts, 10):
            check_nearest(idx, pts, la, lo, first=10)
        for box in random_boxes(rng, pts, 10):
            check_box(idx, pts, box)
        check_internal(idx)
