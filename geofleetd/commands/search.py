"""Search commands: NEARBY, WITHIN, INTERSECTS, SCAN, SEARCH, and their parsing.

``parse_query`` reads Tile38's option grammar (CURSOR, LIMIT, MATCH, WHERE, WHEREIN,
NOFIELDS, DISTANCE, ASC/DESC, FENCE, DETECT, COMMANDS, NODWELL, the output kind and
the area) into a ``Query`` that live fences reuse. ``run_query`` finds the matching
ids; ``render`` turns them into Tile38's RESP or JSON reply.

Points are found through the collection's ``PointIndex`` (candidates from the area's
bounding box, then one vectorized exact test); shapes through its R-tree, then a
shapely predicate. NEARBY walks points nearest first by haversine distance and stops
after LIMIT matches.

Results of WITHIN and INTERSECTS are ordered by id so CURSOR paging is stable; SCAN
by id; SEARCH by string value; NEARBY by distance. CURSOR is an offset into the
filtered results; the reply's cursor is where the next page starts, 0 at the end.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import shapely

from geofleetd.commands.base import (
    Ctx,
    Json,
    WrongArgs,
    command,
    field_json,
    fields_resp,
    invalid,
    parse_float,
    parse_int,
    parse_lat,
    parse_lon,
)
from geofleetd.commands.objects import point_body
from geofleetd.commands.where import Pred, parse_where, wherein_pred
from geofleetd.errors import ID_NOT_FOUND, KEY_NOT_FOUND, GeofleetError
from geofleetd.geometry import areas, geohash
from geofleetd.geometry.distance import EARTH_RADIUS_M, haversine_m
from geofleetd.geometry.fmt import fnum
from geofleetd.geometry.geojson import parse_geojson, point_json
from geofleetd.protocol.jsonout import Raw
from geofleetd.store.collection import Collection, glob_match

DEFAULT_LIMIT = 100
OUTPUTS = ("COUNT", "IDS", "OBJECTS", "POINTS", "BOUNDS", "HASHES")
DETECTS = ("inside", "outside", "enter", "exit", "cross")


@dataclass
class Query:
    cmd: str
    key: str
    cursor: int = 0
    limit: int | None = None
    matches: list[str] = field(default_factory=list)
    preds: list[Pred] = field(default_factory=list)
    nofields: bool = False
    output: str = "OBJECTS"
    precision: int = 0
    distance: bool = False
    desc: bool = False
    fence: bool = False
    detect: frozenset[str] | None = None
    commands: frozenset[str] | None = None
    nodwell: bool = False
    area: Any = None
    clips: list[Any] = field(default_factory=list)
    sparse: int = 0
    lat: float = 0.0
    lon: float = 0.0
    meters: float | None = None
    roam: tuple[str, str, float] | None = None
    buffer: float = 0.0
    args: list[str] = field(default_factory=list)


def _need(args: list[str], i: int, count: int, name: str) -> None:
    if i + count > len(args):
        raise WrongArgs(name)


@lru_cache(maxsize=128)
def _geojson_area(text: str) -> Any:
    return areas.area_from_geojson(parse_geojson(text))


def parse_area(
    ctx: Ctx | None, db_get: Any, args: list[str], i: int, name: str
) -> tuple[Any, int]:
    """Parse one WITHIN/INTERSECTS area at ``args[i]``; return (area, next index)."""
    word = args[i].upper()
    if word == "BOUNDS":
        _need(args, i + 1, 4, name)
        minlat, minlon = parse_lat(args[i + 1]), parse_lon(args[i + 2])
        maxlat, maxlon = parse_lat(args[i + 3]), parse_lon(args[i + 4])
        return areas.Bounds(minlat, minlon, maxlat, maxlon), i + 5
    if word == "CIRCLE":
        _need(args, i + 1, 3, name)
        meters = parse_float(args[i + 3])
        if meters < 0:
            raise invalid(args[i + 3])
        return areas.Circle(
            parse_lat(args[i + 1]), parse_lon(args[i + 2]), meters
        ), i + 4
    if word == "OBJECT":
        _need(args, i + 1, 1, name)
        return _geojson_area(args[i + 1]), i + 2
    if word == "SECTOR":
        _need(args, i + 1, 5, name)
        lat, lon = parse_lat(args[i + 1]), parse_lon(args[i + 2])
        meters = parse_float(args[i + 3])
        b1, b2 = parse_float(args[i + 4]), parse_float(args[i + 5])
        return areas.Sector(lat, lon, meters, b1, b2), i + 6
    if word == "TILE":
        _need(args, i + 1, 3, name)
        x, y, z = parse_int(args[i + 1]), parse_int(args[i + 2]), parse_int(args[i + 3])
        return areas.tile(x, y, z), i + 4
    if word == "QUADKEY":
        _need(args, i + 1, 1, name)
        return areas.quadkey(args[i + 1]), i + 2
    if word == "HASH":
        _need(args, i + 1, 1, name)
        return areas.hash_bounds(args[i + 1]), i + 2
    if word == "POINT":
        _need(args, i + 1, 2, name)
        lat, lon = parse_lat(args[i + 1]), parse_lon(args[i + 2])
        return _geojson_area(point_json(lat, lon)), i + 3
    if word == "GET":
        _need(args, i + 1, 2, name)
        col: Collection | None = db_get(args[i + 1])
        if col is None:
            raise GeofleetError(KEY_NOT_FOUND)
        oid = args[i + 2]
        text = col.object_json(oid)
        if text is None:
            raise GeofleetError(ID_NOT_FOUND)
        return _geojson_area(text), i + 3
    raise invalid(args[i])


def parse_query(ctx: Ctx, args: list[str]) -> Query:
    name = args[0].lower()
    if len(args) < 2:
        raise WrongArgs(name)
    q = Query(cmd=name, key=args[1], args=list(args))
    n = len(args)
    i = 2
    detect_seen = False
    while i < n:
        word = args[i].upper()
        if word == "CURSOR":
            _need(args, i + 1, 1, name)
            q.cursor = parse_int(args[i + 1])
            if q.cursor < 0:
                raise invalid(args[i + 1])
            i += 2
        elif word == "LIMIT":
            _need(args, i + 1, 1, name)
            q.limit = parse_int(args[i + 1])
            if q.limit < 0:
                raise invalid(args[i + 1])
            i += 2
        elif word == "BUFFER":
            _need(args, i + 1, 1, name)
            q.buffer = parse_float(args[i + 1])
            if q.buffer < 0:
                raise invalid(args[i + 1])
            i += 2
        elif word == "SPARSE":
            _need(args, i + 1, 1, name)
            q.sparse = parse_int(args[i + 1])
            if not 1 <= q.sparse <= 8:
                raise invalid(args[i + 1])
            i += 2
        elif word == "MATCH":
            _need(args, i + 1, 1, name)
            q.matches.append(args[i + 1])
            i += 2
        elif word == "WHERE":
            pred, i = parse_where(args, i + 1)
            q.preds.append(pred)
        elif word == "WHEREIN":
            _need(args, i + 1, 2, name)
            count = parse_int(args[i + 2])
            if count < 1:
                raise invalid(args[i + 2])
            _need(args, i + 3, count, name)
            q.preds.append(wherein_pred(args[i + 1], args[i + 3 : i + 3 + count]))
            i += 3 + count
        elif word == "NOFIELDS":
            q.nofields = True
            i += 1
        elif word == "DISTANCE":
            q.distance = True
            i += 1
        elif word in ("ASC", "DESC"):
            q.desc = word == "DESC"
            i += 1
        elif word == "FENCE":
            q.fence = True
            i += 1
        elif word == "NODWELL":
            q.nodwell = True
            i += 1
        elif word == "DETECT":
            _need(args, i + 1, 1, name)
            kinds = {k.strip().lower() for k in args[i + 1].split(",") if k.strip()}
            if not kinds or kinds - set(DETECTS):
                raise invalid(args[i + 1])
            q.detect = frozenset(kinds)
            detect_seen = True
            i += 2
        elif word == "COMMANDS":
            _need(args, i + 1, 1, name)
            q.commands = frozenset(c.strip().lower() for c in args[i + 1].split(","))
            i += 2
        elif word in OUTPUTS and not (
            word == "BOUNDS" and i + 1 < n and _is_number(args[i + 1])
        ):
            q.output = word
            i += 1
            if word == "HASHES":
                _need(args, i, 1, name)
                q.precision = parse_int(args[i])
                if not 1 <= q.precision <= 12:
                    raise invalid(args[i])
                i += 1
            if name in ("scan", "search"):
                break
        else:
            break
    if detect_seen and not q.fence:
        raise invalid("DETECT")

    if name in ("scan", "search"):
        if i != n:
            raise invalid(args[i])
        return q
    if i >= n:
        raise WrongArgs(name)
    if name == "nearby":
        word = args[i].upper()
        if word == "POINT":
            _need(args, i + 1, 2, name)
            q.lat, q.lon = parse_lat(args[i + 1]), parse_lon(args[i + 2])
            i += 3
            if i < n:
                q.meters = parse_float(args[i])
                if q.meters < 0:
                    raise invalid(args[i])
                i += 1
        elif word == "ROAM":
            _need(args, i + 1, 3, name)
            meters = parse_float(args[i + 3])
            if meters < 0:
                raise invalid(args[i + 3])
            q.roam = (args[i + 1], args[i + 2], meters)
            i += 4
            if not q.fence:
                raise GeofleetError("ROAM requires FENCE")
        else:
            raise invalid(args[i])
    else:
        q.area, i = parse_area(ctx, ctx.db.cols.get, args, i, name)
        if q.buffer > 0:
            q.area = buffered(q.area, q.buffer)
        while i < n and args[i].upper() == "CLIPBY":
            _need(args, i + 1, 1, name)
            clip, i = parse_area(ctx, ctx.db.cols.get, args, i + 1, name)
            q.clips.append(clip)
    if i != n:
        raise invalid(args[i])
    return q


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


# -- BUFFER ----------------------------------------------------------------------

_M_PER_DEG = EARTH_RADIUS_M * math.pi / 180


@dataclass(frozen=True, slots=True)
class BufferedArea:
    """A query area grown by BUFFER meters (any area kind, as a shapely shape)."""

    geom: Any
    bbox: tuple[float, float, float, float]

    def contains_points(self, lats: Any, lons: Any) -> Any:
        return np.asarray(
            shapely.intersects_xy(
                self.geom,
                np.asarray(lons, dtype=np.float64),
                np.asarray(lats, dtype=np.float64),
            ),
            dtype=np.bool_,
        )

    def intersects_geom(self, g: Any) -> bool:
        return bool(shapely.intersects(self.geom, g))

    def contains_geom(self, g: Any) -> bool:
        return bool(shapely.covers(self.geom, g))


def buffered(area: Any, meters: float) -> Any:
    """``area`` grown by ``meters`` on every side.

    A circle just gets a larger radius. Any other area is buffered in a local
    equirectangular plane around its center (x scaled by the cosine of the center
    latitude), which is close for areas up to a few hundred kilometres across.
    """
    if isinstance(area, areas.Circle):
        return areas.Circle(area.lat, area.lon, area.meters + meters)
    minlon, minlat, maxlon, maxlat = area.bbox
    lat0, lon0 = (minlat + maxlat) / 2, (minlon + maxlon) / 2
    kx = max(math.cos(math.radians(lat0)), 1e-6) * _M_PER_DEG
    ky = _M_PER_DEG

    def to_plane(xy: Any) -> Any:
        return np.column_stack(((xy[:, 0] - lon0) * kx, (xy[:, 1] - lat0) * ky))

    def to_degrees(xy: Any) -> Any:
        lons = np.clip(xy[:, 0] / kx + lon0, -180.0, 180.0)
        lats = np.clip(xy[:, 1] / ky + lat0, -90.0, 90.0)
        return np.column_stack((lons, lats))

    plane = shapely.transform(area.geom, to_plane)
    grown = shapely.transform(shapely.buffer(plane, meters, quad_segs=16), to_degrees)
    shapely.prepare(grown)
    x0, y0, x1, y1 = (float(v) for v in shapely.bounds(grown))
    return BufferedArea(grown, (x0, y0, x1, y1))


# -- filtering -------------------------------------------------------------------


def field_getter(col: Collection, oid: str) -> Any:
    shape = col.shapes.get(oid)
    return fields_getter(col.fields.get(oid), shape.properties if shape else None)


def fields_getter(fields: dict[str, Any] | None, props: dict[str, Any] | None) -> Any:
    """WHERE's view of an object: its fields, then ``properties.x`` paths of a
    GeoJSON Feature."""

    def get(path: str) -> Any:
        if fields is not None and path in fields:
            return fields[path]
        if props and path.startswith("properties."):
            cur: Any = props
            for part in path.split(".")[1:]:
                if isinstance(cur, dict) and part in cur:
                    cur = cur[part]
                else:
                    return None
            return cur
        return None

    return get


def passes(q: Query, col: Collection, oid: str, now: float) -> bool:
    if col.expires:
        at = col.expires.get(oid)
        if at is not None and at <= now:
            return False
    if q.matches and not any(glob_match(p, oid) for p in q.matches):
        return False
    if q.preds:
        get = field_getter(col, oid)
        if not all(p(get) for p in q.preds):
            return False
    return True


def area_matches(q: Query, col: Collection) -> list[str]:
    """Ids of objects in the query's area (WITHIN or INTERSECTS), unsorted."""
    area = q.area
    minlon, minlat, maxlon, maxlat = area.bbox
    ids, lats, lons = col.points.candidates_bbox(minlat, minlon, maxlat, maxlon)
    out: list[str]
    if ids:
        if isinstance(area, areas.Bounds):
            mask = None
        else:
            mask = area.contains_points(lats, lons)
        for clip in q.clips:
            cm = clip.contains_points(lats, lons)
            mask = cm if mask is None else mask & cm
        out = ids if mask is None else [ids[j] for j in np.flatnonzero(mask)]
    else:
        out = []
    if col.shapes:
        within = q.cmd == "within"
        for oid in col.shapes_in_bbox(minlat, minlon, maxlat, maxlon):
            g = col.shapes[oid].geom
            if within:
                ok = area.contains_geom(g) and all(c.contains_geom(g) for c in q.clips)
            else:
                ok = area.intersects_geom(g) and all(
                    c.intersects_geom(g) for c in q.clips
                )
            if ok:
                out.append(oid)
    return out


