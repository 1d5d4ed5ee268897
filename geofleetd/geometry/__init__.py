"""Geometry: pure functions and values, no I/O, no asyncio, no logging.

Modules, lowest first (each imports only those above it, plus ``geofleetd.errors``):

- ``fmt``: Go-style number formatting (``fnum`` for coordinates, ``json_num``).
- ``geohash``: base-32 geohash encode/decode.
- ``distance``: the spherical Earth (R = 6,371 km): haversine, bearing,
  destination, ``bbox_around``.
- ``geojson``: GeoJSON validation into ``GeoShape`` (shapely geometry + canonical
  text), ``point_json``.
- ``areas``: query areas (``Bounds``, ``Circle``, ``Sector``, ``ShapeArea``,
  ``tile``, ``quadkey``, ``hash_bounds``) with vectorized point membership.

Coordinates: shapely geometries use x = longitude, y = latitude. Functions taking
separate numbers take latitude first (``lat, lon``), as Tile38's commands do. Boxes
are ``(minlon, minlat, maxlon, maxlat)`` when they are called ``bbox`` and
``(minlat, minlon, maxlat, maxlon)`` in geohash and ``bbox_around`` results.
"""
