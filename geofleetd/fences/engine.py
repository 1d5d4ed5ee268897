"""Fence engine: channels (SETCHAN), live fences (``... FENCE`` on a connection),
roaming fences, and the evaluation of each batch's changes against them.

Every write to a watched key leaves a *note* in the batch context:
``(command, key, id, old_record, new_record, fields[, old_fields])`` (records as in
the log; None when absent). After the batch commits, ``evaluate`` turns the notes
into events, following Tile38 1.37:

- Which fences see a note. A live fence sees every note of its key. A channel whose
  DETECT is unset or includes ``outside`` sees every note of its key too (so it
  reports ``outside`` for every update, and ``drop``). Any other channel sees a note
  only when its bounding box holds the old or the new position (DETECT cross: meets
  the box spanning both). Those boxes sit in a uniform grid per key (and a shapely
  STRtree, for shapes and crossing paths): a batch finds all its (note, fence)
  candidates in a few numpy operations, so the cost follows the updates, not
  updates x fences.
- Membership of all candidate pairs is tested at once: numpy haversine for NEARBY
  circles, comparisons for bounds, one ``intersects_xy`` call per polygon fence.
  Boundaries count as inside; a point within a micrometre of a circle's rim is
  settled by the scalar haversine, the same formula small batches use, so batch
  size never changes a point's side. Batches of at most ``SMALL_BATCH`` notes per
  key (a paced stream) skip numpy and go note by note.
- Detection is the pure ``detect.classify``/``expand``; plain SETs on fences without
  filters take a precomputed table of it. COMMANDS and MATCH filter first;
  WHERE/WHEREIN test the new fields (an old position counts as inside only when its
  old fields passed too); an update whose new state fails WHERE sends nothing. DEL,
  PDEL and expiry send ``del``; DROP sends ``drop``; FSET sends ``inside``/``outside``
  (never enter or exit: it does not move the object), nothing under NOFIELDS.
  EXPIRE, PERSIST and string values send nothing. COUNT output sends only ``del``
  and ``drop``; IDS sends the id without the object.
- Roaming fences (``NEARBY key FENCE ROAM key2 pattern meters [NODWELL]``) compare the
  objects of ``key2`` within ``meters`` of the old position and of the new one, as
  they stood when that update was applied (positions changed earlier in the same
  batch are replayed in order): ``nearby`` for each one near the new position
  (with NODWELL, not those already near the old one), ``faraway`` for each one near
  the old position but no longer near the new one, each sorted by distance then id,
  distances truncated to millimetres. Nothing about pairs is stored.
- Order. Events of one update come out together, sorted as Tile38 sorts them
  (exit, outside, enter, inside; others first; then by channel name); updates in the
  order they were applied. Each subscriber connection gets one write per batch
  (split in pieces of at most a quarter of ``subscriber_queue_bytes``, so only a
  subscriber that really falls behind is dropped, by ``ClientConn.push``).
- A channel created (or deleted) by a command in the middle of a batch sees exactly
  the notes after (before) that command.

Membership is never stored apart from positions: old positions come from the notes,
so after a restart detection continues from the replayed state. Groups (the id
shared by the events of one visit) are per fence and start over after a restart.

Limits: the area of ``GET key id`` is resolved when the fence is created (and kept,
as GeoJSON, in the channel's record); roaming looks at point objects of ``key2``
only, and within the true circle (Tile38 1.37 matches its bounding square); a live
fence started by a command in the middle of a batch sees that whole batch; a DROP of
a roaming target key in the middle of a batch hides that key's dropped objects from
the batch's earlier updates; hooks to external endpoints (SETHOOK) are not part of
this engine.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import shapely
from numpy.typing import NDArray

from geofleetd.commands.search import Query, fields_getter
from geofleetd.errors import GeofleetError
from geofleetd.fences.detect import classify, expand
from geofleetd.geometry import areas, geohash
from geofleetd.geometry.distance import EARTH_RADIUS_M, bbox_around, haversine_m
from geofleetd.geometry.geojson import parse_geojson_cached, point_json
from geofleetd.logs import kv
from geofleetd.protocol import jsonout
from geofleetd.store.collection import Collection, glob_match

if TYPE_CHECKING:
    from geofleetd.commands.base import Ctx
    from geofleetd.server.app import Server
    from geofleetd.server.connection import ClientConn

log = logging.getLogger("geofleetd.fences")

Note = tuple[Any, ...]
Rec = tuple[Any, ...] | list[Any]
F64 = NDArray[np.float64]
Bools = NDArray[np.bool_]

# Tile38's order of the events of one update (sortMsgs): anything else first.
ORDER = {"exit": 1, "outside": 2, "enter": 3, "inside": 4}
MOVES = frozenset({"set", "fset"})
_KIND_CIRCLE, _KIND_BOUNDS, _KIND_OTHER = 0, 1, 2
# up to this many notes of a key, a batch is evaluated note by note (no numpy)
SMALL_BATCH = 48
_NAN = float("nan")
_escape = jsonout._escape


@dataclass(eq=False)
class Fence:
    name: str  # channel name; "" for a live fence on a connection
    query: Query
    args: list[str]
    area: Any = None
    conn: ClientConn | None = None
    meta: dict[str, str] = field(default_factory=dict)
    expires_at: float | None = None
    area_json: str | None = None  # the resolved area of ``GET key id``
    groups: dict[str, str] = field(default_factory=dict)
    # set while the batch that created the fence is evaluated: notes[:born_at]
    # came before the fence existed
    born_in: list[Note] | None = None
    born_at: int = 0
    hook: str = field(init=False, default="")  # ',"hook":...,"meta":{...}'
    always: bool = field(init=False, default=True)  # sees every note of its key
    # the common case (a plain SET, no filters, OBJECTS output, no cross) goes
    # through a table: old_in * 2 + new_in -> ((detect, order), ...)
    fast: bool = field(init=False, default=False)
    set_kinds: tuple[tuple[tuple[str, int], ...], ...] = field(init=False, default=())
    # old_in * 2 + new_in -> (starts a new group, ((detect, order), ...))
    set_plan: tuple[tuple[bool, tuple[tuple[str, int], ...]], ...] = field(
        init=False, default=()
    )
    mid: str = field(init=False, default="")  # '"' + hook + ',"key":...,"time":"'

    def __post_init__(self) -> None:
        parts = []
        if self.name:
            parts.append(',"hook":' + _escape(self.name))
        if self.name and self.meta:
            parts.append(',"meta":' + jsonout.dumps(self.meta))
        self.hook = "".join(parts)
        q = self.query
        detect = q.detect
        self.always = (
            self.conn is not None
            or self.area is None
            or detect is None
            or "outside" in detect
        )
        self.mid = f'"{self.hook},"key":{_escape(q.key)},"time":"'
        self.fast = (
            self.area is not None
            and q.commands is None
            and not q.matches
            and not q.preds
            and not q.nofields
            and not (q.distance and q.cmd == "nearby")
            and q.output == "OBJECTS"
            and (detect is None or "cross" not in detect)
        )
        self.set_kinds = tuple(
            tuple(
                (k, ORDER.get(k, 0))
                for k in expand(classify(o, n, False, o, "set"), detect)
            )
            for o, n in ((False, False), (False, True), (True, False), (True, True))
        )
        self.set_plan = tuple(
            (bool(kinds) and kinds[0][0] in ("enter", "cross"), kinds)
            for kinds in self.set_kinds
        )

    @property
    def key(self) -> str:
        return self.query.key


def fence_area(q: Query) -> Any:
    if q.roam is not None:
        return None
    if q.cmd == "nearby":
        if q.meters is None:
            raise GeofleetError("a NEARBY fence needs a distance in meters")
        return areas.Circle(q.lat, q.lon, q.meters)
    return q.area


_second: list[Any] = [None, ""]  # the last whole second and its text


def _now_text() -> str:
    """Now as RFC 3339 in UTC with microseconds (the text is cached per second)."""
    now = time.time()
    sec = int(now)
    if _second[0] != sec:
        _second[0] = sec
        _second[1] = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_second[1]}.{int((now - sec) * 1e6):06d}Z"


class _BoxGrid:
    """Which boxes hold each of many points, answered for all points at once.

    Boxes are filed in a uniform grid of square cells (the median box size);
    a point looks at its one cell, then the exact box test. Boxes that would
    cover more than ``MAX_CELLS`` cells are tested against every point instead.
    """

    MAX_CELLS = 16

    def __init__(self, boxes: F64) -> None:
        self.boxes = boxes  # (n, 4): minlon, minlat, maxlon, maxlat
        n = len(boxes)
        size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        self.cell = float(max(np.median(size) if n else 1.0, 1e-5))
        x0, y0, x1, y1 = (
            np.floor(boxes[:, i] / self.cell).astype(np.int64) for i in range(4)
        )
        nx, ny = x1 - x0 + 1, y1 - y0 + 1
        cells = nx * ny
        small = np.flatnonzero(cells <= self.MAX_CELLS)
        self.big = np.flatnonzero(cells > self.MAX_CELLS)
        counts = cells[small]
        owner = np.repeat(small, counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        within = np.arange(len(owner)) - first
        cx = x0[owner] + within % nx[owner]
        cy = y0[owner] + within // nx[owner]
        keys = cx * _GRID_STRIDE + cy
        order = np.argsort(keys, kind="stable")
        keys, self.members = keys[order], owner[order]
        self.ukeys, self.starts, self.counts = np.unique(
            keys, return_index=True, return_counts=True
        )
        # the same for one point at a time, in plain Python
        members = self.members.tolist()
        self.table: dict[int, list[int]] = {
            key: members[s : s + n]
            for key, s, n in zip(
                self.ukeys.tolist(),
                self.starts.tolist(),
                self.counts.tolist(),
                strict=True,
            )
        }
        self.big_list: list[int] = self.big.tolist()
        self.cross: list[int] = []  # boxes of DETECT cross fences (set by _Plan)
        self.box_list: list[tuple[float, float, float, float]] = [
            (b[0], b[1], b[2], b[3]) for b in boxes.tolist()
        ]

    def lookup(self, lat: float, lon: float) -> list[int]:
        """Boxes holding one point."""
        c = self.cell
        key = math.floor(lon / c) * _GRID_STRIDE + math.floor(lat / c)
        boxes = self.box_list
        out = [
            k
            for k in self.table.get(key, ())
            if boxes[k][0] <= lon <= boxes[k][2] and boxes[k][1] <= lat <= boxes[k][3]
        ]
        for k in self.big_list:
            b = boxes[k]
            if b[0] <= lon <= b[2] and b[1] <= lat <= b[3]:
                out.append(k)
        return out

    def query(self, lats: F64, lons: F64) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """(point position, box position) for every box holding a point."""
        ok = np.flatnonzero(~np.isnan(lats))
        la, lo = lats[ok], lons[ok]
        keys = np.floor(lo / self.cell).astype(np.int64) * _GRID_STRIDE + np.floor(
            la / self.cell
        ).astype(np.int64)
        pos = np.searchsorted(self.ukeys, keys)
        pos[pos == len(self.ukeys)] = 0
        hit = self.ukeys[pos] == keys if len(self.ukeys) else np.zeros(len(keys), bool)
        cnt = np.where(hit, self.counts[pos] if len(self.ukeys) else 0, 0)
        total = int(cnt.sum())
        pts = np.repeat(np.arange(len(ok)), cnt)
        first = np.repeat(np.cumsum(cnt) - cnt, cnt)
        start = np.repeat(self.starts[pos] if len(self.ukeys) else cnt, cnt)
        bx = self.members[start + np.arange(total) - first] if total else pts
        if len(self.big):
            b = self.boxes[self.big]
            inside = (
                (lo[:, None] >= b[:, 0])
                & (la[:, None] >= b[:, 1])
                & (lo[:, None] <= b[:, 2])
                & (la[:, None] <= b[:, 3])
            )
            pi, bi = np.nonzero(inside)
            pts = np.concatenate([pts, pi])
            bx = np.concatenate([bx, self.big[bi]])
        b = self.boxes[bx]
        la, lo = la[pts], lo[pts]
        keep = (lo >= b[:, 0]) & (la >= b[:, 1]) & (lo <= b[:, 2]) & (la <= b[:, 3])
        return ok[pts[keep]], bx[keep]


_GRID_STRIDE = 1 << 31


@dataclass
class _Plan:
    """The fences of one key, arranged for batch evaluation."""

    spatial: list[Fence]  # channels found through the boxes of their areas
    tree: Any  # STRtree of the boxes (shapes, DETECT cross paths)
    grid: _BoxGrid  # the same boxes, for points
    nkinds: NDArray[np.int8]  # (fence, old_in * 2 + new_in) -> events of a SET
    fast: Bools  # the fence takes the table path (Fence.fast)
    kind: NDArray[np.int8]
    p0: F64  # circle: lat, lon, meters; bounds: minlat, minlon, maxlat, maxlon
    p1: F64
    p2: F64
    p3: F64
    cross: Bools  # DETECT includes cross: the old->new segment is tested
    full: list[Fence]  # area fences that see every note of the key
    # kind, p0, p1, p2 as Python lists, for note-by-note evaluation
    lists: tuple[list[int], list[float], list[float], list[float]] = (
        [],
        [],
        [],
        [],
    )

    def cells(self, *recs: Rec | None) -> list[int]:
        """Fences whose box holds one of the point records (and, for DETECT cross
        fences, whose box meets the box spanning them), each once."""
        grid = self.grid
        found: set[int] = set()
        pts = [r for r in recs if r is not None]
        for r in pts:
            found.update(grid.lookup(r[1], r[2]))
        if len(pts) == 2 and grid.cross:
            a, b = pts
            box = (
                min(a[2], b[2]), min(a[1], b[1]), max(a[2], b[2]), max(a[1], b[1])
            )  # fmt: skip
            for k in grid.cross:
                if _boxes_meet(grid.box_list[k], box):
                    found.add(k)
        return sorted(found)


class _Cols:
    """The notes of one key as columns: old and new point positions."""

    def __init__(self, notes: list[Note], idxs: list[int]) -> None:
        self.idxs = idxs
        sub = notes if len(idxs) == len(notes) else [notes[i] for i in idxs]
        olds = [n[3] for n in sub]
        news = [n[4] for n in sub]
        olat = [o[1] if o is not None and o[0] == "p" else _NAN for o in olds]
        olon = [o[2] if o is not None and o[0] == "p" else _NAN for o in olds]
        nlat = [o[1] if o is not None and o[0] == "p" else _NAN for o in news]
        nlon = [o[2] if o is not None and o[0] == "p" else _NAN for o in news]
        self.geo: list[int] = []  # positions whose old or new record is a shape
        self.dels: list[int] = []  # positions of deletes (of a spatial object)
        odd = [
            j
            for j, n in enumerate(sub)
            if n[0] != "set"
            or (n[3] is not None and n[3][0] != "p")
            or (n[4] is not None and n[4][0] != "p")
        ]
        for j in odd:
            cmd, old, new = sub[j][0], sub[j][3], sub[j][4]
            if cmd == "fset":  # Tile38 compares no old state on FSET
                olat[j] = olon[j] = _NAN
            elif (old is not None and old[0] == "g") or (
                new is not None and new[0] == "g"
            ):
                self.geo.append(j)
            if cmd == "del" and old is not None and old[0] != "s":
                self.dels.append(j)
        self.olat = np.array(olat, dtype=np.float64)
        self.olon = np.array(olon, dtype=np.float64)
        self.nlat = np.array(nlat, dtype=np.float64)
        self.nlon = np.array(nlon, dtype=np.float64)
        # not a plain SET of points: the general path
        self.odd = np.zeros(len(sub), dtype=np.bool_)
        self.odd[odd] = True
        # shapes and deletes: membership computed one by one
        self.special = set(self.geo) | set(self.dels)


class _Batch:
    """Events of one evaluation, with per-note caches."""

    def __init__(self, notes: list[Note]) -> None:
        self.notes = notes
        self.now = _now_text()
        # (note index * 8 + order of the detect kind, channel, fence, JSON text)
        self.items: list[tuple[int, str, Fence, str]] = []
        self.obj_tails: dict[int, str] = {}  # OBJECTS output with fields, by note
        self._keys: dict[str, str] = {}
        self._tails: dict[tuple[int, str, int, bool, bool], str] = {}

    def key_json(self, key: str) -> str:
        text = self._keys.get(key)
        if text is None:
            text = self._keys[key] = _escape(key)
        return text

    def tail(self, i: int, q: Query) -> str:
        """``"id":...,"object":...,"fields":{...}`` of note ``i`` for query ``q``."""
        distance = q.distance and q.cmd == "nearby" and q.roam is None
        ck = (i, q.output, q.precision, q.nofields, distance)
        text = self._tails.get(ck)
        if text is None:
            note = self.notes[i]
            text = self._tails[ck] = _tail(q, note[2], note[4], note[5], distance)
        return text

    def add(self, i: int, kind: str, f: Fence, text: str) -> None:
        self.items.append((i * 8 + ORDER.get(kind, 0), f.name, f, text))


class FenceEngine:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.channels: dict[str, Fence] = {}
        self.streams: dict[int, Fence] = {}
        self.by_key: dict[str, list[Fence]] = {}
        self._plans: dict[str, _Plan | None] = {}
        self._roams: list[Fence] = []
        self._born: list[Fence] = []
        # channels deleted by a command during the current batch: (fence, notes,
        # how many notes came before the delete)
        self._retired: list[tuple[Fence, list[Note], int]] = []
        self.events_sent = 0
        self._sub_sig: Any = None
        self._sub_cache: dict[str, list[tuple[ClientConn, str]]] = {}

    # -- registry ----------------------------------------------------------------

    def _index(self) -> None:
        by_key: dict[str, list[Fence]] = {}
        roams = []
        for f in list(self.channels.values()) + list(self.streams.values()):
            by_key.setdefault(f.key, []).append(f)
            if f.query.roam is not None:
                by_key.setdefault(f.query.roam[0], [])
                roams.append(f)
        self.by_key = by_key
        self._roams = roams
        self._plans = {}
        watched = self.server.watched
        watched.clear()
        for key, fences in by_key.items():
            watched[key] = len(fences)

    def watching(self, key: str) -> bool:
        return key in self.server.watched

    def key_has_channels(self, key: str) -> bool:
        return any(f.key == key for f in self.channels.values())

    def set_channel(
        self,
        name: str,
        q: Query,
        args: list[str],
        meta: dict[str, str],
        expires_at: float | None,
        area_json: str | None = None,
        notes: list[Note] | None = None,
    ) -> bool:
        """Create or replace channel ``name``; True when it is new.

        ``notes`` is the batch the creating command runs in: the channel sees only
        the notes written after it (and a replaced channel only those before).
        """
        fence = Fence(name, q, args, fence_area(q), None, meta, expires_at, area_json)
        old = self.channels.get(name)
        if notes is not None:
            fence.born_in, fence.born_at = notes, len(notes)
            self._born.append(fence)
            if old is not None:
                self._retired.append((old, notes, len(notes)))
        self.channels[name] = fence
        self._index()
        return old is None

    def del_channel(self, name: str, notes: list[Note] | None = None) -> bool:
        old = self.channels.pop(name, None)
        if old is None:
            return False
        if notes is not None:
            self._retired.append((old, notes, len(notes)))
        self._index()
        return True

    def start_stream(self, conn: ClientConn, query: Query) -> None:
        fence = Fence("", query, list(query.args), fence_area(query), conn)
        conn.state.fence = fence
        self.streams[conn.state.id] = fence
        self._index()

    def forget(self, conn: ClientConn) -> None:
        if self.streams.pop(conn.state.id, None) is not None:
            self._index()

    # -- log integration ---------------------------------------------------------

    def channel_record(self, name: str) -> list[Any]:
        f = self.channels[name]
        rec: list[Any] = ["setchan", name, f.args, f.meta, f.expires_at]
        if f.area_json is not None:
            rec.append(f.area_json)
        return rec

    def apply_record(self, rec: list[Any]) -> None:
        """Replay a channel definition from the log."""
        from geofleetd.commands.fences import parse_fence_args

        if rec[0] == "setchan":
            name, args, meta, expires_at = rec[1], list(rec[2]), rec[3], rec[4]
            area_json = rec[5] if len(rec) > 5 else None
            try:
                q = parse_fence_args(self.server, args, area_json)
            except GeofleetError as exc:  # keep loading: one bad channel is lost
                log.error(kv("channel_not_restored", name=name, cause=exc.message))
                self.channels.pop(name, None)
                self._index()
                return
            self.set_channel(name, q, args, dict(meta or {}), expires_at, area_json)
        elif rec[0] == "delchan":
            self.del_channel(rec[1])

    def state_records(self) -> list[list[Any]]:
        return [self.channel_record(name) for name in sorted(self.channels)]

    def undo(self, entry: tuple[Any, ...]) -> None:
        if entry[0] != "chan":
            return
        _, name, old = entry
        if old is None:
            self.channels.pop(name, None)
        else:
            self.channels[name] = old
        self._retired = [r for r in self._retired if r[0] is not old]
        self._index()

    def commit(self) -> None:
        return None

    def rebuild_membership(self) -> None:
        """Positions are the membership: nothing to rebuild beyond the index."""
        self._index()

    def tick(self, now: float) -> None:
        expired = [
            n
            for n, f in self.channels.items()
            if f.expires_at is not None and f.expires_at <= now
        ]
        if not expired:
            return
        from geofleetd.commands.base import Ctx
        from geofleetd.server.connection import ClientState

        ctx = Ctx(self.server.db, self.server, ClientState(0, "expiry"), now)
        for name in expired:
            ctx.db.note(("chan", name, self.channels[name]))
            self.del_channel(name)
            ctx.changes.append(["delchan", name])
            log.info(kv("channel_expired", name=name))
        self.server.commit_internal(ctx)

    def stats(self) -> dict[str, Any]:
        return {
            "num_channels": len(self.channels),
            "num_live_fences": len(self.streams),
            "fence_events_sent": self.events_sent,
        }

    # -- evaluation --------------------------------------------------------------

    def _plan(self, key: str) -> _Plan | None:
        if key in self._plans:
            return self._plans[key]
        fences = self.by_key.get(key) or []
        spatial = [f for f in fences if f.area is not None and not f.always]
        spatial.sort(key=lambda f: f.name)  # events of one update go out by name
        full = [f for f in fences if f.area is not None and f.always]
        plan: _Plan | None = None
        if spatial or full:
            n = len(spatial)
            kind = np.full(n, _KIND_OTHER, dtype=np.int8)
            p = np.full((4, n), _NAN)
            for k, f in enumerate(spatial):
                a = f.area
                if isinstance(a, areas.Circle):
                    kind[k] = _KIND_CIRCLE
                    p[0, k], p[1, k], p[2, k] = a.lat, a.lon, a.meters
                elif isinstance(a, areas.Bounds):
                    kind[k] = _KIND_BOUNDS
                    p[:, k] = (a.minlat, a.minlon, a.maxlat, a.maxlon)
            boxes = np.array([f.area.bbox for f in spatial], dtype=np.float64).reshape(
                -1, 4
            )
            tree = shapely.STRtree(shapely.box(*boxes.T)) if spatial else None
            grid = _BoxGrid(boxes)
            nkinds = np.array(
                [[len(t) if f.fast else 1 for t in f.set_kinds] for f in spatial],
                dtype=np.int8,
            ).reshape(-1, 4)
            cross = np.array(
                [
                    f.query.detect is not None and "cross" in f.query.detect
                    for f in spatial
                ],
                dtype=np.bool_,
            )
            grid.cross = np.flatnonzero(cross).tolist()
            fast = np.array([f.fast for f in spatial], dtype=np.bool_)
            plan = _Plan(
                spatial,
                tree,
                grid,
                nkinds,
                fast,
                kind,
                p[0],
                p[1],
                p[2],
                p[3],
                cross,
                full,
            )
            plan.lists = (kind.tolist(), p[0].tolist(), p[1].tolist(), p[2].tolist())
        self._plans[key] = plan
        return plan

    def evaluate(self, ctx: Ctx) -> None:
        notes = ctx.notes
        if not notes:
            return
        batch = _Batch(notes)
        try:
            keys: dict[str, list[int]] = {}
            if len({note[1] for note in notes}) == 1:
                keys[notes[0][1]] = list(range(len(notes)))
            else:
                for i, note in enumerate(notes):
                    idxs = keys.get(note[1])
                    if idxs is None:
                        keys[note[1]] = [i]
                    else:
                        idxs.append(i)
            for key, idxs in keys.items():
                plan = self._plan(key)
                if plan is None:
                    continue
                if len(idxs) <= SMALL_BATCH:
                    self._eval_small(plan, idxs, batch)
                    continue
                cols = _Cols(notes, idxs)
                if plan.spatial:
                    self._eval_spatial(plan, cols, batch)
                for f in plan.full:
                    self._eval_full(f, cols, batch)
            if self._roams:
                self._eval_roams(batch)
            for f, seen, upto in self._retired:
                if seen is notes:
                    self._eval_retired(f, upto, batch)
        finally:
            self._retired.clear()
            for f in self._born:
                f.born_in = None
            self._born.clear()
        if batch.items:
            self._dispatch(batch.items)

    def _eval_spatial(self, plan: _Plan, c: _Cols, batch: _Batch) -> None:
        found = self._candidates(plan, c, batch)
        if found is None:
            return
        jj, kk = found
        old_in = self._member(plan, kk, c.olat[jj], c.olon[jj])
        new_in = self._member(plan, kk, c.nlat[jj], c.nlon[jj])
        code = old_in * 2 + new_in
        want = (old_in | new_in | plan.cross[kk]) & (plan.nkinds[kk, code] > 0)
        if c.special:
            want |= c.odd[jj] & np.isin(jj, list(c.special))
        fast = want & plan.fast[kk] & ~c.odd[jj]
        if self._born:
            fast &= np.array([f.born_in is None for f in plan.spatial])[kk]
        notes, idxs, fences = batch.notes, c.idxs, plan.spatial
        add = batch.items.append
        tails = batch.obj_tails
        now = batch.now
        for j, k, co in zip(
            jj[fast].tolist(), kk[fast].tolist(), code[fast].tolist(), strict=True
        ):
            f = fences[k]
            i = idxs[j]
            note = notes[i]
            oid = note[2]
            renew, kinds = f.set_plan[co]
            if renew:
                group = f.groups[oid] = _new_group()
            else:
                group = f.groups.get(oid) or ""
                if not group:
                    group = f.groups[oid] = _new_group()
            tail = tails.get(i)
            if tail is None:
                tail = tails[i] = _object_tail(note)
            for kind, order in kinds:
                add(
                    (
                        i * 8 + order,
                        f.name,
                        f,
                        f'{{"command":"set","group":"{group}","detect":"{kind}'
                        f'{f.mid}{now}",{tail}}}',
                    )
                )
        slow = want & ~fast
        for j, k, co in zip(
            jj[slow].tolist(), kk[slow].tolist(), code[slow].tolist(), strict=True
        ):
            i = idxs[j]
            if j in c.special:
                self._eval_scalar(fences[k], i, batch)
            else:
                self._detect(fences[k], i, notes[i], co > 1, co & 1 == 1, batch)

    @staticmethod
    def _candidates(
        plan: _Plan, c: _Cols, batch: _Batch
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]] | None:
        """(note position, fence position) pairs whose boxes meet, each pair once.

        As in Tile38, a fence is a candidate when its box holds the old or the new
        position; the box spanning both is searched only for DETECT cross fences.
        """
        tree = plan.tree
        found = [plan.grid.query(c.olat, c.olon), plan.grid.query(c.nlat, c.nlon)]
        if plan.cross.any():
            sel = np.flatnonzero(~np.isnan(c.olat) & ~np.isnan(c.nlat))
            if len(sel):
                p = tree.query(
                    shapely.box(
                        np.minimum(c.olon[sel], c.nlon[sel]),
                        np.minimum(c.olat[sel], c.nlat[sel]),
                        np.maximum(c.olon[sel], c.nlon[sel]),
                        np.maximum(c.olat[sel], c.nlat[sel]),
                    )
                )
                keep = plan.cross[p[1]]
                found.append((sel[p[0][keep]], p[1][keep]))
        if c.geo:
            geo = [(j, _note_box(batch.notes[c.idxs[j]])) for j in c.geo]
            rows = [(j, b) for j, b in geo if b is not None]
            if rows:
                b = np.array([r[1] for r in rows], dtype=np.float64)
                p = tree.query(shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3]))
                sel = np.array([r[0] for r in rows], dtype=np.intp)
                found.append((sel[p[0]], p[1]))
        if not found:
            return None
        nf = len(plan.spatial)
        keys = np.unique(np.concatenate([j * nf + k for j, k in found]))
        if not len(keys):
            return None
        return keys // nf, keys % nf

    @staticmethod
    def _member(plan: _Plan, kk: NDArray[np.intp], lats: F64, lons: F64) -> Bools:
        """Whether each point (lats[n], lons[n]) lies in fence kk[n] (NaN: no)."""
        out = np.zeros(len(kk), dtype=np.bool_)
        kind = plan.kind[kk]
        with np.errstate(invalid="ignore"):
            m = kind == _KIND_CIRCLE
            if m.any():
                k = kk[m]
                out[m] = _circle_pairs(
                    plan.p0[k], plan.p1[k], plan.p2[k], lats[m], lons[m]
                )
            m = kind == _KIND_BOUNDS
            if m.any():
                k = kk[m]
                la, lo = lats[m], lons[m]
                out[m] = (
                    (la >= plan.p0[k])
                    & (la <= plan.p2[k])
                    & (lo >= plan.p1[k])
                    & (lo <= plan.p3[k])
                )
        m = (kind == _KIND_OTHER) & ~np.isnan(lats)
        if m.any():
            pos = np.flatnonzero(m)
            order = pos[np.argsort(kk[pos], kind="stable")]
            ks = kk[order]
            starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
            ends = np.r_[starts[1:], len(order)]
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
                sub = order[s:e]
                area = plan.spatial[int(ks[s])].area
                out[sub] = area.contains_points(lats[sub], lons[sub])
        return out

    def _eval_full(self, f: Fence, c: _Cols, batch: _Batch) -> None:
        area = f.area
        with np.errstate(invalid="ignore"):
            old_in = _contains(area, c.olat, c.olon)
            new_in = _contains(area, c.nlat, c.nlon)
        special = set(c.geo) if c.geo else ()
        notes, idxs = batch.notes, c.idxs
        for j, (oi, ni) in enumerate(
            zip(old_in.tolist(), new_in.tolist(), strict=True)
        ):
            i = idxs[j]
            if j in special:
                self._eval_scalar(f, i, batch)
            else:
                self._detect(f, i, notes[i], oi, ni, batch)

    def _eval_small(self, plan: _Plan, idxs: list[int], batch: _Batch) -> None:
        """A few notes (a paced stream): plain Python, no array set-up cost."""
        notes = batch.notes
        spatial = plan.spatial
        for i in idxs:
            note = notes[i]
            cmd, old, new = note[0], note[3], note[4]
            if spatial and cmd != "drop":
                if (
                    cmd == "set"
                    and new is not None
                    and new[0] == "p"
                    and (old is None or old[0] == "p")
                ):
                    self._small_set(plan, i, note, batch)
                elif (old is None or old[0] == "p") and (new is None or new[0] == "p"):
                    if cmd == "del":
                        for k in plan.cells(old):
                            self._detect(spatial[k], i, note, False, False, batch)
                    elif cmd in MOVES:
                        was = old if cmd == "set" else None
                        for k in plan.cells(was, new):
                            f = spatial[k]
                            self._pair(
                                f, i, note, _rec_in(f.area, was), _rec_in(f.area, new),
                                batch,
                            )  # fmt: skip
                else:
                    box = _note_box(note)
                    if box is not None:
                        found = plan.tree.query(shapely.box(*box))
                        for k in sorted(found.tolist()):
                            self._eval_scalar(spatial[k], i, batch)
            for f in plan.full:
                if (old is None or old[0] != "g") and (new is None or new[0] != "g"):
                    was = old if cmd == "set" else None
                    self._detect(
                        f, i, note, _rec_in(f.area, was), _rec_in(f.area, new), batch
                    )
                else:
                    self._eval_scalar(f, i, batch)

    def _small_set(self, plan: _Plan, i: int, note: Note, batch: _Batch) -> None:
        """A SET of a point: the candidates and their membership, inline."""
        grid = plan.grid
        old, new = note[3], note[4]
        nlat, nlon = new[1], new[2]
        at_new = grid.lookup(nlat, nlon)
        if old is not None:
            olat, olon = old[1], old[2]
            at_old = grid.lookup(olat, olon)
            ks = at_old + [k for k in at_new if k not in at_old] if at_old else at_new
            if grid.cross:
                box = (
                    min(olon, nlon),
                    min(olat, nlat),
                    max(olon, nlon),
                    max(olat, nlat),
                )
                ks = ks + [
                    k
                    for k in grid.cross
                    if k not in ks and _boxes_meet(grid.box_list[k], box)
                ]
        else:
            at_old = ks = at_new
        kinds, p0, p1, p2 = plan.lists
        spatial = plan.spatial
        for k in ks:
            kind = kinds[k]
            if kind == _KIND_CIRCLE:
                c0, c1, c2 = p0[k], p1[k], p2[k]
                oi = (
                    old is not None
                    and k in at_old
                    and haversine_m(c0, c1, olat, olon) <= c2
                )
                ni = k in at_new and haversine_m(c0, c1, nlat, nlon) <= c2
            elif kind == _KIND_BOUNDS:  # the box is the area
                oi = old is not None and k in at_old
                ni = k in at_new
            else:
                area = spatial[k].area
                oi = old is not None and k in at_old and _point_in(area, olat, olon)
                ni = k in at_new and _point_in(area, nlat, nlon)
            f = spatial[k]
            if f.fast and not f.set_plan[oi * 2 + ni][1]:
                continue  # nothing to send (most box hits outside a circle)
            self._pair(f, i, note, oi, ni, batch)

    def _pair(
        self, f: Fence, i: int, note: Note, old_in: bool, new_in: bool, batch: _Batch
    ) -> None:
        """A candidate (fence, note): the table path when it applies."""
        if not f.fast or note[0] != "set" or f.born_in is not None:
            self._detect(f, i, note, old_in, new_in, batch)
            return
        renew, kinds = f.set_plan[old_in * 2 + new_in]
        if not kinds:
            return
        oid = note[2]
        if renew:
            group = f.groups[oid] = _new_group()
        else:
            group = f.groups.get(oid) or ""
            if not group:
                group = f.groups[oid] = _new_group()
        tail = batch.obj_tails.get(i)
        if tail is None:
            tail = batch.obj_tails[i] = _object_tail(note)
        for kind, order in kinds:
            batch.items.append(
                (
                    i * 8 + order,
                    f.name,
                    f,
                    f'{{"command":"set","group":"{group}","detect":"{kind}'
                    f'{f.mid}{batch.now}",{tail}}}',
                )
            )

    def _eval_scalar(self, f: Fence, i: int, batch: _Batch) -> None:
        """One (fence, note) pair, membership computed here (shapes, retired)."""
        note = batch.notes[i]
        cmd, old, new = note[0], note[3], note[4]
        if cmd == "del":
            if not f.always and not _boxes_meet(f.area.bbox, _note_box(note)):
                return
            self._detect(f, i, note, False, False, batch)
            return
        old_in = cmd != "fset" and old is not None and old[0] != "s" and _inside(f, old)
        new_in = new is not None and new[0] != "s" and _inside(f, new)
        self._detect(f, i, note, old_in, new_in, batch)

    def _eval_retired(self, f: Fence, upto: int, batch: _Batch) -> None:
        for i in range(upto):
            note = batch.notes[i]
            if note[1] != f.key:
                continue
            if f.query.roam is not None:
                self._roam(f, i, note, None, batch)
                continue
            if not f.always and note[0] != "del":
                box = _note_box(note)
                if box is None or not _boxes_meet(f.area.bbox, box):
                    continue
            self._eval_scalar(f, i, batch)

    def _detect(
        self, f: Fence, i: int, note: Note, old_in: bool, new_in: bool, batch: _Batch
    ) -> None:
        """The events of note ``i`` for fence ``f``, given geometric membership."""
        if f.born_in is batch.notes and i < f.born_at:
            return
        cmd, key, oid, old, new, fields = note[:6]
        q = f.query
        if q.commands is not None and cmd not in q.commands:
            return
        if cmd == "drop":
            f.groups.clear()
            batch.add(
                i,
                "drop",
                f,
                f'{{"command":"drop"{f.hook},"key":{batch.key_json(key)},'
                f'"time":"{batch.now}"}}',
            )
            return
        if q.matches and not any(glob_match(p, oid) for p in q.matches):
            return
        if cmd == "del":
            if old is None or old[0] == "s":
                return
            f.groups.pop(oid, None)
            batch.add(
                i,
                "del",
                f,
                f'{{"command":"del"{f.hook},"key":{batch.key_json(key)},'
                f'"id":{_escape(oid)},"time":"{batch.now}"}}',
            )
            return
        if cmd not in MOVES or new is None or new[0] == "s":
            return
        if cmd == "fset" and q.nofields:
            return
        if q.output == "COUNT":
            return
        nocross = False
        if q.preds:
            if not _passes(q, new, fields):
                return
            if old_in and cmd == "set":
                old_fields = note[6] if len(note) > 6 else fields
                if not _passes(q, old, old_fields):
                    old_in, nocross = False, True
        had_old = cmd == "set" and old is not None and old[0] != "s"
        crossed = False
        detect = q.detect
        if (
            had_old
            and not old_in
            and not new_in
            and not nocross
            and (detect is None or "cross" in detect)
        ):
            crossed = _crosses(f, old, new)
        kinds = expand(classify(old_in, new_in, crossed, had_old, cmd), detect)
        if not kinds:
            return
        groups = f.groups
        if kinds[0] in ("enter", "cross"):
            group = groups[oid] = _new_group()
        else:
            group = groups.get(oid) or ""
            if not group:
                group = groups[oid] = _new_group()
        head = f'{{"command":"{cmd}","group":"{group}","detect":"'
        rest = (
            f'"{f.hook},"key":{batch.key_json(key)},"time":"{batch.now}",'
            f"{batch.tail(i, q)}}}"
        )
        for kind in kinds:
            batch.add(i, kind, f, head + kind + rest)

    # -- roaming -------------------------------------------------------------------

    def _eval_roams(self, batch: _Batch) -> None:
        notes = batch.notes
        moving: dict[str, list[Fence]] = {}
        reach: dict[str, float] = {}
        for f in self._roams:
            moving.setdefault(f.key, []).append(f)
            assert f.query.roam is not None
            target, meters = f.query.roam[0], f.query.roam[2]
            reach[target] = max(reach.get(target, 0.0), meters)
        if not any(note[1] in moving for note in notes):
            return
        # positions of the target keys' objects touched in this batch, replayed in
        # order; everything else is read from the store (the end-of-batch state)
        overlays: dict[str, _Overlay] = {}
        for note in notes:
            key, oid = note[1], note[2]
            if key in reach and oid is not None:
                ov = overlays.get(key)
                if ov is None:
                    ov = overlays[key] = _Overlay(reach[key])
                if oid not in ov.recs:
                    ov.put(oid, note[3])
        for i, note in enumerate(notes):
            key = note[1]
            for f in moving.get(key, ()):
                assert f.query.roam is not None
                self._roam(f, i, note, overlays.get(f.query.roam[0]), batch)
            ov = overlays.get(key)
            if ov is not None and note[2] is not None:
                ov.put(note[2], note[4])

    def _roam(
        self, f: Fence, i: int, note: Note, ov: _Overlay | None, batch: _Batch
    ) -> None:
        cmd, key, oid, old, new, fields = note[:6]
        if cmd in ("drop", "del"):
            self._detect(f, i, note, False, False, batch)
            return
        if f.born_in is batch.notes and i < f.born_at:
            return
        q = f.query
        assert q.roam is not None
        if q.commands is not None and cmd not in q.commands:
            return
        if q.matches and not any(glob_match(p, oid) for p in q.matches):
            return
        if cmd not in MOVES or new is None or new[0] == "s":
            return
        if (cmd == "fset" and q.nofields) or q.output == "COUNT":
            return
        if q.preds and not _passes(q, new, fields):
            return
        if q.detect is not None:  # DETECT cannot name "roam": nothing passes
            return
        rkey, pattern, meters = q.roam
        nearby: list[tuple[float, str, Rec]] = []
        faraway: list[tuple[float, str, Rec]] = []
        if cmd == "set":
            col = self.server.db.cols.get(rkey)
            lat, lon = _center(new)
            now_near = self._near(col, ov, lat, lon, meters, pattern, oid)
            was_near: dict[str, Rec] = {}
            if old is not None and old[0] != "s":
                olat, olon = _center(old)
                was_near = self._near(col, ov, olat, olon, meters, pattern, oid)
            for other, rec in now_near.items():
                if q.nodwell and other in was_near:
                    continue
                nearby.append((haversine_m(lat, lon, *_center(rec)), other, rec))
            for other, rec in was_near.items():
                if other not in now_near:
                    faraway.append((haversine_m(lat, lon, *_center(rec)), other, rec))
            if not nearby and not faraway:
                return
        group = f.groups.get(oid) or ""
        if not group:
            group = f.groups[oid] = _new_group()
        base = (
            f'{{"command":"{cmd}","group":"{group}","detect":"roam"{f.hook},'
            f'"key":{batch.key_json(key)},"time":"{batch.now}",{batch.tail(i, q)}'
        )
        if cmd == "fset":
            batch.add(i, "roam", f, base + "}")
            return
        rkey_json = batch.key_json(rkey)
        for label, found in (("nearby", nearby), ("faraway", faraway)):
            found.sort(key=lambda m: (m[0], m[1]))
            for meters_to, other, rec in found:
                batch.add(
                    i,
                    "roam",
                    f,
                    f'{base},"{label}":{{"key":{rkey_json},"id":{_escape(other)},'
                    f'"object":{_obj_json(rec)},"meters":{_meters(meters_to)}}}}}',
                )

    @staticmethod
    def _near(
        col: Collection | None,
        ov: _Overlay | None,
        lat: float,
        lon: float,
        meters: float,
        pattern: str,
        self_id: str,
    ) -> dict[str, Rec]:
        """Point objects within ``meters`` of (lat, lon) as the batch stood."""
        found: dict[str, Rec] = {}
        if col is not None:
            for other, _d in col.points.nearest(lat, lon, meters):
                if other == self_id or (ov is not None and other in ov.recs):
                    continue
                if glob_match(pattern, other):
                    rec = col.obj_record(other)
                    if rec is not None:
                        found[other] = rec
        if ov is not None:
            for other, moved in ov.around(lat, lon, meters):
                if (
                    other != self_id
                    and glob_match(pattern, other)
                    and haversine_m(lat, lon, moved[1], moved[2]) <= meters
                ):
                    found[other] = moved
        return found

    # -- delivery ------------------------------------------------------------------

    def _dispatch(self, items: list[tuple[int, str, Fence, str]]) -> None:
        items.sort(key=_event_order)
        self.events_sent += len(items)
        out: dict[int, tuple[ClientConn, list[str]]] = {}
        routes: dict[str, list[tuple[list[str], str]]] = {}
        subscribers = self._subscriber_table()
        for _o, name, f, text in items:
            size = len(text) if text.isascii() else len(text.encode())
            frame = f"${size}\r\n{text}\r\n"
            conn = f.conn
            if conn is not None:
                entry = out.get(id(conn))
                if entry is None:
                    entry = out[id(conn)] = (conn, [])
                entry[1].append(frame)
                continue
            route = routes.get(name)
            if route is None:
                route = routes[name] = []
                subs = subscribers.get(name)
                if subs is None:
                    subs = subscribers[name] = self._subscribers(name)
                for sub, head in subs:
                    entry = out.get(id(sub))
                    if entry is None:
                        entry = out[id(sub)] = (sub, [])
                    route.append((entry[1], head))
            for parts, head in route:
                parts.append(head)
                parts.append(frame)
        limit = self.server.config.subscriber_queue_bytes
        piece = max(4096, min(1 << 20, limit // 4))
        for conn, parts in out.values():
            data = "".join(parts).encode()
            for start in range(0, len(data), piece):
                if not conn.push(data[start : start + piece]):
                    break

    def _subscriber_table(self) -> dict[str, list[tuple[ClientConn, str]]]:
        """Channel -> subscribers, kept across batches while subscriptions stay."""
        hub = self.server.hub
        sig = (
            tuple((p, tuple(subs)) for p, subs in hub.patterns.items()),
            tuple((c, tuple(subs)) for c, subs in hub.channels.items()),
        )
        if sig != self._sub_sig:
            self._sub_sig = sig
            self._sub_cache = {}
        return self._sub_cache

    def _subscribers(self, channel: str) -> list[tuple[ClientConn, str]]:
        """Who receives a message on ``channel``, with the RESP frame's head."""
        hub = self.server.hub
        name = f"${len(channel.encode())}\r\n{channel}\r\n"
        subs: list[tuple[ClientConn, str]] = []
        direct = hub.channels.get(channel)
        if direct:
            head = "*3\r\n$7\r\nmessage\r\n" + name
            subs.extend((conn, head) for conn in direct.values())
        for pattern, psubs in hub.patterns.items():
            if psubs and glob_match(pattern, channel):
                pat = f"${len(pattern.encode())}\r\n{pattern}\r\n"
                head = "*4\r\n$8\r\npmessage\r\n" + pat + name
                subs.extend((conn, head) for conn in psubs.values())
        return subs


