"""Object commands: SET FSET FGET GET DEL PDEL DROP RENAME RENAMENX EXISTS FEXISTS
TYPE TTL EXPIRE PERSIST JSET JGET JDEL, and ``apply_record`` for log replay.

Every write appends the full new state of what it changed as one change record
(docs/internals.md) and journals what it replaced, so a failed commit can undo it.
"""

from __future__ import annotations

import json
from typing import Any

from geofleetd.commands.base import (
    Ctx,
    Json,
    WrongArgs,
    command,
    field_text,
    field_value,
    fields_json,
    fields_resp,
    invalid,
    loose_number,
    parse_float,
    parse_int,
    parse_lat,
    parse_lon,
)
from geofleetd.errors import ID_NOT_FOUND, KEY_NOT_FOUND, GeofleetError
from geofleetd.geometry import geohash
from geofleetd.geometry.fmt import fnum
from geofleetd.geometry.geojson import parse_geojson, rect_ring
from geofleetd.protocol.jsonout import Raw
from geofleetd.protocol.resp import OK, Simple
from geofleetd.store.collection import Collection, ObjRecord, glob_match
from geofleetd.store.database import Database

_POINT = ("POINT", "point", "Point")


def _write_object(
    ctx: Ctx,
    key: str,
    oid: str,
    rec: ObjRecord,
    new_fields: list[tuple[str, float | str]] | None,
    expire_at: float | None,
    command_name: str = "set",
) -> None:
    """Store ``rec`` at key/id, merging fields, and report the change."""
    db = ctx.db
    col = db.cols.get(key) or db.get_or_create(key)
    cap = col.capture(oid) if db.journaling else None
    db.note_object(key, col, oid, cap)
    watched = ctx.server.fences_watch(key)
    old_rec = col.obj_record(oid) if watched else None
    old_fields = col.fields.get(oid) if watched else None
    if old_fields:  # fences test WHERE on the old fields too; the dict changes below
        old_fields = dict(old_fields)
    col.set_object(oid, rec)
    fields = col.fields.get(oid)
    if new_fields:
        # copy on write: a snapshot being written holds the old dict
        fields = col.fields[oid] = dict(fields) if fields else {}
        for name, value in new_fields:
            if value == 0.0:
                fields.pop(name, None)
            else:
                fields[name] = value
        if not fields:
            del col.fields[oid]
            fields = None
    if expire_at is not None:
        db.set_expire(col, key, oid, expire_at)
    elif col.expires:
        col.expires.pop(oid, None)
    ctx.changes.append(["set", key, oid, rec, fields or None, expire_at])
    if watched:
        ctx.notes.append(
            (
                command_name,
                key,
                oid,
                old_rec,
                rec,
                dict(fields) if fields else None,
                old_fields or None,
            )
        )


@command("SET", write=True)
def cmd_set(ctx: Ctx, args: list[str]) -> object:
    if len(args) == 6 and args[3] in _POINT:
        return _set_point_fast(ctx, args)
    n = len(args)
    if n < 3:
        raise WrongArgs("set")
    key, oid = args[1], args[2]
    new_fields: list[tuple[str, float | str]] = []
    expire: float | None = None
    nx = xx = False
    rec: ObjRecord | None = None
    i = 3
    while i < n:
        word = args[i].upper()
        if word == "FIELD":
            if i + 2 >= n:
                raise WrongArgs("set")
            name = args[i + 1]
            _check_field_name(name)
            new_fields.append((name, field_value(args[i + 2])))
            i += 3
        elif word == "EX":
            if expire is not None or i + 1 >= n:
                raise WrongArgs("set") if i + 1 >= n else invalid(args[i])
            secs = parse_seconds(args[i + 1])
            expire = ctx.now + secs
            i += 2
        elif word in ("NX", "XX"):
            if nx or xx:
                raise invalid(args[i])
            nx, xx = word == "NX", word == "XX"
            i += 1
        else:
            rec, i = _parse_object(args, i)
            if i != n:
                raise invalid(args[i])
    if rec is None:
        raise WrongArgs("set")

    col = ctx.db.cols.get(key)
    exists = col is not None and _live(ctx, col, oid)
    if nx and exists:
        if ctx.json:
            raise GeofleetError("id already exists")
        return None
    if xx and not exists:
        if ctx.json:
            raise GeofleetError(ID_NOT_FOUND)
        return None
    if col is not None and not exists and oid in col:
        _expire_now(ctx, key, col, oid)
    _write_object(ctx, key, oid, rec, new_fields, expire)
    return Json() if ctx.json else OK


