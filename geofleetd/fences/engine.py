"""Fence engine: channels (SETCHAN), live fences (``... FENCE`` on a connection),
roaming fences, and the evaluation of each batch's changes against them.

Every write to a watched key leaves a *note* in the batch context:
``(command, key, id, old_record, new_record, fields)`` (records as in the log; None
when absent). After the batch commits, ``evaluate`` turns the notes into events:

- Channel fences of a key sit in a shapely STRtree of their bounding boxes. All
  notes of the batch query it in one vectorized call with the box spanning the old
  and new position, so the cost follows the updates, not updates x fences. Only
  those candidates are tested exactly (haversine for NEARBY circles, the area's own
  predicate otherwise). As in Tile38, a channel therefore reports ``outside`` only
  for updates near it; a live fence on a connection sees every update of its key.
- Detection is the pure ``detect.classify``; MATCH, WHERE/WHEREIN (on the new
  fields) and COMMANDS filter first. DEL, PDEL and expiry send ``del``; DROP and
  FLUSHDB send ``drop``.
- Roaming fences (``NEARBY key FENCE ROAM key2 pattern meters``) look up objects of
  ``key2`` within ``meters`` of the moved object: ``roam`` with ``nearby`` for each
  (once per pair with NODWELL), and ``faraway`` when a pair that was near drifts
  apart.

Events for one object reach each subscriber in the order the writes were applied.
Membership is never stored apart from positions: old positions come from the store,
so after a restart detection continues from the replayed state.

Limits: the area of ``GET key id`` is resolved when the fence is created; hooks to
external endpoints (SETHOOK) are not part of this engine.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from geofleetd.commands.search import Query, field_getter
from geofleetd.errors import GeofleetError
from geofleetd.fences.detect import classify, expand
from geofleetd.geometry import areas, geohash
from geofleetd.geometry.distance import haversine_m
from geofleetd.geometry.geojson import parse_geojson, point_json
from geofleetd.logs import kv
from geofleetd.protocol import jsonout
from geofleetd.protocol.jsonout import Raw
from geofleetd.protocol.resp import encode
from geofleetd.store.collection import glob_match

if TYPE_CHECKING:
    from geofleetd.commands.base import Ctx
    from geofleetd.server.app import Server
    from geofleetd.server.connection import ClientConn

log = logging.getLogger("geofleetd.fences")

Note = tuple[Any, ...]


@dataclass(eq=False)
class Fence:
    name: str  # channel name; "" for a live fence on a connection
    query: Query
    args: list[str]
    area: Any = None
    conn: ClientConn | None = None
    meta: dict[str, str] = field(default_factory=dict)
    expires_at: float | None = None
    groups: dict[str, str] = field(default_factory=dict)
    near: dict[str, set[str]] = field(default_factory=dict)  # roam pairs

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


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


class FenceEngine:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.channels: dict[str, Fence] = {}
        self.streams: dict[int, Fence] = {}
        self.by_key: dict[str, list[Fence]] = {}
        self._trees: dict[str, tuple[Any, list[Fence]] | None] = {}
        self.events_sent = 0

    # -- registry ----------------------------------------------------------------

    def _index(self) -> None:
        by_key: dict[str, list[Fence]] = {}
        for f in list(self.channels.values()) + list(self.streams.values()):
            by_key.setdefault(f.key, []).append(f)
            if f.query.roam is not None:
                by_key.setdefault(f.query.roam[0], [])
        self.by_key = by_key
        self._trees = {}
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
    ) -> bool:
        fence = Fence(name, q, args, fence_area(q), None, meta, expires_at)
        old = self.channels.get(name)
        self.channels[name] = fence
        self._index()
        return old is None

    def del_channel(self, name: str) -> bool:
        if self.channels.pop(name, None) is None:
            return False
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
        return ["setchan", name, f.args, f.meta, f.expires_at]

    def apply_record(self, rec: list[Any]) -> None:
        """Replay a channel definition from the log."""
        from geofleetd.commands.fences import parse_fence_args

        if rec[0] == "setchan":
            _, name, args, meta, expires_at = rec
            q = parse_fence_args(self.server, list(args))
            self.set_channel(name, q, list(args), dict(meta or {}), expires_at)
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

    def _tree(self, key: str) -> tuple[Any, list[Fence]] | None:
        if key in self._trees:
            return self._trees[key]
        static = [
            f for f in self.by_key.get(key, ()) if f.conn is None and f.area is not None
        ]
        result = None
        if static:
            boxes = shapely.box(*np.array([f.area.bbox for f in static]).T)
            result = (shapely.STRtree(boxes), static)
        self._trees[key] = result
        return result

    def evaluate(self, ctx: Ctx) -> None:
        notes = ctx.notes
        # candidate static channel fences per note, in one query per key
        cands: list[list[Fence]] = [[] for _ in notes]
        by_key: dict[str, list[int]] = {}
        for i, note in enumerate(notes):
            by_key.setdefault(note[1], []).append(i)
        for key, idxs in by_key.items():
            tree = self._tree(key)
            if tree is None:
                continue
            strtree, static = tree
            spans = [_span(notes[i]) for i in idxs]
            use = [j for j, sp in enumerate(spans) if sp is not None]
            if len(use) == len(idxs) and use:
                arr = np.array([spans[j] for j in use], dtype=np.float64)
                boxes = shapely.box(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])
                pairs = strtree.query(boxes)
                order = np.lexsort((pairs[1], pairs[0]))
                for a, b in zip(pairs[0][order], pairs[1][order], strict=True):
                    cands[idxs[use[int(a)]]].append(static[int(b)])
            else:
                for i in idxs:
                    cands[i].extend(static)
        now_text = _now_text()
        for i, note in enumerate(notes):
            fences = self.by_key.get(note[1])
            if not fences:
                continue
            todo = cands[i]
            todo_set = set(map(id, todo))
            for f in fences:
                if id(f) in todo_set:
                    continue
                if f.conn is not None or f.area is None:
                    todo.append(f)
            for f in todo:
                self._eval(f, note, now_text)

    def _eval(self, f: Fence, note: Note, now_text: str) -> None:
        cmd, key, oid, old, new, fields = note
        q = f.query
        if q.commands is not None and cmd not in q.commands:
            return
        if cmd == "drop":
            if f.key == key:
                self._emit(
                    f, {"command": "drop", "hook": f.name, "key": key, "time": now_text}
                )
                f.groups.clear()
                f.near.clear()
            return
        if f.key != key:
            return  # roam target key, handled from the moving key's side
        if q.matches and not any(glob_match(p, oid) for p in q.matches):
            return
        if cmd == "del":
            f.groups.pop(oid, None)
            self._roam_forget(f, oid)
            self._emit(
                f,
                {
                    "command": "del",
                    "hook": f.name,
                    "key": key,
                    "id": oid,
                    "time": now_text,
                },
            )
            return
        if new is None or new[0] == "s":
            return
        if q.preds:
            col = self.server.db.cols.get(key)
            if col is not None and not all(p(field_getter(col, oid)) for p in q.preds):
                return
        if q.roam is not None:
            self._eval_roam(f, note, now_text)
            return
        old_in = old is not None and old[0] != "s" and _inside(f, old)
        new_in = _inside(f, new)
        crossed = False
        if (
            not old_in
            and not new_in
            and old is not None
            and old[0] == "p"
            and (q.detect is None or "cross" in q.detect)
        ):
            crossed = _crosses(f, old, new)
        primary = classify(old_in, new_in, crossed, old is not None, cmd)
        kinds = expand(primary, q.detect)
        if not kinds:
            if primary in ("exit", "outside"):
                f.groups.pop(oid, None)
            return
        if primary in ("enter", "cross") or oid not in f.groups:
            group = f.groups[oid] = uuid.uuid4().hex[:24]
        else:
            group = f.groups[oid]
        if primary in ("exit", "outside", "cross"):
            f.groups.pop(oid, None)
        for kind in kinds:
            msg: dict[str, Any] = {
                "command": cmd,
                "group": group,
                "detect": kind,
                "hook": f.name,
                "key": key,
                "time": now_text,
                "id": oid,
            }
            _add_object(msg, q, new)
            if fields and not q.nofields:
                msg["fields"] = dict(sorted(fields.items()))
            self._emit(f, msg)

    def _eval_roam(self, f: Fence, note: Note, now_text: str) -> None:
        cmd, key, oid, _old, new, _fields = note
        assert f.query.roam is not None
        rkey, pattern, meters = f.query.roam
        lat, lon = _center(new)
        target = self.server.db.cols.get(rkey)
        found: dict[str, tuple[float, tuple[Any, ...]]] = {}
        if target is not None:
            for other, _dist in target.points.nearest(lat, lon, meters):
                if other == oid and rkey == key:
                    continue
                if glob_match(pattern, other):
                    rec = target.obj_record(other)
                    if rec is not None:
                        found[other] = (haversine_m(lat, lon, *_center(rec)), rec)
        before = f.near.get(oid, set())
        group = f.groups.get(oid) or uuid.uuid4().hex[:24]
        f.groups[oid] = group
        for other, (dist, rec) in found.items():
            if f.query.nodwell and other in before:
                continue
            msg = {
                "command": cmd,
                "group": group,
                "detect": "roam",
                "hook": f.name,
                "key": key,
                "time": now_text,
                "id": oid,
            }
            _add_object(msg, f.query, new)
            msg["nearby"] = {
                "key": rkey,
                "id": other,
                "object": Raw(_obj_json(rec)),
                "meters": _meters(dist),
            }
            self._emit(f, msg)
        for other in sorted(before - set(found)):
            rec = target.obj_record(other) if target is not None else None
            if rec is None:
                continue
            dist = haversine_m(lat, lon, *_center(rec))
            msg = {
                "command": cmd,
                "group": group,
                "detect": "roam",
                "hook": f.name,
                "key": key,
                "time": now_text,
                "id": oid,
            }
            _add_object(msg, f.query, new)
            msg["faraway"] = {
                "key": rkey,
                "id": other,
                "object": Raw(_obj_json(rec)),
                "meters": _meters(dist),
            }
            self._emit(f, msg)
        self._roam_forget(f, oid)
        for other in found:
            f.near.setdefault(oid, set()).add(other)
            f.near.setdefault(other, set()).add(oid)

    def _roam_forget(self, f: Fence, oid: str) -> None:
        others = f.near.pop(oid, None)
        if others:
            for other in others:
                peers = f.near.get(other)
                if peers is not None:
                    peers.discard(oid)
                    if not peers:
                        del f.near[other]

    def _emit(self, f: Fence, msg: dict[str, Any]) -> None:
        if not f.name:
            msg.pop("hook", None)
        text = jsonout.dumps(msg)
        self.events_sent += 1
        if f.conn is not None:
            buf = bytearray()
            encode(text, buf)
            f.conn.push(bytes(buf))
        else:
            self.server.hub.publish(f.name, text)


# -- helpers -----------------------------------------------------------------------


def _center(rec: tuple[Any, ...] | list[Any]) -> tuple[float, float]:
    if rec[0] == "p":
        return float(rec[1]), float(rec[2])
    return parse_geojson(rec[1]).center


def _obj_json(rec: tuple[Any, ...] | list[Any]) -> str:
    if rec[0] == "p":
        return point_json(rec[1], rec[2], rec[3] if len(rec) > 3 else None)
    return str(rec[1])


def _meters(d: float) -> float:
    """Tile38 truncates roam distances to whole millimetres."""
    return math.floor(d * 1000) / 1000


def _span(note: Note) -> tuple[float, float, float, float] | None:
    """(minlon, minlat, maxlon, maxlat) covering the old and new point."""
    old, new = note[3], note[4]
    pts = [r for r in (old, new) if r is not None and r[0] == "p"]
    if not pts or any(r is not None and r[0] == "g" for r in (old, new)):
        return None
    lats = [float(r[1]) for r in pts]
    lons = [float(r[2]) for r in pts]
    return (min(lons), min(lats), max(lons), max(lats))


def _inside(f: Fence, rec: tuple[Any, ...] | list[Any]) -> bool:
    area = f.area
    if rec[0] == "p":
        lat, lon = float(rec[1]), float(rec[2])
        if isinstance(area, areas.Circle):
            return haversine_m(area.lat, area.lon, lat, lon) <= area.meters
        if isinstance(area, areas.Bounds):
            return bool(
                area.minlat <= lat <= area.maxlat and area.minlon <= lon <= area.maxlon
            )
        return bool(area.contains_points(np.array([lat]), np.array([lon]))[0])
    g = parse_geojson(rec[1]).geom
    if f.query.cmd == "within":
        return bool(area.contains_geom(g))
    return bool(area.intersects_geom(g))


def _crosses(f: Fence, old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    if new[0] != "p":
        return False
    line = shapely.LineString([(old[2], old[1]), (new[2], new[1])])
    return bool(f.area.intersects_geom(line))


def _add_object(msg: dict[str, Any], q: Query, rec: tuple[Any, ...]) -> None:
    out = q.output
    if out in ("IDS", "COUNT"):
        return
    if out == "POINTS":
        lat, lon = _center(rec)
        msg["point"] = {"lat": lat, "lon": lon}
    elif out == "HASHES":
        lat, lon = _center(rec)
        msg["hash"] = geohash.encode(lat, lon, q.precision)
    else:
        msg["object"] = Raw(_obj_json(rec))