class _Overlay:
    """Positions of one key's objects touched by the batch, as it is replayed."""

    def __init__(self, meters: float) -> None:
        self.cell = max(meters / 111_000.0, 1e-4)  # degrees, >= the reach in latitude
        self.recs: dict[str, Rec | None] = {}
        self._where: dict[str, tuple[int, int]] = {}
        self._grid: dict[tuple[int, int], set[str]] = {}

    def put(self, oid: str, rec: Rec | None) -> None:
        cell = self._where.pop(oid, None)
        if cell is not None:
            self._grid[cell].discard(oid)
        if rec is not None and rec[0] == "p":
            cell = (math.floor(rec[1] / self.cell), math.floor(rec[2] / self.cell))
            self._grid.setdefault(cell, set()).add(oid)
            self._where[oid] = cell
            self.recs[oid] = rec
        else:
            self.recs[oid] = None

    def around(self, lat: float, lon: float, meters: float) -> list[tuple[str, Rec]]:
        minlat, minlon, maxlat, maxlon = bbox_around(lat, lon, meters)
        c = self.cell
        x0, x1 = math.floor(minlat / c), math.floor(maxlat / c)
        y0, y1 = math.floor(minlon / c), math.floor(maxlon / c)
        found: list[tuple[str, Rec]] = []
        if (x1 - x0 + 1) * (y1 - y0 + 1) > len(self._where):
            for oid in self._where:
                rec = self.recs[oid]
                assert rec is not None
                found.append((oid, rec))
            return found
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                for oid in self._grid.get((x, y), ()):
                    rec = self.recs[oid]
                    assert rec is not None
                    found.append((oid, rec))
        return found


