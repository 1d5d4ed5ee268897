"""Spatial index for moving points: a grid of cells over columnar coordinates.

Layout
------
- Every object owns a *slot*: a row in the numpy float64 columns ``_lat``,
  ``_lon`` and ``_coslat`` (cos of the latitude, for distances). A free slot holds
  NaN, so vectorized scans skip it without a mask. Freed slots are reused (LIFO
  free list); the columns grow by doubling into new arrays.
- ``_slot_of`` maps id -> slot and ``_ids`` maps slot -> id (a freed slot keeps
  its old id string until it is reused).
- The world is cut into square cells of ``cell_deg`` degrees (rounded so that a
  whole number of columns spans 360 degrees). A cell key is
  ``row * stride + col`` with ``row = int((lat + 90) * inv)`` and
  ``col = int((lon + 180) * inv)``; ``stride = ncols + 1`` because ``lon == 180``
  lands in an extra column ``ncols`` (the meridian of column 0's west edge). The
  key function is monotonic in each coordinate, which the box queries rely on.
- ``_cells`` maps the key of each occupied cell to an ``array('q')`` of the slots
  filed under it (8 bytes a point: gathers index numpy with it directly);
  ``_home[slot]`` is the key a slot is filed under (-1: none) and ``_pos[slot]``
  its position in that array, so taking a slot out is a swap with the last one.

Lazy filing
-----------
``set`` only writes the two coordinates and appends the slot to ``_pending``. The
cells are brought up to date by ``_flush``, which every query runs first and which
``set`` runs itself once ``_FLUSH_LIMIT`` slots are pending. A flush computes the
cell keys of all pending slots at once with numpy and refiles only the slots whose
cell changed: slot by slot (a swap-remove and an append) for a few, cell by cell
(each touched cell rebuilt once) when many slots share few cells. So a move costs
one dict lookup, two array writes and a list append; a point that moved inside its
cell costs nothing more. Coordinates are always current: ``get`` never flushes.
The price is latency in bursts: a flush of ``_FLUSH_LIMIT`` moves that all change
cell takes about 10 ms on the 2-core test machine (about 3 ms when they stay in
their cells).

Queries
-------
- Boxes visit the cells of the box's rows and columns (a vectorized scan of all
  coordinates instead when that is cheaper, e.g. the whole world). Points of cells
  strictly inside the box need no test; the others are tested exactly.
- ``nearest`` searches growing caps. Every point within angle ``rho`` of the query
  lies in a rectangle of rows and (wrapping) columns computed from ``rho``; once
  it has been looked up, the points found within ``rho`` are final and are
  yielded in order. ``rho`` starts where about ``_TARGET`` points are expected
  (from the density of the query's cell) and doubles. When the next rectangle
  would cost more lookups than a fallback, the rest comes from the fallback:
  ranking all points directly (sparse data) or ranking the occupied cells by a
  lower bound on their distance and taking them nearest first.

Distances
---------
Haversine on Tile38's sphere (``geometry.distance.EARTH_RADIUS_M``). ``nearest``
ranks by the haversine term ``h`` (monotonic in distance) computed with numpy,
taking the latitude and longitude differences in degrees before scaling; the
meters it yields match ``geometry.distance.haversine_m`` to about 1e-9 relative
(much closer for nearby points), not to the last bit, so a caller that prints all
digits recomputes the few distances it keeps with the scalar function.

Iterators returned by ``nearest`` reflect the index as it was when they were
created or last advanced; changing the index while one is suspended gives
unspecified (but memory-safe and well-typed) results. ``ids`` is a snapshot.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from geofleetd.geometry.distance import EARTH_RADIUS_M

__all__ = ["PointIndex"]

_PI = math.pi
_RAD = math.pi / 180.0
_HALF_RAD = _RAD / 2
_TWO_R = 2.0 * EARTH_RADIUS_M
_EPS_DEG = 1e-9
"""Slack (degrees) for float rounding between a cell's key and its geometric edges."""

_FLUSH_LIMIT = 32768
"""``set`` files pending moves itself once this many are queued."""

_GROUPED_MIN = 2048
_GROUPED_RATIO = 2
"""A flush refiles cell by cell (``_refile_grouped``) rather than slot by slot
when at least ``_GROUPED_MIN`` slots changed cell and they touch fewer than
1 / ``_GROUPED_RATIO`` as many cells."""

_SMALL_FLUSH = 24
"""Below this many pending slots a flush runs in plain Python (no numpy overhead)."""

_TARGET = 20.0
"""nearest: the first search radius is where this many points are expected."""

_DIRECT_RATIO = 4
"""nearest: once the growing search gives up, rank all points directly (rather
than the occupied cells) if there are at most this many slots per occupied cell."""