def _shape_distance(col: Collection, oid: str, lat: float, lon: float) -> float:
    g = col.shapes[oid].geom
    pt = shapely.Point(lon, lat)
    if g.covers(pt):
        return 0.0
    near = shapely.get_coordinates(shapely.shortest_line(g, pt))[0]
    return haversine_m(lat, lon, float(near[1]), float(near[0]))


def nearby_iter(q: Query, col: Collection) -> Iterator[tuple[str, float]]:
    pts = col.points.nearest(q.lat, q.lon, q.meters)
    if not col.shapes:
        return pts
    found: list[tuple[float, str]] = []
    for oid in col.shapes:
        d = _shape_distance(col, oid, q.lat, q.lon)
        if q.meters is None or d <= q.meters:
            found.append((d, oid))
    found.sort()
    shapes_iter = ((oid, d) for d, oid in found)
    return heapq.merge(pts, shapes_iter, key=lambda t: t[1])


# -- running ---------------------------------------------------------------------


def run_query(ctx: Ctx, q: Query) -> tuple[list[str], list[float] | None, int, int]:
    """Return (ids of the page, distances or None, next cursor, total count)."""
    col = ctx.db.cols.get(q.key)
    if col is None:
        return [], None, 0, 0
    now = ctx.now
    limit = q.limit if q.limit is not None else DEFAULT_LIMIT
    counting = q.output == "COUNT" and q.limit is None
    plain = not q.matches and not q.preds and not col.expires

    if q.cmd == "nearby":
        page: list[str] = []
        dists: list[float] = []
        seen = 0
        more = False
        for oid, dist in nearby_iter(q, col):
            if not plain and not passes(q, col, oid, now):
                continue
            seen += 1
            if seen <= q.cursor:
                continue
            if not counting and len(page) >= limit:
                more = True
                break
            page.append(oid)
            dists.append(dist)
        total = seen
        nxt = q.cursor + len(page) if more else 0
        if q.distance:
            _exact_point_distances(q, col, page, dists)
        return page, dists, nxt, total

    if q.cmd in ("within", "intersects"):
        if (
            plain
            and q.output == "COUNT"
            and not q.clips
            and not q.sparse
            and isinstance(q.area, areas.Bounds)
        ):
            minlon, minlat, maxlon, maxlat = q.area.bbox
            total = col.points.count_bbox(minlat, minlon, maxlat, maxlon)
            if col.shapes:
                total += len(_shape_hits(q, col))
            return [], None, 0, total
        ids = area_matches(q, col)
        if not plain:
            ids = [oid for oid in ids if passes(q, col, oid, now)]
        ids.sort(key=_index_order(col), reverse=q.desc)
        if q.sparse:
            ids = _sparse(q, col, ids)
        if q.output == "COUNT":
            return [], None, 0, len(ids)
    elif q.cmd == "search":
        items = sorted(
            col.strings.items(), key=lambda kv: (kv[1], kv[0]), reverse=q.desc
        )
        ids = []
        for oid, value in items:
            if col.expires and not passes(Query("scan", q.key), col, oid, now):
                continue
            if q.matches and not any(glob_match(p, value) for p in q.matches):
                continue
            if q.preds:
                get = field_getter(col, oid)
                if not all(p(get) for p in q.preds):
                    continue
            ids.append(oid)
    else:  # scan
        ordered = col.sorted_ids()
        source = reversed(ordered) if q.desc else ordered
        ids = list(source) if plain else [o for o in source if passes(q, col, o, now)]
    total = len(ids)
    if q.output == "COUNT" and q.limit is None:
        return [], None, 0, total
    page = ids[q.cursor : q.cursor + limit]
    end = q.cursor + len(page)
    return page, None, (end if end < total else 0), total