# -- helpers -----------------------------------------------------------------------


_group_ids = itertools.count(int.from_bytes(os.urandom(3), "big"))
_group_host = os.urandom(5).hex()


def _event_order(item: tuple[int, str, Fence, str]) -> tuple[int, str]:
    return item[0], item[1]


def _new_group() -> str:
    """24 hex digits like Tile38's BSON object ids: time, random, counter."""
    stamp = int(time.time()) & 0xFFFFFFFF
    return f"{stamp:08x}{_group_host}{next(_group_ids) & 0xFFFFFF:06x}"


def _object_tail(note: Note) -> str:
    """``"id":...,"object":...[,"fields":...]`` of a SET note (OBJECTS output)."""
    rec, fields = note[4], note[5]
    obj = None
    if rec[0] == "p" and len(rec) == 3:
        a, b = repr(rec[2]), repr(rec[1])
        if not ("e" in a or "e" in b or a.endswith(".0") or b.endswith(".0")):
            obj = f'{{"type":"Point","coordinates":[{a},{b}]}}'
    if obj is None:
        obj = _obj_json(rec)
    tail = f'"id":{_escape(note[2])},"object":{obj}'
    if fields:
        tail += ',"fields":' + jsonout.dumps(dict(sorted(fields.items())))
    return tail