_SCAN_RATIO = 16
"""A bbox enumerates its cells if there are fewer than ``slots / _SCAN_RATIO``;
otherwise it scans the coordinate columns (vectorized), which is cheaper."""

_SLOT = np.dtype(np.intp)
_SLOT_CODE = "q"  # cells hold slots as numpy's index type: gathers need no cast
assert array(_SLOT_CODE).itemsize == _SLOT.itemsize
_POS_CODE = "i"

FloatArray = NDArray[np.float64]
SlotArray = NDArray[np.intp]
_NO_H: FloatArray = np.empty(0, dtype=np.float64)
_NO_SLOTS: SlotArray = np.empty(0, dtype=_SLOT)
_Found = tuple[list["array[int]"], list["array[int]"]]
_SCAN: _Found = ([], [])
"""Marker returned by ``PointIndex._bbox_cells``: scan the columns instead."""


def _h_of_angle(deg: float) -> float:
    """The haversine term ``sin^2(angle / 2)`` of a central angle in degrees."""
    if deg <= 0.0:
        return 0.0
    if deg >= 180.0:
        return 1.0
    s = math.sin(deg * _RAD / 2)
    return s * s


def _ucol(x: float, inv: float, ncols: int) -> int:
    """Column of longitude ``x`` (in [-540, 540]) counted on from column 0 across
    the antimeridian in either direction, so that it is monotonic in ``x``."""
    if x < -180.0:
        return int((x + 540.0) * inv) - ncols
    if x > 180.0:
        return int((x - 180.0) * inv) + ncols
    return int((x + 180.0) * inv)