MAX_TTL = 10 * 365 * 86400.0  # ten years: a TTL always fits a RESP integer


def parse_seconds(text: str) -> float:
    secs = parse_float(text)
    if secs > MAX_TTL:
        raise invalid(text)
    return secs


def _check_field_name(name: str) -> None:
    """z, lat, lon and lng name coordinates in Tile38 and cannot be fields."""
    if name.upper() in ("Z", "LAT", "LON", "LNG"):
        raise invalid(name)


def _set_point_fast(ctx: Ctx, args: list[str]) -> object:
    """``SET key id POINT lat lon``: the location update, kept to a few dict ops."""
    try:
        lat = float(args[4])
        lon = float(args[5])
    except ValueError:
        lat, lon = parse_lat(args[4]), parse_lon(args[5])
    if loose_number(args[4]) or loose_number(args[5]):
        lat, lon = parse_lat(args[4]), parse_lon(args[5])
    if not -90.0 <= lat <= 90.0:
        raise invalid(args[4])
    if not -180.0 <= lon <= 180.0:
        raise invalid(args[5])
    key = args[1]
    db = ctx.db
    col = db.cols.get(key)
    if col is None:
        _write_object(ctx, key, args[2], ("p", lat, lon), None, None)
        return Json() if ctx.client.json else OK
    oid = args[2]
    pts = col.points
    if oid not in pts and (oid in col.shapes or oid in col.strings):
        _write_object(ctx, key, oid, ("p", lat, lon), None, None)
        return Json() if ctx.client.json else OK
    exp = col.expires.pop(oid, None) if col.expires else None
    z = col.z.pop(oid, None) if col.z else None
    old = pts.get(oid)
    if db.journaling:
        db.journal.append(("pt", key, col, oid, old, z, exp))
    if old is None:
        col.invalidate_order()
    pts.set(oid, lat, lon)
    fields = col.fields.get(oid)
    rec = ("p", lat, lon)
    ctx.changes.append(["set", key, oid, rec, fields, None])
    if key in ctx.server.watched:
        # fields are copy-on-write, so the old and new dicts may be shared
        old_rec = None
        if old is not None:
            old_rec = ("p", old[0], old[1]) if z is None else ("p", old[0], old[1], z)
        ctx.notes.append(("set", key, oid, old_rec, rec, fields, fields))
    return Json() if ctx.client.json else OK


def _parse_object(args: list[str], i: int) -> tuple[ObjRecord, int]:
    """Parse POINT/BOUNDS/OBJECT/HASH/STRING at ``args[i]``; return (record, next)."""
    n = len(args)
    word = args[i].upper()
    if word == "POINT":
        if i + 2 >= n:
            raise WrongArgs("set")
        lat, lon = parse_lat(args[i + 1]), parse_lon(args[i + 2])
        if i + 3 < n:
            z = parse_float(args[i + 3])
            return ("p", lat, lon, z), i + 4
        return ("p", lat, lon), i + 3
    if word == "BOUNDS":
        if i + 4 >= n:
            raise WrongArgs("set")
        minlat, minlon = parse_lat(args[i + 1]), parse_lon(args[i + 2])
        maxlat, maxlon = parse_lat(args[i + 3]), parse_lon(args[i + 4])
        if minlat > maxlat or minlon > maxlon:
            raise GeofleetError(
                "invalid bounds: min must not exceed max "
                "(bounds crossing the antimeridian are not supported)"
            )
        if minlat == maxlat and minlon == maxlon:
            # a zero-size box is a point (a ring of one position is not a polygon)
            return ("p", minlat, minlon), i + 5
        if minlat == maxlat or minlon == maxlon:
            # a zero-width box is the segment between its corners
            line = [[minlon, minlat], [maxlon, maxlat]]
            text = json.dumps({"type": "LineString", "coordinates": line})
            return ("g", parse_geojson(text).text), i + 5
        ring = rect_ring(minlat, minlon, maxlat, maxlon)
        text = json.dumps({"type": "Polygon", "coordinates": [ring]})
        return ("g", parse_geojson(text).text), i + 5
    if word == "OBJECT":
        if i + 1 >= n:
            raise WrongArgs("set")
        shape = parse_geojson(args[i + 1])
        if shape.kind == "Point" and shape.properties is None:
            coords = json.loads(shape.text)["coordinates"]
            if len(coords) > 2:
                return (
                    "p",
                    float(coords[1]),
                    float(coords[0]),
                    float(coords[2]),
                ), i + 2
            return ("p", float(coords[1]), float(coords[0])), i + 2
        return ("g", shape.text), i + 2
    if word == "HASH":
        if i + 1 >= n:
            raise WrongArgs("set")
        lat, lon = geohash.decode(args[i + 1])
        return ("p", lat, lon), i + 2
    if word == "STRING":
        if i + 1 >= n:
            raise WrongArgs("set")
        return ("s", args[i + 1]), i + 2
    raise invalid(args[i])