def _exact_point_distances(
    q: Query, col: Collection, page: list[str], dists: list[float]
) -> None:
    """Recompute printed point distances with the scalar haversine.

    The index orders by its own (vectorised) distance, which may differ from
    Tile38's in the last bits; DISTANCE prints every digit, so the page's point
    distances are redone in Tile38's order of operations.
    """
    for j, oid in enumerate(page):
        pos = col.points.get(oid)
        if pos is not None:
            dists[j] = haversine_m(q.lat, q.lon, pos[0], pos[1])


def _index_order(col: Collection) -> Any:
    """Sort key for WITHIN/INTERSECTS results: west edge first, then id.

    Tile38 returns these in its R-tree's order, which for the small result sets
    clients compare against runs west to east by each object's minimum
    longitude; ids break ties so paging with CURSOR stays stable.
    """

    def key(oid: str) -> tuple[float, str]:
        pos = col.points.get(oid)
        if pos is not None:
            return (pos[1], oid)
        shape = col.shapes.get(oid)
        return (shape.bbox[0] if shape is not None else 0.0, oid)

    return key


def _sparse(q: Query, col: Collection, ids: list[str]) -> list[str]:
    """SPARSE n: cut the area's box into 2^n x 2^n tiles and keep the first
    object (in result order) whose center falls in each tile."""
    minlon, minlat, maxlon, maxlat = q.area.bbox
    side = 1 << q.sparse
    w = (maxlon - minlon) / side or 1.0
    h = (maxlat - minlat) / side or 1.0
    seen: set[tuple[int, int]] = set()
    out: list[str] = []
    for oid in ids:
        center = col.center(oid)
        if center is None:
            continue
        tx = min(side - 1, max(0, int((center[1] - minlon) / w)))
        ty = min(side - 1, max(0, int((center[0] - minlat) / h)))
        if (tx, ty) not in seen:
            seen.add((tx, ty))
            out.append(oid)
    return out