def _haversine_pairs(clat: F64, clon: F64, lats: F64, lons: F64) -> F64:
    """``haversine_m(clat[n], clon[n], lats[n], lons[n])`` for every n, by numpy."""
    phi_a = lats * math.pi / 180
    phi_b = clat * math.pi / 180
    half_dphi = np.sin((phi_a - phi_b) / 2)
    half_dlam = np.sin((lons * math.pi / 180 - clon * math.pi / 180) / 2)
    h = half_dphi * half_dphi + half_dlam * half_dlam * np.cos(phi_a) * np.cos(phi_b)
    return cast(F64, EARTH_RADIUS_M * (2 * np.arcsin(np.sqrt(np.minimum(h, 1.0)))))


def _contains(area: Any, lats: F64, lons: F64) -> Bools:
    ok = ~np.isnan(lats)
    out = np.zeros(len(lats), dtype=np.bool_)
    if not ok.any():
        return out
    if isinstance(area, areas.Circle):
        n = int(ok.sum())
        out[ok] = _circle_pairs(
            np.full(n, area.lat), np.full(n, area.lon), np.full(n, area.meters),
            lats[ok], lons[ok],
        )  # fmt: skip
        return out
    if ok.all():
        return np.asarray(area.contains_points(lats, lons), dtype=np.bool_)
    out[ok] = area.contains_points(lats[ok], lons[ok])
    return out