def _live(ctx: Ctx, col: Collection, oid: str) -> bool:
    if oid not in col:
        return False
    if col.expires:
        at = col.expires.get(oid)
        if at is not None and at <= ctx.now:
            return False
    return True


def _expire_now(ctx: Ctx, key: str, col: Collection, oid: str) -> None:
    """Remove an object whose time is up but that the sweep has not reached."""
    delete_object(ctx, key, col, oid, "del")


def delete_object(ctx: Ctx, key: str, col: Collection, oid: str, cmd: str) -> None:
    db = ctx.db
    db.note_object(key, col, oid, col.capture(oid) if db.journaling else None)
    if ctx.server.fences_watch(key):
        ctx.notes.append((cmd, key, oid, col.obj_record(oid), None, None))
    col.delete(oid)
    ctx.changes.append(["del", key, oid])
    db.drop_if_empty(key, col)


def get_live(ctx: Ctx, key: str, oid: str) -> tuple[Collection | None, bool]:
    col = ctx.db.cols.get(key)
    if col is None:
        return None, False
    return col, _live(ctx, col, oid)


def _not_found(ctx: Ctx, message: str, resp_value: object = None) -> object:
    if ctx.json:
        raise GeofleetError(message)
    return resp_value


def point_body(col: Collection, oid: str, lat: float, lon: float) -> dict[str, float]:
    """``{"lat":..,"lon":..}`` plus ``"z"`` when the point has an elevation."""
    body = {"lat": lat, "lon": lon}
    z = col.z.get(oid) if col.z else None
    if z:  # Tile38 leaves out a zero elevation
        body["z"] = z
    return body