def _shape_hits(q: Query, col: Collection) -> list[str]:
    minlon, minlat, maxlon, maxlat = q.area.bbox
    hits = []
    for oid in col.shapes_in_bbox(minlat, minlon, maxlat, maxlon):
        g = col.shapes[oid].geom
        ok = q.area.contains_geom(g) if q.cmd == "within" else q.area.intersects_geom(g)
        if ok:
            hits.append(oid)
    return hits


# -- rendering -------------------------------------------------------------------


def _point_of(col: Collection, oid: str) -> tuple[float, float]:
    c = col.center(oid)
    return c if c is not None else (0.0, 0.0)


def render(
    ctx: Ctx,
    q: Query,
    col: Collection | None,
    page: list[str],
    dists: list[float] | None,
    cursor: int,
    total: int,
) -> object:
    out = q.output
    if ctx.json:
        body = Json()
        if out == "COUNT":
            body["count"] = total
            body["cursor"] = cursor
            return body
        if out == "IDS":
            body["ids"] = page
            body["count"] = len(page)
            body["cursor"] = cursor
            return body
        assert col is not None or not page
        names: list[str] = []
        if not q.nofields and col is not None:
            seen: set[str] = set()
            for oid in page:
                f = col.fields.get(oid)
                if f:
                    seen.update(f)
            names = sorted(seen)
        if names:
            body["fields"] = names
        items = []
        for j, oid in enumerate(page):
            assert col is not None
            item: dict[str, Any] = {"id": oid}
            if out == "OBJECTS":
                s = col.strings.get(oid)
                item["object"] = (
                    s if s is not None else Raw(col.object_json(oid) or "null")
                )
            elif out == "POINTS":
                lat, lon = _point_of(col, oid)
                item["point"] = point_body(col, oid, lat, lon)
            elif out == "BOUNDS":
                b = col.bbox(oid) or (0.0, 0.0, 0.0, 0.0)
                item["bounds"] = {
                    "sw": {"lat": b[0], "lon": b[1]},
                    "ne": {"lat": b[2], "lon": b[3]},
                }
            else:
                lat, lon = _point_of(col, oid)
                item["hash"] = geohash.encode(lat, lon, q.precision)
            if names:
                f = col.fields.get(oid) or {}
                item["fields"] = [field_json(f.get(name, 0)) for name in names]
            if q.distance and dists is not None:
                item["distance"] = dists[j]
            items.append(item)
        body[out.lower()] = items
        body["count"] = len(page)
        body["cursor"] = cursor
        return body

    if out == "COUNT":
        return total
    if out == "IDS":
        return [cursor, page]
    rows: list[object] = []
    for j, oid in enumerate(page):
        assert col is not None
        row: list[object] = [oid]
        if out == "OBJECTS":
            s = col.strings.get(oid)
            row.append(s if s is not None else col.object_json(oid))
        elif out == "POINTS":
            lat, lon = _point_of(col, oid)
            z = col.z.get(oid) if col.z else None
            row.append([fnum(lat), fnum(lon)] + ([fnum(z)] if z else []))
        elif out == "BOUNDS":
            b = col.bbox(oid) or (0.0, 0.0, 0.0, 0.0)
            row.append([[fnum(b[0]), fnum(b[1])], [fnum(b[2]), fnum(b[3])]])
        else:
            lat, lon = _point_of(col, oid)
            row.append(geohash.encode(lat, lon, q.precision))
        if not q.nofields:
            f = col.fields.get(oid)
            if f:
                row.append(fields_resp(f))
        if q.distance and dists is not None:
            row.append(fnum(dists[j]))
        rows.append(row)
    return [cursor, rows]