def _circle_pairs(clat: F64, clon: F64, meters: F64, lats: F64, lons: F64) -> Bools:
    """Point n within meters[n] of (clat[n], clon[n]), exactly as ``_point_in``.

    numpy's sine may differ from the C library's in the last bit, so points within
    a micrometre of the rim are settled by the scalar formula: a point's side of a
    fence never depends on how many updates shared its batch.
    """
    with np.errstate(invalid="ignore"):
        d = _haversine_pairs(clat, clon, lats, lons)
        out = d <= meters
        rim = np.flatnonzero(np.abs(d - meters) <= 1e-6)
    for n in rim.tolist():
        out[n] = haversine_m(clat[n], clon[n], lats[n], lons[n]) <= meters[n]
    return out


def _point_in(area: Any, lat: float, lon: float) -> bool:
    """One point's membership (boundary inside), the reference for every path."""
    if isinstance(area, areas.Circle):
        return haversine_m(area.lat, area.lon, lat, lon) <= area.meters
    if isinstance(area, areas.Bounds):
        return bool(
            area.minlat <= lat <= area.maxlat and area.minlon <= lon <= area.maxlon
        )
    return bool(area.contains_points(np.array([lat]), np.array([lon]))[0])


def _rec_in(area: Any, rec: Rec | None) -> bool:
    return rec is not None and rec[0] == "p" and _point_in(area, rec[1], rec[2])


