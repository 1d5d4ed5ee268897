"""GeoJSON text in, validated shapes out.

Owns the one way GeoJSON enters the server: ``parse_geojson`` checks a document,
builds a shapely 2 geometry (x = longitude, y = latitude) and writes the canonical
compact text that is stored, logged and echoed back. ``point_json`` writes a point the
way Tile38 does. Every rejection is a ``GeofleetError`` whose message starts with
``invalid geojson:`` and names the reason.

Accepted: Point, MultiPoint, LineString, MultiLineString, Polygon (with holes),
MultiPolygon, GeometryCollection, Feature (geometry, properties, optional id) and
FeatureCollection, nested to at most 32 levels.

Canonical text (what Tile38 echoes for an object it stored):
- compact, no whitespace; ``type`` first, then the payload member (``coordinates``,
  ``geometries``, ``geometry`` or ``features``), then every other member in the order
  the client gave them; a Feature without ``properties`` gains
  ``"properties":{}``;
- coordinates printed as Go's ``strconv.FormatFloat(x, 'f', -1, 64)`` (``fmt.fnum``),
  all ordinates kept (``[-130,38,10]`` keeps its z); other numbers as Go's JSON
  encoder prints them (``fmt.json_num``); strings are kept as UTF-8.
Tile38 copies foreign members byte for byte (minus whitespace); here they are
re-encoded, so ``1.0`` in a property comes back as ``1`` and ``"\\u00e9"`` as ``"é"``.

The shape's ``bbox`` is ``(minlon, minlat, maxlon, maxlat)`` of the geometry, and its
``center`` is the middle of that box as ``(lat, lon)``, as Tile38's GET ... POINT
answers for a non-point object.

Limits:
- Rejected: broken JSON, NaN/Infinity tokens and numbers that overflow to infinity,
  unknown types, missing or ill-typed members, positions with fewer than 2 numbers,
  longitudes outside [-180, 180], latitudes outside [-90, 90], LineStrings with fewer
  than 2 positions, rings with fewer than 4 positions or not closed, empty
  geometries, multi-geometries and collections (nothing to locate), Features without
  a geometry, and polygons that shapely finds invalid (self-intersection, a hole
  outside its shell, overlapping parts of a MultiPolygon); the message carries
  shapely's reason.
- Antimeridian: coordinates are planar longitude/latitude, so a ring from 170 to
  -170 spans the long way round the globe. A ``bbox`` member whose west edge is
  east of its east edge (an antimeridian-crossing box) is rejected; split such
  objects into a MultiPolygon instead.
- Only x and y go into the shapely geometry; z and further ordinates live in
  ``text`` alone.

Imports numpy, shapely, ``geofleetd.errors`` and ``geometry.fmt``; no I/O.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from geofleetd.errors import GeofleetError
from geofleetd.geometry.fmt import fnum, json_num

MAX_DEPTH = 32
CACHE_SIZE = 64

GEOMETRY_KINDS = frozenset(
    {
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    }
)
KINDS = GEOMETRY_KINDS | {"Feature", "FeatureCollection"}

# The member holding each kind's content; the rest of the kinds use "coordinates".
_PAYLOAD = {
    "GeometryCollection": "geometries",
    "Feature": "geometry",
    "FeatureCollection": "features",
}

# A coordinate array whose values are all non-integral and at least this large in
# magnitude prints identically through json.dumps (Python's repr) and Go's 'f', -1.
_REPR_SAFE_MIN = 1e-4


@dataclass(frozen=True, slots=True)
class GeoShape:
    """A validated GeoJSON object: geometry, canonical text and derived facts."""

    geom: Any = field(compare=False)
    text: str
    kind: str
    bbox: tuple[float, float, float, float]
    center: tuple[float, float]
    properties: dict[str, Any] | None = field(default=None, compare=False)


def invalid(reason: str) -> GeofleetError:
    """The error for a rejected document."""
    return GeofleetError(f"invalid geojson: {reason}")


def parse_geojson(text: str, *, with_text: bool = True) -> GeoShape:
    """Validate ``text`` as GeoJSON and return its shape; see the module docstring.

    Writing the canonical text is about half the cost of parsing a large polygon
    (Python formats each float); a caller that only needs the geometry, such as a
    WITHIN ... OBJECT query area, passes ``with_text=False`` and gets ``text == ""``.
    The checks are the same either way.
    """
    try:
        doc = json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise invalid(f"malformed JSON ({exc.msg} at char {exc.pos})") from None
    except ValueError:
        # int() refuses integers of more than 4,300 digits.
        raise invalid("number too long") from None
    except RecursionError:
        raise invalid("nesting too deep") from None

    # A document without the words true/false cannot hold a bool anywhere, which
    # lets the numpy path trust that numeric arrays came from JSON numbers.
    trust_numeric = "true" not in text and "false" not in text
    parser = _Parser(trust_numeric, with_text)
    try:
        geom, canonical, kind, properties = parser.build(doc, 0, top=True)
    except RecursionError:
        raise invalid("nesting too deep") from None

    minlon, minlat, maxlon, maxlat = (float(v) for v in geom.bounds)
    return GeoShape(
        geom=geom,
        text=canonical,
        kind=kind,
        bbox=(minlon, minlat, maxlon, maxlat),
        center=((minlat + maxlat) / 2, (minlon + maxlon) / 2),
        properties=properties,
    )


@functools.lru_cache(maxsize=CACHE_SIZE)
def parse_geojson_cached(text: str, *, with_text: bool = True) -> GeoShape:
    """``parse_geojson`` behind a small LRU cache keyed by the exact text.

    For commands that send the same large polygon again and again (WITHIN ...
    OBJECT, fences). Shapes are immutable, so sharing them is safe. Errors are not
    cached.
    """
    return parse_geojson(text, with_text=with_text)


def point_json(lat: float, lon: float, z: float | None = None) -> str:
    """A GeoJSON Point as Tile38 writes it: longitude first, Go number format."""
    if z is None:
        return f'{{"type":"Point","coordinates":[{fnum(lon)},{fnum(lat)}]}}'
    return f'{{"type":"Point","coordinates":[{fnum(lon)},{fnum(lat)},{fnum(z)}]}}'


def _reject_constant(token: str) -> Any:
    raise invalid(f"{token} is not a number")


def _parse_int(token: str) -> float:
    # Go reads "-0" as negative zero and writes it back as "-0"; a Python int
    # would lose the sign and make the canonical text change on a second parse.
    return -0.0 if token == "-0" else int(token)


class _Parser:
    """One parse: walks the decoded document, checking and writing as it goes."""

    __slots__ = ("trust_numeric", "with_text")

    def __init__(self, trust_numeric: bool, with_text: bool) -> None:
        self.trust_numeric = trust_numeric
        self.with_text = with_text

    def build(
        self, doc: Any, depth: int, top: bool = False
    ) -> tuple[Any, str, str, dict[str, Any] | None]:
        """(geometry, canonical text, kind, properties) of one GeoJSON object."""
        if depth > MAX_DEPTH:
            raise invalid("nesting too deep")
        if type(doc) is not dict:
            raise invalid("expected a JSON object" if top else "expected an object")
        if "type" not in doc:
            raise invalid("missing type")
        kind = doc["type"]
        if type(kind) is not str:
            raise invalid("type must be a string")
        if kind not in KINDS:
            raise invalid(f"unknown type '{kind}'")

        payload_key = _PAYLOAD.get(kind, "coordinates")
        if payload_key not in doc:
            raise invalid(f"{kind} has no {payload_key}")
        payload = doc[payload_key]
        properties: dict[str, Any] | None = None

        if kind == "Feature":
            geom, payload_text = self._feature_geometry(payload, depth)
            properties = _feature_properties(doc)
        elif kind == "FeatureCollection":
            geom, payload_text = self._collection(payload, depth, features=True)
        elif kind == "GeometryCollection":
            geom, payload_text = self._collection(payload, depth, features=False)
        else:
            geom, payload_text = self._coordinates(kind, payload)

        if "bbox" in doc:
            _check_bbox(doc["bbox"])
        if (
            kind == "Feature"
            and "id" in doc
            and type(doc["id"]) not in (str, int, float)
        ):
            raise invalid("Feature id must be a string or a number")

        # Foreign members are written even when the text is not wanted: writing
        # them is what rejects a number that overflowed to infinity.
        parts = [f'{{"type":{_dump(kind)},"{payload_key}":{payload_text}']
        for key, value in doc.items():
            if key != "type" and key != payload_key:
                parts.append(f",{_dump(key)}:{_dump(value)}")
        if not self.with_text:
            return geom, "", kind, properties
        if kind == "Feature" and "properties" not in doc:
            parts.append(',"properties":{}')
        parts.append("}")
        return geom, "".join(parts), kind, properties

    def _feature_geometry(self, payload: Any, depth: int) -> tuple[Any, str]:
        if payload is None:
            raise invalid("Feature has a null geometry")
        geom, text, kind, _ = self.build(payload, depth + 1)
        if kind not in GEOMETRY_KINDS:
            raise invalid(f"a Feature's geometry cannot be a {kind}")
        return geom, text

    def _collection(self, payload: Any, depth: int, features: bool) -> tuple[Any, str]:
        what = "features" if features else "geometries"
        if type(payload) is not list:
            raise invalid(f"{what} must be an array")
        if not payload:
            raise invalid(f"empty {what}")
        geoms = []
        texts = []
        for member in payload:
            geom, text, kind, _ = self.build(member, depth + 1)
            if features and kind != "Feature":
                raise invalid(f"features must be Features, not {kind}")
            if not features and kind not in GEOMETRY_KINDS:
                raise invalid(f"geometries must be geometries, not {kind}")
            geoms.append(geom)
            texts.append(text)
        return shapely.GeometryCollection(geoms), "[" + ",".join(texts) + "]"

    def _coordinates(self, kind: str, coords: Any) -> tuple[Any, str]:
        if kind == "Point":
            _check_position(coords)
            text = _position_text(coords) if self.with_text else ""
            return shapely.Point(coords[0], coords[1]), text
        if kind == "MultiPoint":
            xy, text = self._positions(coords, "MultiPoint", minimum=1)
            return shapely.MultiPoint(xy), text
        if kind == "LineString":
            xy, text = self._positions(coords, "LineString", minimum=2)
            return shapely.LineString(xy), text
        if kind == "Polygon":
            return self._polygon(coords, "Polygon")

        parts = _nonempty_list(coords, kind)
        texts = []
        geoms = []
        for part in parts:
            if kind == "MultiLineString":
                xy, text = self._positions(part, "LineString", minimum=2)
                geoms.append(shapely.LineString(xy))
            else:
                polygon, text = self._polygon(part, "MultiPolygon part", check=False)
                geoms.append(polygon)
            texts.append(text)
        text = "[" + ",".join(texts) + "]"
        if kind == "MultiLineString":
            return shapely.MultiLineString(geoms), text
        multi = shapely.MultiPolygon(geoms)
        _check_valid(multi, "MultiPolygon")
        return multi, text

    def _polygon(self, rings: Any, what: str, check: bool = True) -> tuple[Any, str]:
        rings = _nonempty_list(rings, what)
        arrays = []
        texts = []
        for ring in rings:
            xy, text = self._positions(ring, "ring", minimum=4)
            if ring[0] != ring[-1]:
                raise invalid("ring is not closed (first and last positions differ)")
            arrays.append(xy)
            texts.append(text)
        polygon = shapely.Polygon(arrays[0], arrays[1:])
        if check:
            _check_valid(polygon, what)
        return polygon, "[" + ",".join(texts) + "]"

    def _positions(
        self, seq: Any, what: str, minimum: int
    ) -> tuple[NDArray[np.float64], str]:
        """Checks an array of positions; returns its x/y array and its text."""
        if type(seq) is not list:
            raise invalid(f"{what} coordinates must be an array of positions")
        if len(seq) < minimum:
            if minimum == 1:
                raise invalid(f"empty {what}")
            raise invalid(f"{what} needs at least {minimum} positions")

        fast = self._positions_fast(seq)
        if fast is not None:
            return fast

        for position in seq:
            _check_position(position)
        xy = np.array([(p[0], p[1]) for p in seq], dtype=np.float64)
        if not self.with_text:
            return xy, ""
        return xy, "[" + ",".join(_position_text(p) for p in seq) + "]"

    def _positions_fast(self, seq: list[Any]) -> tuple[NDArray[np.float64], str] | None:
        """The numpy path for well-formed arrays; None sends the caller to the
        per-position path, which finds and names any problem."""
        if not self.trust_numeric:
            return None
        try:
            raw = np.array(seq)
        except (ValueError, OverflowError, TypeError):
            return None
        if raw.ndim != 2 or raw.shape[1] < 2 or raw.dtype.kind not in "fi":
            return None

        values = raw.astype(np.float64, copy=False)
        lon = values[:, 0]
        lat = values[:, 1]
        if not (
            np.isfinite(values).all()
            and lon.min() >= -180.0
            and lon.max() <= 180.0
            and lat.min() >= -90.0
            and lat.max() <= 90.0
        ):
            return None

        xy = np.ascontiguousarray(values[:, :2])
        if not self.with_text:
            return xy, ""
        if raw.dtype.kind == "f" and not np.any(
            (values == np.trunc(values)) | (np.abs(values) < _REPR_SAFE_MIN)
        ):
            return xy, json.dumps(seq, separators=(",", ":"))
        rows = ("[" + ",".join(map(fnum, row)) + "]" for row in values.tolist())
        return xy, "[" + ",".join(rows) + "]"


def _nonempty_list(value: Any, what: str) -> list[Any]:
    if type(value) is not list:
        raise invalid(f"{what} coordinates must be an array")
    if not value:
        raise invalid(f"empty {what}")
    return value


def _check_position(position: Any) -> None:
    if type(position) is not list or len(position) < 2:
        raise invalid("a position must be an array of at least 2 numbers")
    for value in position:
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                raise invalid("coordinate out of the float range")
        elif kind is not int:
            raise invalid("coordinates must be numbers")
    lon, lat = position[0], position[1]
    if not -180 <= lon <= 180:
        raise invalid(f"longitude {fnum(lon)} out of range [-180, 180]")
    if not -90 <= lat <= 90:
        raise invalid(f"latitude {fnum(lat)} out of range [-90, 90]")


def _position_text(position: list[float]) -> str:
    return "[" + ",".join(map(fnum, position)) + "]"


def _check_valid(geom: Any, what: str) -> None:
    if not shapely.is_valid(geom):
        raise invalid(f"{what} is not valid: {shapely.is_valid_reason(geom)}")


def _check_bbox(bbox: Any) -> None:
    if (
        type(bbox) is not list
        or len(bbox) not in (4, 6)
        or any(type(v) not in (int, float) for v in bbox)
    ):
        raise invalid("bbox must be an array of 4 or 6 numbers")
    half = len(bbox) // 2
    if bbox[0] > bbox[half]:
        raise invalid(
            "bbox crosses the antimeridian (west > east), which is not supported"
        )


def _feature_properties(doc: dict[str, Any]) -> dict[str, Any]:
    properties = doc.get("properties")
    if properties is None:
        return {}
    if type(properties) is not dict:
        raise invalid("properties must be an object or null")
    return properties


def _dump(value: Any) -> str:
    """Compact JSON for any decoded value, numbers in Go's JSON format."""
    kind = type(value)
    if kind is str:
        text = json.dumps(value, ensure_ascii=False)
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                # A lone surrogate (from a "\ud800" escape) cannot be sent as
                # UTF-8; keep it escaped.
                text = json.dumps(value)
        return text
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        if not math.isfinite(value):
            raise invalid("number out of the float range")
        return json_num(value)
    if kind is list:
        return "[" + ",".join(map(_dump, value)) + "]"
    items = (f"{_dump(k)}:{_dump(v)}" for k, v in value.items())
    return "{" + ",".join(items) + "}"


def rect_ring(
    minlat: float, minlon: float, maxlat: float, maxlon: float
) -> list[list[float]]:
    """The closed lon/lat ring of a rectangle, counter-clockwise from south-west."""
    return [
        [minlon, minlat],
        [maxlon, minlat],
        [maxlon, maxlat],
        [minlon, maxlat],
        [minlon, minlat],
    ]