def _search(ctx: Ctx, args: list[str]) -> object:
    q = parse_query(ctx, args)
    if q.fence:
        return ctx.server.start_fence(ctx, q)
    page, dists, cursor, total = run_query(ctx, q)
    return render(ctx, q, ctx.db.cols.get(q.key), page, dists, cursor, total)


@command("NEARBY")
def cmd_nearby(ctx: Ctx, args: list[str]) -> object:
    if (
        len(args) == 8
        and args[2] in _LIMIT
        and args[4] in _IDS
        and args[5] in _POINT
        and not ctx.json
    ):
        fast = _nearby_ids(ctx, args)
        if fast is not None:
            return fast
    return _search(ctx, args)


_LIMIT = ("LIMIT", "limit")
_IDS = ("IDS", "ids")
_POINT = ("POINT", "point")


def _nearby_ids(ctx: Ctx, args: list[str]) -> object:
    """``NEARBY key LIMIT n IDS POINT lat lon`` on a plain points-only key: the
    dispatcher's query, without the general option parser."""
    col = ctx.db.cols.get(args[1])
    if col is None or col.shapes or col.expires:
        return None
    limit = parse_int(args[3])
    if limit < 0:
        raise invalid(args[3])
    lat, lon = parse_lat(args[6]), parse_lon(args[7])
    page: list[str] = []
    more = False
    for oid, _dist in col.points.nearest(lat, lon):
        if len(page) >= limit:
            more = True
            break
        page.append(oid)
    return [len(page) if more else 0, page]