@command("GET")
def cmd_get(ctx: Ctx, args: list[str]) -> object:
    n = len(args)
    if n < 3:
        raise WrongArgs("get")
    key, oid = args[1], args[2]
    withfields = False
    i = 3
    if i < n and args[i].upper() == "WITHFIELDS":
        withfields = True
        i += 1
    kind = "OBJECT"
    precision = 0
    if i < n:
        kind = args[i].upper()
        if kind == "HASH":
            if i + 1 >= n:
                raise WrongArgs("get")
            precision = parse_int(args[i + 1])
            if not 1 <= precision <= 12:
                raise invalid(args[i + 1])
            i += 2
        elif kind in ("OBJECT", "POINT", "BOUNDS"):
            i += 1
        else:
            raise invalid(args[i])
    if i < n and args[i].upper() == "WITHFIELDS" and not withfields:
        withfields = True
        i += 1
    if i != n:
        raise WrongArgs("get")

    col, live = get_live(ctx, key, oid)
    if col is None:
        return _not_found(ctx, KEY_NOT_FOUND)
    if not live:
        return _not_found(ctx, ID_NOT_FOUND)
    fields = col.fields.get(oid) if withfields else None
    string = col.strings.get(oid)
    if ctx.json:
        body = Json()
        if kind == "OBJECT":
            body["object"] = string if string is not None else Raw(col.object_json(oid))
        elif string is not None:
            raise GeofleetError("not a geometry object")  # strings have no geometry
        elif kind == "POINT":
            lat, lon = col.center(oid)  # type: ignore[misc]
            body["point"] = point_body(col, oid, lat, lon)
        elif kind == "BOUNDS":
            b = col.bbox(oid)
            assert b is not None
            body["bounds"] = {
                "sw": {"lat": b[0], "lon": b[1]},
                "ne": {"lat": b[2], "lon": b[3]},
            }
        else:
            lat, lon = col.center(oid)  # type: ignore[misc]
            body["hash"] = geohash.encode(lat, lon, precision)
        if withfields and fields:
            body["fields"] = fields_json(fields)
        return body

    value: object
    if kind == "OBJECT":
        value = string if string is not None else col.object_json(oid)
    elif string is not None:
        raise GeofleetError("not a geometry object")
    elif kind == "POINT":
        lat, lon = col.center(oid)  # type: ignore[misc]
        zval = col.z.get(oid) if col.z else None
        value = [fnum(lat), fnum(lon)] + ([fnum(zval)] if zval else [])
    elif kind == "BOUNDS":
        b = col.bbox(oid)
        assert b is not None
        value = [[fnum(b[0]), fnum(b[1])], [fnum(b[2]), fnum(b[3])]]
    else:
        lat, lon = col.center(oid)  # type: ignore[misc]
        value = geohash.encode(lat, lon, precision)
    if withfields and fields:
        return [value, fields_resp(fields)]
    return value