def _center(rec: Rec) -> tuple[float, float]:
    if rec[0] == "p":
        return float(rec[1]), float(rec[2])
    return parse_geojson_cached(rec[1]).center


def _obj_json(rec: Rec) -> str:
    if rec[0] == "p":
        return point_json(rec[1], rec[2], rec[3] if len(rec) > 3 else None)
    return str(rec[1])


def _meters(d: float) -> str:
    """Tile38 truncates roam distances to whole millimetres."""
    return jsonout.num(math.floor(d * 1000) / 1000)


def _rec_box(rec: Rec | None) -> tuple[float, float, float, float] | None:
    if rec is None or rec[0] == "s":
        return None
    if rec[0] == "p":
        return (rec[2], rec[1], rec[2], rec[1])
    return parse_geojson_cached(rec[1]).bbox


def _note_box(note: Note) -> tuple[float, float, float, float] | None:
    """(minlon, minlat, maxlon, maxlat) around the note's old and new objects."""
    boxes = [b for b in (_rec_box(note[3]), _rec_box(note[4])) if b is not None]
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _boxes_meet(a: tuple[float, ...], b: tuple[float, ...] | None) -> bool:
    return (
        b is not None
        and a[0] <= b[2]
        and b[0] <= a[2]
        and a[1] <= b[3]
        and b[1] <= a[3]
    )


