"""One collection (a Tile38 "key"): objects by id, their fields and expiry times.

Each id is exactly one of: a point (kept in a ``PointIndex``, coordinates in
columns, because points move all the time), a shape (any other GeoJSON object, kept
as a ``GeoShape`` in an R-tree, because shapes rarely change) or a string.

Objects are described to the rest of the server by *object records*, the same
tuples that the append log stores: ``("p", lat, lon)``, ``("p", lat, lon, z)``,
``("g", geojson_text)`` or ``("s", text)``.

Limits: ids are unique per collection; a collection never holds an expired object
for longer than one expiry sweep, and reads treat expired objects as gone at once.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import shapely
from rtree import index as rtree_index

from geofleetd.geometry.geojson import GeoShape, parse_geojson, point_json
from geofleetd.index.points import PointIndex

FieldValue = float | str
Fields = dict[str, FieldValue]
ObjRecord = tuple[Any, ...]
# (object record, fields or None, expire_at or None): enough to restore an id.
Captured = tuple[ObjRecord, Fields | None, float | None]


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Tile38/Redis style glob (``*``, ``?``, ``[abc]``, ``[^a]``) as a regex."""
    return re.compile(fnmatch.translate(pattern.replace("[^", "[!")), re.DOTALL)


def glob_match(pattern: str, text: str) -> bool:
    if pattern == "*":
        return True
    return glob_regex(pattern).match(text) is not None


