"""Query areas: the regions WITHIN, INTERSECTS, NEARBY and fences search.

Owns one class per area kind (``Bounds``, ``Circle``, ``Sector``, ``ShapeArea``) and
the constructors that turn Tile38's other area forms into bounds (``tile``,
``quadkey``, ``hash_bounds``). Every area offers the same interface (``Area``):

- ``bbox``: ``(minlon, minlat, maxlon, maxlat)``, guaranteed to hold the whole area
  (for the spatial index's candidate search);
- ``geom``: a prepared shapely geometry (x = longitude, y = latitude);
- ``contains_points(lats, lons)``: vectorized membership of points;
- ``intersects_geom(g)``: the object ``g`` touches the area;
- ``contains_geom(g)``: the object ``g`` lies within the area (WITHIN).

Membership of points is exact where the shape is defined by distance: a point is in
a ``Circle`` when its haversine distance (``distance.haversine_m``, the NEARBY
distance) is at most the radius, and in a ``Sector`` when it is also within the
bearing range, measured clockwise from ``bearing1`` to ``bearing2``. Boundaries count
as inside everywhere: on the edges of bounds (Tile38's bounds are inclusive), on a
polygon's outline and on the outline of its holes (as Tile38 does; a point strictly
inside a hole is outside).

Limits:
- Circles and sectors test non-point objects against a polygon with one vertex per
  degree of arc, inscribed in the true curve: an object that only grazes the sliver
  between chord and arc (under 4e-5 of the radius) is missed. A circle also counts
  an object as intersecting when any of its vertices is within the radius, and as
  within when all of its vertices are (exact for points and MultiPoints).
- The polygons of circles and sectors use continuous longitudes (they may run past
  +-180), so near the antimeridian or around a pole they miss non-point objects on
  the far side; their ``bbox`` spans all longitudes there, and point membership
  stays exact.
- ``Bounds`` cannot cross the antimeridian: ``minlon > maxlon`` is rejected.
- Tiles go up to zoom 30 (quadkeys up to 30 digits).
- Point membership of circles and sectors uses numpy's sin/cos, which can differ
  from the scalar ``haversine_m`` in the last bit: a point within about 1e-9 m of
  the radius may fall on either side.

Errors: a latitude, longitude, radius, bearing, tile number or quadkey out of range
raises ``invalid argument '<value>'`` (Tile38's wording); bounds with min > max and
equal sector bearings raise their own messages.

Imports numpy, shapely, ``geofleetd.errors`` and sibling geometry modules; no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

from geofleetd.errors import GeofleetError, invalid_arg
from geofleetd.geometry.distance import (
    bbox_around,
    bearing_deg_np,
    destination_np,
    haversine_m_np,
)
from geofleetd.geometry.fmt import fnum
from geofleetd.geometry.geohash import decode_bbox
from geofleetd.geometry.geojson import GeoShape

BBox = tuple[float, float, float, float]
BoolArray = NDArray[np.bool_]

MAX_TILE_ZOOM = 30
STEPS_PER_DEGREE = 1
_MERCATOR_MAX_LAT = math.degrees(math.atan(math.sinh(math.pi)))


class Area(Protocol):
    """What every query area offers."""

    @property
    def bbox(self) -> BBox: ...

    @property
    def geom(self) -> Any: ...

    def contains_points(self, lats: ArrayLike, lons: ArrayLike) -> BoolArray: ...

    def intersects_geom(self, g: Any) -> bool: ...

    def contains_geom(self, g: Any) -> bool: ...


@dataclass(frozen=True, slots=True)
class Bounds:
    """An inclusive lat/lon rectangle."""

    minlat: float
    minlon: float
    maxlat: float
    maxlon: float
    bbox: BBox = field(init=False, repr=False, compare=False)
    _geom: Any = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        for lat in (self.minlat, self.maxlat):
            _check_lat(lat)
        for lon in (self.minlon, self.maxlon):
            _check_lon(lon)
        if self.minlat > self.maxlat:
            raise GeofleetError(
                f"invalid bounds: min latitude {fnum(self.minlat)} is above "
                f"max latitude {fnum(self.maxlat)}"
            )
        if self.minlon > self.maxlon:
            raise GeofleetError(
                f"invalid bounds: min longitude {fnum(self.minlon)} is east of "
                f"max longitude {fnum(self.maxlon)} (bounds crossing the "
                "antimeridian are not supported)"
            )

        bbox = (
            float(self.minlon),
            float(self.minlat),
            float(self.maxlon),
            float(self.maxlat),
        )
        object.__setattr__(self, "bbox", bbox)

    @property
    def geom(self) -> Any:
        """The prepared rectangle, built on first use (point queries never need it)."""
        if self._geom is None:
            object.__setattr__(self, "_geom", _prepared(_box_geom(*self.bbox)))
        return self._geom

    def contains_points(self, lats: ArrayLike, lons: ArrayLike) -> BoolArray:
        lat = np.asarray(lats, dtype=np.float64)
        lon = np.asarray(lons, dtype=np.float64)
        inside: BoolArray = (
            (lat >= self.minlat)
            & (lat <= self.maxlat)
            & (lon >= self.minlon)
            & (lon <= self.maxlon)
        )
        return inside

    def intersects_geom(self, g: Any) -> bool:
        return bool(shapely.intersects(self.geom, g))

    def contains_geom(self, g: Any) -> bool:
        return bool(shapely.covers(self.geom, g))


@dataclass(frozen=True, slots=True)
class Circle:
    """Every point within ``meters`` (great-circle) of ``(lat, lon)``."""

    lat: float
    lon: float
    meters: float
    bbox: BBox = field(init=False, repr=False, compare=False)
    geom: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_lat(self.lat)
        _check_lon(self.lon)
        _check_meters(self.meters)

        object.__setattr__(self, "bbox", _bbox_around(self.lat, self.lon, self.meters))
        if self.meters == 0:
            geom = shapely.Point(self.lon, self.lat)
        else:
            geom = shapely.Polygon(_arc(self.lat, self.lon, self.meters, 0.0, 360.0))
        object.__setattr__(self, "geom", _prepared(geom))

    def contains_points(self, lats: ArrayLike, lons: ArrayLike) -> BoolArray:
        distances = haversine_m_np(self.lat, self.lon, lats, lons)
        inside: BoolArray = distances <= self.meters
        return inside

    def intersects_geom(self, g: Any) -> bool:
        coords = shapely.get_coordinates(g)
        if len(coords) and self.contains_points(coords[:, 1], coords[:, 0]).any():
            return True
        if _is_pointlike(g):
            return False
        return bool(shapely.intersects(self.geom, g))

    def contains_geom(self, g: Any) -> bool:
        coords = shapely.get_coordinates(g)
        return bool(
            len(coords) and self.contains_points(coords[:, 1], coords[:, 0]).all()
        )


@dataclass(frozen=True, slots=True)
class Sector:
    """The part of a circle swept clockwise from ``bearing1`` to ``bearing2``.

    Bearings are degrees clockwise from north, any finite value (taken modulo 360).
    Equal bearings are an error, as in Tile38; bearings equal only modulo 360 (0 and
    360) sweep the whole circle.
    """

    lat: float
    lon: float
    meters: float
    bearing1: float
    bearing2: float
    bbox: BBox = field(init=False, repr=False, compare=False)
    geom: Any = field(init=False, repr=False, compare=False)
    sweep: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_lat(self.lat)
        _check_lon(self.lon)
        _check_meters(self.meters)
        for bearing in (self.bearing1, self.bearing2):
            if not math.isfinite(bearing):
                raise invalid_arg(fnum(bearing))
        if self.bearing1 == self.bearing2:
            raise GeofleetError(
                f"equal bearings ({fnum(self.bearing1)} == {fnum(self.bearing2)}),"
                " use CIRCLE instead"
            )

        sweep = (self.bearing2 - self.bearing1) % 360.0 or 360.0
        object.__setattr__(self, "sweep", sweep)
        object.__setattr__(self, "bbox", _bbox_around(self.lat, self.lon, self.meters))
        if self.meters == 0:
            geom = shapely.Point(self.lon, self.lat)
        else:
            arc = _arc(self.lat, self.lon, self.meters, self.bearing1, sweep)
            if sweep < 360.0:
                center = np.array([[self.lon, self.lat]])
                arc = np.concatenate([center, arc, center])
            geom = shapely.Polygon(arc)
        object.__setattr__(self, "geom", _prepared(geom))

    def contains_points(self, lats: ArrayLike, lons: ArrayLike) -> BoolArray:
        lat = np.asarray(lats, dtype=np.float64)
        lon = np.asarray(lons, dtype=np.float64)
        distances = haversine_m_np(self.lat, self.lon, lat, lon)
        offsets = np.mod(
            bearing_deg_np(self.lat, self.lon, lat, lon) - self.bearing1, 360
        )
        inside: BoolArray = (distances <= self.meters) & (
            (offsets <= self.sweep) | (distances == 0)
        )
        return inside

    def intersects_geom(self, g: Any) -> bool:
        if _is_pointlike(g):
            coords = shapely.get_coordinates(g)
            return bool(self.contains_points(coords[:, 1], coords[:, 0]).any())
        return bool(shapely.intersects(self.geom, g))

    def contains_geom(self, g: Any) -> bool:
        if _is_pointlike(g):
            coords = shapely.get_coordinates(g)
            return bool(
                len(coords) and self.contains_points(coords[:, 1], coords[:, 0]).all()
            )
        return bool(shapely.covers(self.geom, g))


@dataclass(frozen=True, slots=True)
class ShapeArea:
    """A GeoJSON object used as an area (usually a Polygon or MultiPolygon).

    Points on the outline, including the outline of a hole, are inside; points
    strictly inside a hole are not. Any other kind of object works too: a point is
    then "inside" a LineString when it lies on it.
    """

    shape: GeoShape
    bbox: BBox = field(init=False, repr=False, compare=False)
    geom: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bbox", self.shape.bbox)
        object.__setattr__(self, "geom", _prepared(self.shape.geom))

    def contains_points(self, lats: ArrayLike, lons: ArrayLike) -> BoolArray:
        lat = np.asarray(lats, dtype=np.float64)
        lon = np.asarray(lons, dtype=np.float64)
        inside: BoolArray = np.asarray(
            shapely.intersects_xy(self.geom, lon, lat), dtype=np.bool_
        )
        return inside

    def intersects_geom(self, g: Any) -> bool:
        return bool(shapely.intersects(self.geom, g))

    def contains_geom(self, g: Any) -> bool:
        return bool(shapely.covers(self.geom, g))


def area_from_geojson(shape: GeoShape) -> ShapeArea:
    """Wrap a parsed GeoJSON object as an area."""
    return ShapeArea(shape)


def tile(x: int, y: int, z: int) -> Bounds:
    """The bounds of slippy-map tile ``x``/``y`` at zoom ``z`` (Web Mercator)."""
    if not 0 <= z <= MAX_TILE_ZOOM:
        raise invalid_arg(str(z))
    size = 1 << z
    for value in (x, y):
        if not 0 <= value < size:
            raise invalid_arg(str(value))

    minlon = x / size * 360.0 - 180.0
    maxlon = (x + 1) / size * 360.0 - 180.0
    maxlat = _mercator_lat(y / size)
    minlat = _mercator_lat((y + 1) / size)
    return Bounds(minlat, minlon, maxlat, maxlon)


def quadkey(key: str) -> Bounds:
    """The bounds of the tile named by a Bing quadkey (digits 0-3, one per zoom).

    The empty key names zoom 0, the whole Web Mercator map.
    """
    if len(key) > MAX_TILE_ZOOM or any(ch not in "0123" for ch in key):
        raise invalid_arg(key)
    x = y = 0
    for ch in key:
        digit = ord(ch) - ord("0")
        x = (x << 1) | (digit & 1)
        y = (y << 1) | (digit >> 1)
    return tile(x, y, len(key))


def hash_bounds(geohash: str) -> Bounds:
    """The cell of a geohash as bounds."""
    return Bounds(*decode_bbox(geohash))


def _mercator_lat(fraction: float) -> float:
    """Latitude of the horizontal tile edge at ``fraction`` of the map from the top."""
    lat = math.degrees(math.atan(math.sinh(math.pi * (1.0 - 2.0 * fraction))))
    return max(-_MERCATOR_MAX_LAT, min(_MERCATOR_MAX_LAT, lat))


def _check_lat(lat: float) -> None:
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise invalid_arg(fnum(lat))


def _check_lon(lon: float) -> None:
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise invalid_arg(fnum(lon))


def _check_meters(meters: float) -> None:
    if not (math.isfinite(meters) and meters >= 0.0):
        raise invalid_arg(fnum(meters))


def _bbox_around(lat: float, lon: float, meters: float) -> BBox:
    minlat, minlon, maxlat, maxlon = bbox_around(lat, lon, meters)
    return minlon, minlat, maxlon, maxlat


def _arc(
    lat: float, lon: float, meters: float, start: float, sweep: float
) -> NDArray[np.float64]:
    """(lon, lat) vertices along the arc, longitudes kept continuous."""
    steps = max(2, math.ceil(sweep * STEPS_PER_DEGREE))
    bearings = start + sweep * np.arange(steps + 1) / steps
    vlats, vlons = destination_np(lat, lon, meters, bearings)
    vlons = lon + (np.mod(vlons - lon + 180.0, 360.0) - 180.0)
    return np.column_stack([vlons, vlats])


def _box_geom(minx: float, miny: float, maxx: float, maxy: float) -> Any:
    """A box as a polygon, or as a line or point when it is degenerate."""
    if minx == maxx and miny == maxy:
        return shapely.Point(minx, miny)
    if minx == maxx or miny == maxy:
        return shapely.LineString([(minx, miny), (maxx, maxy)])
    return shapely.box(minx, miny, maxx, maxy)


def _is_pointlike(g: Any) -> bool:
    return bool(shapely.get_type_id(g) in (0, 4))


def _prepared(geom: Any) -> Any:
    shapely.prepare(geom)
    return geom