@command("DEL", write=True)
def cmd_del(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 3:
        raise WrongArgs("del")
    key, oid = args[1], args[2]
    col, live = get_live(ctx, key, oid)
    if col is not None and oid in col:
        delete_object(ctx, key, col, oid, "del")
    if ctx.json:
        return Json()
    return 1 if live else 0


@command("PDEL", write=True)
def cmd_pdel(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 3:
        raise WrongArgs("pdel")
    key, pattern = args[1], args[2]
    col = ctx.db.cols.get(key)
    count = 0
    if col is not None:
        victims = [oid for oid in col.sorted_ids() if glob_match(pattern, oid)]
        for oid in victims:
            if _live(ctx, col, oid):
                count += 1
            delete_object(ctx, key, col, oid, "del")
    if ctx.json:
        return Json()
    return count


@command("DROP", write=True)
def cmd_drop(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 2:
        raise WrongArgs("drop")
    key = args[1]
    existed = key in ctx.db.cols
    if existed:
        ctx.db.note_cols()
        if ctx.server.fences_watch(key):
            ctx.notes.append(("drop", key, None, None, None, None))
        del ctx.db.cols[key]
        ctx.changes.append(["drop", key])
    if ctx.json:
        return Json()
    return 1 if existed else 0


def _rename(ctx: Ctx, args: list[str], nx: bool) -> object:
    name = "renamenx" if nx else "rename"
    if len(args) != 3:
        raise WrongArgs(name)
    old, new = args[1], args[2]
    db = ctx.db
    if old not in db.cols:
        raise GeofleetError(KEY_NOT_FOUND)
    if ctx.server.key_has_channels(old) or ctx.server.key_has_channels(new):
        raise GeofleetError("key has channels set")
    if nx and new in db.cols:
        return Json() if ctx.json else 0
    db.note_cols()
    db.cols[new] = db.cols.pop(old)
    ctx.changes.append(["rename", old, new])
    if ctx.json:
        return Json()
    return 1 if nx else OK


@command("RENAME", write=True)
def cmd_rename(ctx: Ctx, args: list[str]) -> object:
    return _rename(ctx, args, False)


@command("RENAMENX", write=True)
def cmd_renamenx(ctx: Ctx, args: list[str]) -> object:
    return _rename(ctx, args, True)


@command("EXISTS")
def cmd_exists(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 3:
        raise WrongArgs("exists")
    _, live = get_live(ctx, args[1], args[2])
    return Json(exists=live) if ctx.json else int(live)


@command("FEXISTS")
def cmd_fexists(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 4:
        raise WrongArgs("fexists")
    col, live = get_live(ctx, args[1], args[2])
    found = bool(live and col is not None and args[3] in col.fields.get(args[2], {}))
    return Json(exists=found) if ctx.json else int(found)


@command("TYPE")
def cmd_type(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 2:
        raise WrongArgs("type")
    kind = "hash" if args[1] in ctx.db.cols else "none"
    return Json(type=kind) if ctx.json else Simple(kind)


@command("FSET", write=True)
def cmd_fset(ctx: Ctx, args: list[str]) -> object:
    n = len(args)
    if n < 5:
        raise WrongArgs("fset")
    key, oid = args[1], args[2]
    i = 3
    xx = False
    if args[i].upper() == "XX":
        xx = True
        i += 1
    pairs = args[i:]
    if not pairs or len(pairs) % 2:
        raise WrongArgs("fset")
    col, live = get_live(ctx, key, oid)
    if col is None or not live:
        if xx:
            return Json() if ctx.json else 0
        raise GeofleetError(KEY_NOT_FOUND if col is None else ID_NOT_FOUND)
    current = col.fields.get(oid) or {}
    updates: list[tuple[str, float | str]] = []
    changed = 0
    for j in range(0, len(pairs), 2):
        name, value = pairs[j], field_value(pairs[j + 1])
        _check_field_name(name)
        if current.get(name, 0.0) != value:
            changed += 1
        updates.append((name, value))
    if not changed:  # nothing to store, log or report to fences (as Tile38)
        return Json() if ctx.json else 0
    rec = col.obj_record(oid)
    assert rec is not None
    _write_object(ctx, key, oid, rec, updates, col.expires.get(oid), "fset")
    return Json() if ctx.json else changed


@command("FGET")
def cmd_fget(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 4:
        raise WrongArgs("fget")
    col, live = get_live(ctx, args[1], args[2])
    if col is None:
        raise GeofleetError(KEY_NOT_FOUND)
    if not live:
        raise GeofleetError(ID_NOT_FOUND)
    value = (col.fields.get(args[2]) or {}).get(args[3], 0.0)
    if ctx.json:
        return Json(value=value)
    return field_text(value)


@command("TTL")
def cmd_ttl(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 3:
        raise WrongArgs("ttl")
    col, live = get_live(ctx, args[1], args[2])
    if col is None:
        return _not_found(ctx, KEY_NOT_FOUND, -2)
    if not live:
        return _not_found(ctx, ID_NOT_FOUND, -2)
    at = col.expires.get(args[2])
    if at is None:
        return Json(ttl=-1) if ctx.json else -1
    remaining = max(0.0, at - ctx.now)
    return Json(ttl=remaining) if ctx.json else int(remaining)


@command("EXPIRE", write=True)
def cmd_expire(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 4:
        raise WrongArgs("expire")
    secs = parse_seconds(args[3])
    col, live = get_live(ctx, args[1], args[2])
    if col is None:
        return _not_found(ctx, KEY_NOT_FOUND, 0)
    if not live:
        return _not_found(ctx, ID_NOT_FOUND, 0)
    rec = col.obj_record(args[2])
    assert rec is not None
    _write_object(ctx, args[1], args[2], rec, None, ctx.now + secs, "expire")
    return Json() if ctx.json else 1


@command("PERSIST", write=True)
def cmd_persist(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 3:
        raise WrongArgs("persist")
    col, live = get_live(ctx, args[1], args[2])
    if col is None:
        return _not_found(ctx, KEY_NOT_FOUND, 0)
    if not live:
        return _not_found(ctx, ID_NOT_FOUND, 0)
    if args[2] not in col.expires:
        return Json() if ctx.json else 0
    rec = col.obj_record(args[2])
    assert rec is not None
    _write_object(ctx, args[1], args[2], rec, None, None, "persist")
    return Json() if ctx.json else 1


# -- JSON documents: JSET / JGET / JDEL -----------------------------------------
#
# A path is dot-separated. In an array a part is an index, and ``-1`` means "after
# the last element" (JSET appends) or "the last element" (JDEL). JSET creates what
# is missing on the way: an array when the next part is an index, else an object.
# A geometry object stays a geometry (the new document is stored as SET ... OBJECT
# would store it); anything else is stored as a string.


def _index(part: str) -> int | None:
    if part == "-1":
        return -1
    return int(part) if part.isdigit() else None


def _jpath_get(doc: Any, path: str) -> Any:
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
            continue
        idx = _index(part)
        if isinstance(cur, list) and idx is not None and -len(cur) <= idx < len(cur):
            cur = cur[idx]
        else:
            raise KeyError(path)
    return cur


def _jset_path(doc: Any, parts: list[str], value: Any) -> Any:
    """``doc`` with ``value`` put at ``parts``; containers are made as needed."""
    part = parts[0]
    idx = _index(part)
    if not isinstance(doc, dict | list):
        doc = [] if idx is not None else {}
    if isinstance(doc, list) and idx is None:
        doc = {}
    rest = parts[1:]
    if isinstance(doc, dict):
        doc[part] = _jset_path(doc.get(part), rest, value) if rest else value
        return doc
    assert idx is not None
    if idx == -1 or idx >= len(doc):
        doc.extend([None] * (0 if idx == -1 else idx - len(doc)))
        doc.append(_jset_path(None, rest, value) if rest else value)
    else:
        doc[idx] = _jset_path(doc[idx], rest, value) if rest else value
    return doc


def _jdel_path(doc: Any, parts: list[str]) -> bool:
    """Remove the member at ``parts``; False when there is none."""
    try:
        parent = _jpath_get(doc, ".".join(parts[:-1])) if len(parts) > 1 else doc
    except KeyError:
        return False
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            return False
        del parent[last]
        return True
    idx = _index(last)
    if (
        isinstance(parent, list)
        and idx is not None
        and -len(parent) <= idx < len(parent)
    ):
        del parent[idx]
        return True
    return False


_JSON_LITERALS = ("true", "false", "null")


def _jvalue(raw: str, mode: str) -> Any:
    """The value JSET stores: RAW parses JSON, STR keeps text; by default only
    true/false/null and numbers are typed, anything else is a string."""
    if mode == "STR":
        return raw
    if mode == "RAW":
        try:
            return json.loads(raw)
        except ValueError:
            raise GeofleetError(f"invalid json: {raw}") from None
    if raw in _JSON_LITERALS:
        return json.loads(raw)
    try:
        float(raw)
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, int | float) else raw


def _jdump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _jtext(col: Collection, oid: str) -> tuple[str, bool]:
    """The stored document of a live id, and whether it is a geometry."""
    text = col.strings.get(oid)
    if text is not None:
        return text, False
    return col.object_json(oid) or "{}", True


def _jstore(ctx: Ctx, key: str, oid: str, doc: Any, geo: bool, name: str) -> None:
    text = _jdump(doc)
    rec: ObjRecord = _parse_object(["OBJECT", text], 0)[0] if geo else ("s", text)
    col = ctx.db.cols.get(key)
    expire = col.expires.get(oid) if col is not None and name == "jdel" else None
    _write_object(ctx, key, oid, rec, None, expire, name)


def _jstring(value: Any, raw: bool) -> str:
    if isinstance(value, str) and not raw:
        return value
    return _jdump(value)


@command("JGET")
def cmd_jget(ctx: Ctx, args: list[str]) -> object:
    if len(args) not in (3, 4, 5):
        raise WrongArgs("jget")
    path: str | None = None
    raw = False
    if len(args) == 4 and args[3].upper() == "RAW":
        raw = True
    elif len(args) >= 4:
        path = args[3]
        if len(args) == 5:
            if args[4].upper() != "RAW":
                raise invalid(args[4])
            raw = True
    col, live = get_live(ctx, args[1], args[2])
    if col is None:
        return _not_found(ctx, KEY_NOT_FOUND)
    if not live:
        return _not_found(ctx, ID_NOT_FOUND)
    text, _ = _jtext(col, args[2])
    if path is None:
        out = text
    else:
        try:
            value = _jpath_get(json.loads(text), path)
        except (KeyError, ValueError):
            # Tile38: no value member in JSON mode, nil in RESP mode
            return Json() if ctx.json else None
        out = _jstring(value, raw)
    return Json(value=out) if ctx.json else out


@command("JSET", write=True)
def cmd_jset(ctx: Ctx, args: list[str]) -> object:
    if len(args) not in (5, 6):
        raise WrongArgs("jset")
    key, oid, path, raw = args[1], args[2], args[3], args[4]
    mode = args[5].upper() if len(args) == 6 else ""
    if mode not in ("", "RAW", "STR"):
        raise invalid(args[5])
    value = _jvalue(raw, mode)
    col, live = get_live(ctx, key, oid)
    doc: Any = {}
    geo = False
    if col is not None and live:
        text, geo = _jtext(col, oid)
        try:
            doc = json.loads(text)
        except ValueError:
            doc = {}
    doc = _jset_path(doc, path.split("."), value)
    _jstore(ctx, key, oid, doc, geo, "jset")
    return Json() if ctx.json else OK


@command("JDEL", write=True)
def cmd_jdel(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 4:
        raise WrongArgs("jdel")
    key, oid, path = args[1], args[2], args[3]
    col, live = get_live(ctx, key, oid)
    if col is None:
        return _not_found(ctx, KEY_NOT_FOUND, 0)
    if not live:
        return _not_found(ctx, "path not found", 0)
    text, geo = _jtext(col, oid)
    try:
        doc = json.loads(text)
    except ValueError:
        return _not_found(ctx, "path not found", 0)
    if not _jdel_path(doc, path.split(".")):
        return _not_found(ctx, "path not found", 0)
    _jstore(ctx, key, oid, doc, geo, "jdel")
    return Json() if ctx.json else 1


# -- replay ----------------------------------------------------------------------


def apply_record(db: Database, rec: list[Any]) -> None:
    """Apply one change record from the log to the database (no journal)."""
    kind = rec[0]
    if kind == "set":
        _, key, oid, obj, fields, expire_at = rec
        col = db.cols.get(key) or db.get_or_create(key)
        col.set_object(oid, tuple(obj))
        if fields:
            col.fields[oid] = dict(fields)
        elif oid in col.fields:
            del col.fields[oid]
        if expire_at is not None:
            col.expires[oid] = expire_at
        elif col.expires:
            col.expires.pop(oid, None)
    elif kind == "del":
        found = db.cols.get(rec[1])
        if found is not None:
            found.delete(rec[2])
            if len(found) == 0:
                del db.cols[rec[1]]
    elif kind == "drop":
        db.cols.pop(rec[1], None)
    elif kind == "rename":
        moved = db.cols.pop(rec[1], None)
        if moved is not None:
            db.cols[rec[2]] = moved
    elif kind == "flush":
        db.cols.clear()


def capture_state(db: Database) -> list[tuple[Any, ...]]:
    """A cheap, consistent copy of the state for a snapshot (runs on the loop).

    Only containers are copied: coordinates as arrays, and the id -> value maps.
    Field dicts are never changed in place (writes replace them), so sharing them
    is safe. ``records_from_capture`` then builds the records in a worker thread.
    """
    out: list[tuple[Any, ...]] = []
    for key, col in db.cols.items():
        slot_of, lat, lon = col.points.export()
        out.append(
            (
                key,
                slot_of,
                lat,
                lon,
                dict(col.z),
                dict(col.shapes),
                dict(col.strings),
                dict(col.fields),
                dict(col.expires),
            )
        )
    return out


def records_from_capture(captured: list[tuple[Any, ...]]) -> list[list[Any]]:
    """The captured state as ``set`` records (safe to run off the loop)."""
    out: list[list[Any]] = []
    for key, slot_of, lat, lon, zs, shapes, strings, fields, expires in captured:
        for oid, slot in slot_of.items():
            z = zs.get(oid)
            rec: tuple[Any, ...] = (
                ("p", float(lat[slot]), float(lon[slot]))
                if z is None
                else ("p", float(lat[slot]), float(lon[slot]), z)
            )
            out.append(["set", key, oid, rec, fields.get(oid), expires.get(oid)])
        for oid, shape in shapes.items():
            out.append(
                ["set", key, oid, ("g", shape.text), fields.get(oid), expires.get(oid)]
            )
        for oid, text in strings.items():
            out.append(
                ["set", key, oid, ("s", text), fields.get(oid), expires.get(oid)]
            )
    return out