def _inside(f: Fence, rec: Rec) -> bool:
    area = f.area
    if rec[0] == "p":
        return _point_in(area, float(rec[1]), float(rec[2]))
    g = parse_geojson_cached(rec[1]).geom
    if f.query.cmd == "within":
        return bool(area.contains_geom(g))
    return bool(area.intersects_geom(g))


def _crosses(f: Fence, old: Rec, new: Rec) -> bool:
    """The straight path between the two centers meets the fence's area."""
    (olat, olon), (nlat, nlon) = _center(old), _center(new)
    if (olat, olon) == (nlat, nlon):
        return False
    line = shapely.LineString([(olon, olat), (nlon, nlat)])
    return bool(f.area.intersects_geom(line))


def _passes(q: Query, rec: Rec | None, fields: dict[str, Any] | None) -> bool:
    """WHERE/WHEREIN of ``q`` on an object's fields (and Feature properties)."""
    props = None
    if rec is not None and rec[0] == "g":
        props = parse_geojson_cached(rec[1]).properties

    get = fields_getter(fields, props)
    return all(p(get) for p in q.preds)


def _tail(
    q: Query, oid: str, rec: Rec, fields: dict[str, Any] | None, distance: bool
) -> str:
    """The object part of an event, as the query's output asks."""
    parts = ['"id":', _escape(oid)]
    out = q.output
    if out == "IDS":
        return "".join(parts)
    if out == "POINTS":
        lat, lon = _center(rec)
        parts.append(f',"point":{{"lat":{jsonout.num(lat)},"lon":{jsonout.num(lon)}}}')
    elif out == "HASHES":
        lat, lon = _center(rec)
        parts.append(',"hash":' + _escape(geohash.encode(lat, lon, q.precision)))
    elif out == "BOUNDS":
        b = _rec_box(rec)
        assert b is not None
        parts.append(
            f',"bounds":{{"sw":{{"lat":{jsonout.num(b[1])},"lon":{jsonout.num(b[0])}}},'
            f'"ne":{{"lat":{jsonout.num(b[3])},"lon":{jsonout.num(b[2])}}}}}'
        )
    else:
        parts.append(',"object":' + _obj_json(rec))
    if fields and not q.nofields:
        parts.append(',"fields":' + jsonout.dumps(dict(sorted(fields.items()))))
    if distance:
        lat, lon = _center(rec)
        parts.append(',"distance":' + jsonout.num(haversine_m(q.lat, q.lon, lat, lon)))
    return "".join(parts)