@command("WITHIN")
def cmd_within(ctx: Ctx, args: list[str]) -> object:
    if len(args) == 8 and args[2] in _COUNT and args[3] in _BOUNDS and not ctx.json:
        return _count_points_in_bounds(ctx, args)
    return _search(ctx, args)


_COUNT = ("COUNT", "count")
_BOUNDS = ("BOUNDS", "bounds")


def _count_points_in_bounds(ctx: Ctx, args: list[str]) -> object:
    """``WITHIN key COUNT BOUNDS a b c d`` on points only: no query object at all."""
    col = ctx.db.cols.get(args[1])
    if col is None or col.shapes or col.expires:
        return _search(ctx, args)
    minlat, minlon = parse_lat(args[4]), parse_lon(args[5])
    maxlat, maxlon = parse_lat(args[6]), parse_lon(args[7])
    if minlat > maxlat or minlon > maxlon:
        return _search(ctx, args)  # the general path words the error
    return col.points.count_bbox(minlat, minlon, maxlat, maxlon)


@command("INTERSECTS")
def cmd_intersects(ctx: Ctx, args: list[str]) -> object:
    return _search(ctx, args)


@command("SCAN")
def cmd_scan(ctx: Ctx, args: list[str]) -> object:
    return _search(ctx, args)


@command("SEARCH")
def cmd_search(ctx: Ctx, args: list[str]) -> object:
    return _search(ctx, args)