class Collection:
    """Objects of one key. Mutations keep every index consistent."""

    __slots__ = (
        "_rid_next",
        "_rid_of",
        "_rtree",
        "_sorted",
        "expires",
        "fields",
        "id_of_rid",
        "points",
        "shapes",
        "strings",
        "z",
    )

    def __init__(self, cell_deg: float = 0.01) -> None:
        self.points = PointIndex(cell_deg)
        self.z: dict[str, float] = {}
        self.shapes: dict[str, GeoShape] = {}
        self.strings: dict[str, str] = {}
        self.fields: dict[str, Fields] = {}
        self.expires: dict[str, float] = {}
        self._rtree: Any = None
        self._rid_of: dict[str, int] = {}
        self.id_of_rid: dict[int, str] = {}
        self._rid_next = 1
        self._sorted: list[str] | None = None

    def __len__(self) -> int:
        return len(self.points) + len(self.shapes) + len(self.strings)

    def __contains__(self, oid: str) -> bool:
        return oid in self.points or oid in self.shapes or oid in self.strings

    # -- writes ------------------------------------------------------------------

    def set_point(
        self, oid: str, lat: float, lon: float, z: float | None = None
    ) -> None:
        if oid not in self.points:
            if oid in self.shapes or oid in self.strings:
                self._drop_object(oid)
            self._sorted = None
        self.points.set(oid, lat, lon)
        if z is None:
            if self.z:
                self.z.pop(oid, None)
        else:
            self.z[oid] = z

    def set_shape(self, oid: str, shape: GeoShape) -> None:
        if oid in self.shapes:
            self._rtree_remove(oid)
        else:
            if oid in self.points or oid in self.strings:
                self._drop_object(oid)
            self._sorted = None
        self.shapes[oid] = shape
        self._rtree_insert(oid, shape)

    def set_string(self, oid: str, value: str) -> None:
        if oid not in self.strings:
            if oid in self.points or oid in self.shapes:
                self._drop_object(oid)
            self._sorted = None
        self.strings[oid] = value

    def set_object(self, oid: str, rec: ObjRecord) -> None:
        kind = rec[0]
        if kind == "p":
            self.set_point(oid, rec[1], rec[2], rec[3] if len(rec) > 3 else None)
        elif kind == "g":
            self.set_shape(oid, parse_geojson(rec[1]))
        else:
            self.set_string(oid, rec[1])

    def delete(self, oid: str) -> bool:
        if oid not in self:
            return False
        self._drop_object(oid)
        self.fields.pop(oid, None)
        self.expires.pop(oid, None)
        self._sorted = None
        return True

    def _drop_object(self, oid: str) -> None:
        if self.points.remove(oid):
            if self.z:
                self.z.pop(oid, None)
        elif oid in self.shapes:
            self._rtree_remove(oid)
            del self.shapes[oid]
        else:
            self.strings.pop(oid, None)

    def capture(self, oid: str) -> Captured | None:
        """Everything needed to put ``oid`` back exactly as it is now."""
        rec = self.obj_record(oid)
        if rec is None:
            return None
        fields = self.fields.get(oid)
        return (rec, dict(fields) if fields else None, self.expires.get(oid))

    def restore(self, oid: str, cap: Captured | None) -> None:
        if cap is None:
            self.delete(oid)
            return
        rec, fields, exp = cap
        self.set_object(oid, rec)
        if fields:
            self.fields[oid] = dict(fields)
        else:
            self.fields.pop(oid, None)
        if exp is None:
            self.expires.pop(oid, None)
        else:
            self.expires[oid] = exp

    # -- reads -------------------------------------------------------------------

    def obj_record(self, oid: str) -> ObjRecord | None:
        pos = self.points.get(oid)
        if pos is not None:
            z = self.z.get(oid) if self.z else None
            return ("p", pos[0], pos[1]) if z is None else ("p", pos[0], pos[1], z)
        shape = self.shapes.get(oid)
        if shape is not None:
            return ("g", shape.text)
        s = self.strings.get(oid)
        if s is not None:
            return ("s", s)
        return None

    def object_json(self, oid: str) -> str | None:
        """GeoJSON text of a geometry object (None for strings and missing ids)."""
        pos = self.points.get(oid)
        if pos is not None:
            return point_json(pos[0], pos[1], self.z.get(oid) if self.z else None)
        shape = self.shapes.get(oid)
        return shape.text if shape is not None else None

    def center(self, oid: str) -> tuple[float, float] | None:
        pos = self.points.get(oid)
        if pos is not None:
            return pos
        shape = self.shapes.get(oid)
        return shape.center if shape is not None else None

    def bbox(self, oid: str) -> tuple[float, float, float, float] | None:
        """(minlat, minlon, maxlat, maxlon) of a geometry object."""
        pos = self.points.get(oid)
        if pos is not None:
            return (pos[0], pos[1], pos[0], pos[1])
        shape = self.shapes.get(oid)
        if shape is None:
            return None
        minlon, minlat, maxlon, maxlat = shape.bbox
        return (minlat, minlon, maxlat, maxlon)

    def invalidate_order(self) -> None:
        self._sorted = None

    def sorted_ids(self) -> list[str]:
        """All ids in byte order (cached until an id is added or removed)."""
        if self._sorted is None:
            ids = list(self.points.ids())
            ids.extend(self.shapes)
            ids.extend(self.strings)
            ids.sort()
            self._sorted = ids
        return self._sorted

    def geo_bounds(self) -> tuple[float, float, float, float] | None:
        """(minlat, minlon, maxlat, maxlon) over every geometry object."""
        boxes = []
        pb = self.points.bounds()
        if pb is not None:
            boxes.append(pb)
        for shape in self.shapes.values():
            minlon, minlat, maxlon, maxlat = shape.bbox
            boxes.append((minlat, minlon, maxlat, maxlon))
        if not boxes:
            return None
        return (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )

    def shapes_in_bbox(
        self, minlat: float, minlon: float, maxlat: float, maxlon: float
    ) -> Iterator[str]:
        if not self.shapes:
            return iter(())
        rids = self._rtree.intersection((minlon, minlat, maxlon, maxlat))
        return (self.id_of_rid[r] for r in rids)

    def num_points(self) -> int:
        """Vertices over every geometry (Tile38's ``num_points``)."""
        total = len(self.points)
        for shape in self.shapes.values():
            total += int(shapely.get_num_coordinates(shape.geom))
        return total

    # -- r-tree for shapes -------------------------------------------------------

    def _rtree_insert(self, oid: str, shape: GeoShape) -> None:
        if self._rtree is None:
            self._rtree = rtree_index.Index()
        rid = self._rid_next
        self._rid_next += 1
        self._rid_of[oid] = rid
        self.id_of_rid[rid] = oid
        self._rtree.insert(rid, shape.bbox)

    def _rtree_remove(self, oid: str) -> None:
        rid = self._rid_of.pop(oid)
        del self.id_of_rid[rid]
        self._rtree.delete(rid, self.shapes[oid].bbox)