class PointIndex:
    """Points (id -> lat, lon in degrees) in a uniform grid; see the module doc."""

    __slots__ = (
        "_cap",
        "_cell",
        "_cells",
        "_co",
        "_coslat",
        "_free",
        "_home",
        "_hwm",
        "_ids",
        "_inv",
        "_lat",
        "_lon",
        "_ncols",
        "_nrows",
        "_pending",
        "_pos",
        "_slot_of",
        "_stride",
    )

    def __init__(self, cell_deg: float = 0.01) -> None:
        if not (math.isfinite(cell_deg) and 0.0 < cell_deg <= 360.0):
            raise ValueError(f"cell size must be in (0, 360] degrees, not {cell_deg!r}")
        ncols = max(1, round(360.0 / cell_deg))
        if ncols > 3_600_000:
            raise ValueError(f"cell size {cell_deg!r} is too small")
        self._ncols = ncols
        self._cell = 360.0 / ncols
        self._inv = ncols / 360.0
        self._stride = ncols + 1
        self._nrows = int(180.0 * self._inv) + 1
        self._slot_of: dict[str, int] = {}
        self._ids: list[str] = []
        self._free: list[int] = []
        self._pending: list[int] = []
        self._cells: dict[int, array[int]] = {}
        self._hwm = 0
        self._cap = 0
        self._co: NDArray[np.float64] = np.empty((3, 0), dtype=np.float64)
        self._lat: FloatArray = self._co[0]
        self._lon: FloatArray = self._co[1]
        self._coslat: FloatArray = self._co[2]
        self._home: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._pos: array[int] = array(_POS_CODE)
        self._grow()

    # ------------------------------------------------------------------ basics

    @property
    def cell_deg(self) -> float:
        """The cell size actually used (360 / number of columns)."""
        return self._cell

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, oid: object) -> bool:
        return oid in self._slot_of

    def set(self, oid: str, lat: float, lon: float) -> None:
        """Insert ``oid`` at ``(lat, lon)`` or move it there."""
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise ValueError(f"position out of range: lat {lat!r}, lon {lon!r}")
        j = self._slot_of.get(oid)
        if j is None:
            j = self._new_slot(oid)
        self._lat[j] = lat
        self._lon[j] = lon
        pending = self._pending
        pending.append(j)
        if len(pending) >= _FLUSH_LIMIT:
            self._flush()

    def remove(self, oid: str) -> bool:
        """Remove ``oid``; False if it was not there."""
        j = self._slot_of.pop(oid, None)
        if j is None:
            return False
        old = int(self._home[j])
        if old >= 0:
            self._unfile(j, old)
            self._home[j] = -1
        self._lat[j] = math.nan
        self._lon[j] = math.nan
        self._free.append(j)  # _ids[j] keeps the old id until the slot is reused
        return True

    def get(self, oid: str) -> tuple[float, float] | None:
        """``(lat, lon)`` of ``oid``, or None."""
        j = self._slot_of.get(oid)
        if j is None:
            return None
        return float(self._lat[j]), float(self._lon[j])

    def export(self) -> tuple[dict[str, int], FloatArray, FloatArray]:
        """Copies of (id -> slot, lat column, lon column), for snapshots."""
        hwm = self._hwm
        return dict(self._slot_of), self._lat[:hwm].copy(), self._lon[:hwm].copy()

    def ids(self) -> Iterator[str]:
        """All ids (a snapshot, so the index may change during the iteration)."""
        return iter(list(self._slot_of))

    def bounds(self) -> tuple[float, float, float, float] | None:
        """``(minlat, minlon, maxlat, maxlon)`` of all points, None when empty."""
        if not self._slot_of:
            return None
        la = self._lat[: self._hwm]
        lo = self._lon[: self._hwm]
        return (
            float(np.nanmin(la)),
            float(np.nanmin(lo)),
            float(np.nanmax(la)),
            float(np.nanmax(lo)),
        )

    # ------------------------------------------------------------ bbox queries

    def in_bbox(
        self, minlat: float, minlon: float, maxlat: float, maxlon: float
    ) -> list[str]:
        """Ids of the points with ``minlat <= lat <= maxlat`` and
        ``minlon <= lon <= maxlon`` (a box with min > max is empty)."""
        slots = self._bbox_slots(minlat, minlon, maxlat, maxlon)
        ids = self._ids
        return list(map(ids.__getitem__, slots.tolist()))

    def count_bbox(
        self, minlat: float, minlon: float, maxlat: float, maxlon: float
    ) -> int:
        """How many points ``in_bbox`` would return."""
        found = self._bbox_cells(minlat, minlon, maxlat, maxlon)
        if found is None:
            return 0
        if found is _SCAN:
            return int(
                np.count_nonzero(self._scan_mask(minlat, minlon, maxlat, maxlon))
            )
        inner, border = found
        n = 0
        for a in inner:
            n += len(a)
        if border:
            bs = np.frombuffer(b"".join(border), dtype=_SLOT)
            la, lo, _ = self._co.take(bs, axis=1)
            n += int(
                np.count_nonzero(_box_mask(la, lo, minlat, minlon, maxlat, maxlon))
            )
        return n

    def candidates_bbox(
        self, minlat: float, minlon: float, maxlat: float, maxlon: float
    ) -> tuple[list[str], FloatArray, FloatArray]:
        """``(ids, lats, lons)`` of the points in the box (exactly those of
        ``in_bbox``), for a caller that applies a finer vectorized predicate."""
        slots = self._bbox_slots(minlat, minlon, maxlat, maxlon)
        ids = self._ids
        la: FloatArray
        lo: FloatArray
        la, lo, _ = self._co.take(slots, axis=1)
        return list(map(ids.__getitem__, slots.tolist())), la, lo

    def _bbox_slots(
        self, minlat: float, minlon: float, maxlat: float, maxlon: float
    ) -> SlotArray:
        found = self._bbox_cells(minlat, minlon, maxlat, maxlon)
        if found is None:
            return _NO_SLOTS
        if found is _SCAN:
            return np.flatnonzero(self._scan_mask(minlat, minlon, maxlat, maxlon))
        inner, border = found
        if not border:
            return np.frombuffer(b"".join(inner), dtype=_SLOT)
        bs = np.frombuffer(b"".join(border), dtype=_SLOT)
        la, lo, _ = self._co.take(bs, axis=1)
        bs = bs[_box_mask(la, lo, minlat, minlon, maxlat, maxlon)]
        if not inner:
            return bs
        return np.concatenate((np.frombuffer(b"".join(inner), dtype=_SLOT), bs))

    def _scan_mask(
        self, minlat: float, minlon: float, maxlat: float, maxlon: float
    ) -> NDArray[np.bool_]:
        """Box test over every slot (free slots hold NaN and fail it)."""
        return _box_mask(
            self._lat[: self._hwm],
            self._lon[: self._hwm],
            minlat,
            minlon,
            maxlat,
            maxlon,
        )

    def _bbox_cells(
        self, minlat: float, minlon: float, maxlat: float, maxlon: float
    ) -> _Found | None:
        """The occupied cells that can hold points of the box, split into cells
        strictly inside it (all their points are in the box) and border cells
        (their points need the exact test); ``_SCAN`` when a vectorized scan of
        all coordinates is cheaper than visiting the cells; None when no point
        can be in the box. Flushes pending moves first.

        The key function is monotonic in each coordinate, so a point whose row is
        strictly between the box's first and last rows is strictly inside the
        box's latitude range, and likewise for columns."""
        if not (minlat <= maxlat and minlon <= maxlon):
            return None  # also NaN
        if maxlat < -90.0 or minlat > 90.0 or maxlon < -180.0 or minlon > 180.0:
            return None
        if self._pending:
            self._flush()
        if not self._slot_of:
            return None
        inv = self._inv
        r0 = int(((minlat if minlat > -90.0 else -90.0) + 90.0) * inv)
        r1 = int(((maxlat if maxlat < 90.0 else 90.0) + 90.0) * inv)
        c0 = int(((minlon if minlon > -180.0 else -180.0) + 180.0) * inv)
        c1 = int(((maxlon if maxlon < 180.0 else 180.0) + 180.0) * inv)
        if (r1 - r0 + 1) * (c1 - c0 + 1) * _SCAN_RATIO > self._hwm:
            return _SCAN
        get = self._cells.get
        stride = self._stride
        inner: list[array[int]] = []
        border: list[array[int]] = []
        for r in range(r0, r1 + 1):
            base = r * stride
            if r in (r0, r1):
                for k in range(base + c0, base + c1 + 1):
                    a = get(k)
                    if a is not None:
                        border.append(a)
                continue
            a = get(base + c0)
            if a is not None:
                border.append(a)
            if c1 > c0:
                a = get(base + c1)
                if a is not None:
                    border.append(a)
            for k in range(base + c0 + 1, base + c1):
                a = get(k)
                if a is not None:
                    inner.append(a)
        return inner, border

    # ---------------------------------------------------------------- nearest

    def nearest(
        self, lat: float, lon: float, max_meters: float | None = None
    ) -> Iterator[tuple[str, float]]:
        """Yield ``(id, meters)`` in increasing haversine distance from
        ``(lat, lon)``, lazily; only points within ``max_meters`` (inclusive) when
        it is given."""
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise ValueError(f"position out of range: lat {lat!r}, lon {lon!r}")
        if max_meters is not None and not max_meters >= 0.0:
            raise ValueError(f"distance must be >= 0, not {max_meters!r}")
        return self._nearest(float(lat), float(lon), max_meters)

    def _nearest(
        self, lat: float, lon: float, max_m: float | None
    ) -> Iterator[tuple[str, float]]:
        """Search in growing caps: all cells that can hold a point within angle
        ``rho`` of the query form a rectangle of rows and (wrapping) columns; once
        it is looked up, the points found within rho are final. rho starts where
        about ``_TARGET`` points are expected and doubles. Once the next
        rectangle would cost more lookups than ranking everything left, either
        all points are ranked at once (few points per occupied cell) or the
        occupied cells not looked up yet are ranked by a lower bound on their
        distance and taken nearest first."""
        if self._pending:
            self._flush()
        total = len(self._slot_of)
        if total == 0:
            return
        limit = math.inf if max_m is None else max_m
        if max_m is None or max_m >= _PI * EARTH_RADIUS_M:
            rho_max = math.inf
            hmax = math.inf
        else:
            rho_max = math.degrees(max_m / EARTH_RADIUS_M)
            s = math.sin(max_m / _TWO_R)
            hmax = s * s * (1 + 1e-9) + 1e-18  # pruning only; exact test on meters
        cells = self._cells
        get = cells.get
        ncols = self._ncols
        nrows = self._nrows
        stride = self._stride
        cell = self._cell
        inv = self._inv
        iy0 = int((lat + 90.0) * inv)
        ix0 = int((lon + 180.0) * inv)  # may be ncols (lon 180): same as column 0
        cos_lat = math.cos(lat * _RAD)
        pole_gap = 90.0 - abs(lat)
        ctx = _Query(lat, lon, self._co)

        a0 = get(iy0 * stride + ix0)
        if a0:
            rho = math.sqrt(
                _TARGET * cell * cell * max(cos_lat, 1e-9) / (_PI * len(a0))
            )
        else:
            rho = cell
        pool_h: FloatArray = _NO_H
        pool_s: SlotArray = _NO_SLOTS
        h_done = -1.0  # everything yielded so far has h <= h_done, the rest more
        seen = 0
        scanned = 0
        # cell lookups worth the fallback's cost (about 50 ns per ranked point,
        # 100 ns per looked-up cell, 50 ns per ranked cell)
        direct = self._hwm <= _DIRECT_RATIO * len(cells)
        budget = max(64, self._hwm // 2 if direct else len(cells) // 2)
        # The rectangle looked up so far: rows ra..rb (none while ra > rb) and
        # columns ix0 + da .. ix0 + db, counted across the antimeridian (every
        # column when full).
        ra, rb, da, db, full = 0, -1, 0, -1, False
        while True:
            if rho > rho_max:
                rho = rho_max
            # the rectangle holding every point within rho: rows na..nb ...
            x = lat - rho - _EPS_DEG
            na = 0 if x <= -90.0 else int((x + 90.0) * inv)
            x = lat + rho + _EPS_DEG
            nb = nrows - 1 if x >= 90.0 else min(nrows - 1, int((x + 90.0) * inv))
            # ... and columns ix0 + nda .. ix0 + ndb
            nfull = rho >= pole_gap
            nda = ndb = 0
            if not nfull:
                ratio = math.sin(rho * _RAD) / cos_lat
                if ratio >= 1.0:
                    nfull = True
                else:
                    dl = math.degrees(math.asin(ratio)) * (1 + 1e-9) + _EPS_DEG
                    nda = _ucol(lon - dl, inv, ncols) - ix0
                    ndb = _ucol(lon + dl, inv, ncols) - ix0
                    nfull = ndb - nda + 1 >= ncols
            # the cells new in it, as strips (row, first column, end column)
            if nfull:
                c0, c1 = 0, ncols
            else:
                c0, c1 = ix0 + nda, ix0 + ndb + 1
            if ra > rb:  # first rectangle
                strips = [(y, c0, c1) for y in range(na, nb + 1)]
                ncells = (nb + 1 - na) * (c1 - c0)
            else:
                strips = []
                for y in range(na, nb + 1):
                    if y < ra or y > rb:
                        strips.append((y, c0, c1))
                    elif full:
                        continue
                    elif nfull:  # all but the old columns
                        strips.append((y, ix0 + db + 1, ix0 + da + ncols))
                    else:
                        if nda < da:
                            strips.append((y, ix0 + nda, ix0 + da))
                        if ndb > db:
                            strips.append((y, ix0 + db + 1, ix0 + ndb + 1))
                ncells = 0
                for strip in strips:
                    ncells += strip[2] - strip[1]
            if scanned + ncells > budget:
                break  # to the occupied cells
            scanned += ncells
            found: list[array[int]] = []
            for y, c0, c1 in strips:
                base = y * stride
                if c0 >= 0 and c1 <= ncols:
                    for k in range(base + c0, base + c1):
                        a = get(k)
                        if a is not None:
                            found.append(a)
                    if c0 == 0:
                        a = get(base + ncols)  # lon 180, column 0's west edge
                        if a is not None:
                            found.append(a)
                else:
                    keys = [base + c % ncols for c in range(c0, c1)]
                    if base in keys:
                        keys.append(base + ncols)
                    for k in keys:
                        a = get(k)
                        if a is not None:
                            found.append(a)
            ra, rb, da, db, full = na, nb, nda, ndb, nfull
            if found:
                sl = np.frombuffer(b"".join(found), dtype=_SLOT)
                seen += sl.size
                pool_h, pool_s = _merge(pool_h, pool_s, ctx.h(sl), sl, hmax)
            if (ra == 0 and rb == nrows - 1 and full) or seen >= total:
                nr = pool_h.size  # every point has been seen
            elif rho >= rho_max:
                nr = pool_h.size  # and nothing farther may be taken
            else:
                h_done = _h_of_angle(rho)
                nr = int(pool_h.searchsorted(h_done, "right"))
            if nr:
                out, over = self._out(pool_h[:nr], pool_s[:nr], limit)
                yield from out
                if over:
                    return
                pool_h = pool_h[nr:]
                pool_s = pool_s[nr:]
            if (ra == 0 and rb == nrows - 1 and full) or seen >= total:
                return
            if rho >= rho_max:
                return
            rho *= 2.0 if seen >= 4 else 4.0

        if direct:
            # Few points per occupied cell: rank the points themselves. Those not
            # yielded yet are exactly those farther than the last threshold.
            h = ctx.h_first(self._hwm)
            keep = h > h_done  # free slots are NaN: never kept
            if hmax != math.inf:
                keep &= h <= hmax
            sl = np.flatnonzero(keep)
            yield from self._out_ranked(h[sl], sl, limit)
            return

        # Occupied-cell phase: rank every occupied cell not yet looked up by a
        # lower bound on its distance and take them nearest first.
        keys_a = np.fromiter(cells.keys(), dtype=np.int64, count=len(cells))
        arrays = list(cells.values())
        rows = keys_a // stride
        cols = (keys_a % stride) % ncols
        if ra <= rb and full:
            todo = np.flatnonzero((rows < ra) | (rows > rb))
        elif ra <= rb:
            # column offsets da..db from ix0 are off <= db or off >= ncols + da
            off = (cols - ix0) % ncols
            inside = (off <= db) | (off >= ncols + da)
            todo = np.flatnonzero((rows < ra) | (rows > rb) | ~inside)
        else:
            todo = np.arange(len(arrays))
        hc = self._cell_bounds(rows[todo], cols[todo], lat, lon, cos_lat, pole_gap)
        if hmax != math.inf:
            near = hc <= hmax
            todo = todo[near]
            hc = hc[near]
        order = np.argsort(hc, kind="stable")
        todo_l = todo[order].tolist()
        hc_l = hc[order].tolist()
        n = len(todo_l)
        i = 0
        want = 64
        while i < n:
            batch: list[array[int]] = []
            got = 0
            while i < n and got < want:
                a = arrays[todo_l[i]]
                batch.append(a)
                got += len(a)
                i += 1
            want *= 2
            sl = np.frombuffer(b"".join(batch), dtype=_SLOT)
            pool_h, pool_s = _merge(pool_h, pool_s, ctx.h(sl), sl, hmax)
            if i >= n:
                break
            nr = int(pool_h.searchsorted(hc_l[i], "right"))
            if nr:
                out, over = self._out(pool_h[:nr], pool_s[:nr], limit)
                yield from out
                if over:
                    return
                pool_h = pool_h[nr:]
                pool_s = pool_s[nr:]
        yield from self._out(pool_h, pool_s, limit)[0]

    def _cell_bounds(
        self,
        rows: NDArray[np.int64],
        cols: NDArray[np.int64],
        lat: float,
        lon: float,
        cos_lat: float,
        pole_gap: float,
    ) -> FloatArray:
        """Lower bound, as h, on the distance from the query to each cell: the
        largest of the latitude gap, the bound from the longitude gap, and (for
        cells up to 10 degrees, where the farthest point from a cell's center is
        a corner) the distance to the center less the center-corner distance.
        The last one is the tight one for far cells."""
        cell = self._cell
        south = rows * cell - (90.0 + _EPS_DEG)
        north = south + (cell + 2 * _EPS_DEG)
        lat_gap = np.maximum(np.maximum(south - lat, lat - north), 0.0)
        west = cols * cell - (180.0 + _EPS_DEG)
        width = cell + 2 * _EPS_DEG
        off = np.mod(lon - west, 360.0)  # query east of the west edge, [0, 360)
        dlon = np.where(off <= width, 0.0, np.minimum(off - width, 360.0 - off))
        sin_dlon = np.sin(np.minimum(dlon, 90.0) * _RAD)
        lon_gap = np.where(
            dlon >= 90.0,
            pole_gap,
            np.degrees(np.arcsin(np.minimum(1.0, cos_lat * sin_dlon))),
        )
        gap = np.maximum(lat_gap, lon_gap) - _EPS_DEG
        if cell <= 10.0:
            south = np.clip(rows * cell - 90.0, -90.0, 90.0)
            north = np.minimum(south + cell, 90.0)
            mid = (south + north) * 0.5
            cos_mid = np.cos(mid * _RAD)
            s1 = np.sin((mid - lat) * _HALF_RAD)
            s2 = np.sin(((cols + 0.5) * cell - 180.0 - lon) * _HALF_RAD)
            to_mid = 2.0 * np.arcsin(
                np.sqrt(np.minimum(s1 * s1 + cos_lat * cos_mid * s2 * s2, 1.0))
            )
            s1 = np.sin((north - south) * (_HALF_RAD / 2))
            cos_edge = np.maximum(np.cos(south * _RAD), np.cos(north * _RAD))
            s2 = math.sin(cell * (_HALF_RAD / 2))
            radius = 2.0 * np.arcsin(
                np.sqrt(np.minimum(s1 * s1 + cos_mid * cos_edge * (s2 * s2), 1.0))
            )
            gap = np.maximum(gap, np.degrees(to_mid - radius - 1e-7))
        s = np.sin(np.clip(gap, 0.0, 180.0) * (_RAD / 2))
        out: FloatArray = s * s
        return out

    def _out(
        self, h: FloatArray, slots: SlotArray, limit: float
    ) -> tuple[Iterator[tuple[str, float]], bool]:
        """``(id, meters)`` of candidates already in distance order, as a lazy
        iterator, and whether some were left out for lying beyond ``limit`` (the
        search is then over)."""
        meters = np.sqrt(h) if h.size and h[-1] <= 1.0 else np.sqrt(np.minimum(h, 1.0))
        np.arcsin(meters, out=meters)
        meters *= _TWO_R
        cut = meters.size
        if limit != math.inf:
            cut = int(meters.searchsorted(limit, "right"))
        out = zip(
            map(self._ids.__getitem__, slots[:cut].tolist()),
            meters[:cut].tolist(),
            strict=True,
        )
        return out, cut < meters.size

    def _out_ranked(
        self, h: FloatArray, slots: SlotArray, limit: float
    ) -> Iterator[tuple[str, float]]:
        """Yield candidates in distance order, sorting lazily: the nearest 32
        first, then the next 128, and so on."""
        chunk = 32
        while h.size > 2 * chunk:
            part = np.argpartition(h, chunk)
            first = part[:chunk]
            first = first[np.argsort(h[first])]
            out, over = self._out(h[first], slots[first], limit)
            yield from out
            if over:
                return
            rest = part[chunk:]
            h = h[rest]
            slots = slots[rest]
            chunk *= 4
        order = np.argsort(h)
        yield from self._out(h[order], slots[order], limit)[0]

    # -------------------------------------------------------------- internals

    def _new_slot(self, oid: str) -> int:
        free = self._free
        if free:
            j = free.pop()
            self._ids[j] = oid
        else:
            j = self._hwm
            if j >= self._cap:
                self._grow()
            self._hwm = j + 1
            self._ids.append(oid)
        self._slot_of[oid] = j
        return j

    def _grow(self) -> None:
        """Double the columns (new arrays: views held by callers stay valid)."""
        old = self._cap
        cap = max(64, old * 2)
        co = np.empty((3, cap), dtype=np.float64)
        co[:, :old] = self._co
        co[:2, old:] = np.nan
        co[2, old:] = 0.0
        home = np.full(cap, -1, dtype=np.int64)
        home[:old] = self._home
        self._co, self._home = co, home
        self._lat, self._lon, self._coslat = co[0], co[1], co[2]
        self._pos.extend(array(_POS_CODE, bytes(4 * (cap - old))))
        self._cap = cap

    def _unfile(self, j: int, key: int) -> None:
        """Take slot ``j`` out of cell ``key`` (swap with the cell's last slot)."""
        cells = self._cells
        a = cells[key]
        last = a.pop()
        if last != j:
            p = self._pos[j]
            a[p] = last
            self._pos[last] = p
        elif not a:
            del cells[key]

    def _flush(self) -> None:
        """File every pending slot under the cell of its current position, and
        refresh its cos(lat)."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        cells = self._cells
        pos = self._pos
        home = self._home
        if len(pending) < _SMALL_FLUSH:
            lat = self._lat
            lon = self._lon
            coslat = self._coslat
            inv = self._inv
            stride = self._stride
            cos = math.cos
            for j in pending:
                la = float(lat[j])
                if la != la:
                    continue  # removed since
                coslat[j] = cos(la * _RAD)
                key = int((la + 90.0) * inv) * stride + int(
                    (float(lon[j]) + 180.0) * inv
                )
                old = int(home[j])
                if key != old:
                    if old >= 0:
                        self._unfile(j, old)
                    home[j] = key
                    a = cells.get(key)
                    if a is None:
                        cells[key] = array(_SLOT_CODE, (j,))
                        pos[j] = 0
                    else:
                        pos[j] = len(a)
                        a.append(j)
            return
        ps = _unique(np.array(pending, dtype=np.int64))
        rows = self._lat[ps]
        live = rows == rows
        if not live.all():
            ps = ps[live]
            rows = rows[live]
        self._coslat[ps] = np.cos(rows * _RAD)
        cols = self._lon[ps]
        inv = self._inv
        rows += 90.0
        rows *= inv
        cols += 180.0
        cols *= inv
        keys = rows.astype(np.int64) * self._stride + cols.astype(np.int64)
        olds = home[ps]
        moved = keys != olds
        ps = ps[moved]
        keys = keys[moved]
        olds = olds[moved]
        home[ps] = keys
        if ps.size >= _GROUPED_MIN:
            old_cells = _unique(olds[olds >= 0])
            new_cells = _unique(keys)
            if (old_cells.size + new_cells.size) * _GROUPED_RATIO < ps.size:
                self._refile_grouped(ps, keys, old_cells, new_cells)
                return
        get = cells.get
        for j, old, key in zip(ps.tolist(), olds.tolist(), keys.tolist(), strict=True):
            if old >= 0:  # out of the old cell: swap with its last slot
                a = cells[old]
                last = a.pop()
                if last != j:
                    p = pos[j]
                    a[p] = last
                    pos[last] = p
                elif not a:
                    del cells[old]
            a = get(key)
            if a is None:
                cells[key] = array(_SLOT_CODE, (j,))
                pos[j] = 0
            else:
                pos[j] = len(a)
                a.append(j)

    def _refile_grouped(
        self,
        slots: NDArray[np.int64],
        keys: NDArray[np.int64],
        old_cells: NDArray[np.int64],
        new_cells: NDArray[np.int64],
    ) -> None:
        """Move many slots to the cells ``keys`` at once: rebuild each cell
        touched (the old cells without the moving slots, then the new cells with
        them appended) and renumber the positions of every slot in them. Costs a
        few array operations per touched cell instead of per slot."""
        cells = self._cells
        moving = np.zeros(self._cap, dtype=np.bool_)
        moving[slots] = True
        touched: dict[int, array[int]] = {}
        if old_cells.size:
            olds = [cells[k] for k in old_cells.tolist()]
            lens = np.fromiter(map(len, olds), dtype=np.intp, count=len(olds))
            content = np.frombuffer(b"".join(olds), dtype=_SLOT)
            keep = ~moving[content]
            starts = np.zeros(lens.size, dtype=np.intp)
            np.cumsum(lens[:-1], out=starts[1:])
            kept_lens = np.add.reduceat(keep, starts, dtype=np.intp)
            kept_ends = np.cumsum(kept_lens) * _SLOT.itemsize
            kept = content[keep].tobytes()
            begin = 0
            for k, a, end in zip(
                old_cells.tolist(), olds, kept_ends.tolist(), strict=True
            ):
                if end > begin:
                    del a[:]  # refilled in place: cheaper than a new array
                    a.frombytes(kept[begin:end])
                    touched[k] = a
                else:
                    del cells[k]
                begin = end
        order = np.argsort(keys)
        moved = slots[order].tobytes()
        ends = np.searchsorted(keys[order], new_cells, side="right") * _SLOT.itemsize
        begin = 0
        for k, end in zip(new_cells.tolist(), ends.tolist(), strict=True):
            b = touched.get(k)
            if b is None:
                b = cells.get(k)
            if b is None:
                b = cells[k] = array(_SLOT_CODE)
            b.frombytes(moved[begin:end])
            touched[k] = b
            begin = end
        # every slot of a touched cell gets its position in it
        arrays = list(touched.values())
        lens = np.fromiter(map(len, arrays), dtype=np.intp, count=len(arrays))
        content = np.frombuffer(b"".join(arrays), dtype=_SLOT)
        starts = np.zeros(lens.size, dtype=np.intp)
        np.cumsum(lens[:-1], out=starts[1:])
        where = np.arange(content.size, dtype=np.int32)
        where -= np.repeat(starts, lens).astype(np.int32)
        pos = np.frombuffer(self._pos, dtype=np.int32)
        pos[content] = where
        del pos  # release the buffer before the array may be resized


def _box_mask(
    la: FloatArray,
    lo: FloatArray,
    minlat: float,
    minlon: float,
    maxlat: float,
    maxlon: float,
) -> NDArray[np.bool_]:
    """Inclusive box test per point (NaN, a free slot, fails it)."""
    m = la >= minlat
    m &= la <= maxlat
    m &= lo >= minlon
    m &= lo <= maxlon
    return m


def _unique(a: NDArray[np.int64]) -> NDArray[np.int64]:
    """Sorted distinct values (``np.unique`` hashes, which is slower here)."""
    x = np.sort(a)
    if x.size > 1:
        first = np.empty(x.size, dtype=np.bool_)
        first[0] = True
        np.not_equal(x[1:], x[:-1], out=first[1:])
        x = x[first]
    return x


def _merge(
    h0: FloatArray, s0: SlotArray, h1: FloatArray, s1: SlotArray, hmax: float
) -> tuple[FloatArray, SlotArray]:
    """Candidates ``(h0, s0)`` (sorted by h) and ``(h1, s1)`` together, sorted by
    h, without those beyond ``hmax``."""
    if h0.size:
        h1 = np.concatenate((h0, h1))
        s1 = np.concatenate((s0, s1))
    order = h1.argsort()
    h1 = h1[order]
    s1 = s1[order]
    if hmax != math.inf:
        cut = int(h1.searchsorted(hmax, "right"))
        if cut < h1.size:
            h1 = h1[:cut]
            s1 = s1[:cut]
    return h1, s1


class _Query:
    """The haversine term ``h`` from one center to the points of given slots:
    ``sin^2(dlat / 2) + cos(lat1) cos(lat2) sin^2(dlon / 2)``. The latitude and
    longitude differences are taken in degrees before scaling (exact for nearby
    points), and ``cos(lat2)`` comes from the index's column. One gather takes
    latitude, longitude and cosine of every slot at once."""

    __slots__ = ("co", "cos_b", "q")

    def __init__(self, lat: float, lon: float, co: NDArray[np.float64]) -> None:
        q = self.q = np.empty((2, 1))
        q[0, 0] = lat
        q[1, 0] = lon
        self.cos_b = math.cos(lat * _RAD)
        self.co = co

    def _h(self, block: NDArray[np.float64]) -> FloatArray:
        t = block[:2]
        t -= self.q
        t *= _HALF_RAD
        np.sin(t, out=t)
        t *= t
        u: FloatArray = t[1]
        u *= block[2]
        u *= self.cos_b
        u += t[0]
        return u

    def h(self, slots: SlotArray) -> FloatArray:
        return self._h(self.co.take(slots, axis=1))

    def h_first(self, n: int) -> FloatArray:
        """h for slots 0..n-1 (NaN for free slots)."""
        return self._h(self.co[:, :n].copy())
