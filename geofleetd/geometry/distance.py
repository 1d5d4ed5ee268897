"""Great-circle distances on a spherical Earth, and the boxes around them.

Owns the Earth model (a sphere of radius 6,371,000 m, the one Tile38 uses) and every
distance-like computation built on it: haversine distance (scalar and numpy
vectorized), initial bearing, destination point, and a lat/lon box guaranteed to hold
every point within a distance.

The scalar haversine performs the same operations in the same order as Tile38's
nearest-neighbour distance, so on the same inputs it gives the same float (NEARBY
... DISTANCE prints all digits). The numpy version may differ from it in the last
bit.

Limits:
- ``bbox_around`` never returns a box crossing the antimeridian: when the circle
  reaches past longitude +-180 the box spans all longitudes, and when it reaches a
  pole the box spans all longitudes and is clamped at that pole. The box is padded by
  a relative 1e-9 of the radius plus 1e-9 degrees, so rounding in the distance
  function cannot put an in-range point outside it.

Imports only numpy.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

EARTH_RADIUS_M = 6371e3
"""The sphere's radius in meters (Tile38's value)."""

_RAD = math.pi / 180
_DEG = 180 / math.pi
_HALF_PI = math.pi / 2
_PAD_DEG = 1e-9


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in meters between two positions in degrees.

    Pass the query center first and the object second: the operations then run in
    the order of Tile38's nearest-neighbour distance, which NEARBY ... DISTANCE
    prints, so the result matches it to the last bit (33,-115 -> 33.01,-115 gives
    1111.9492664448107).
    """
    phi_a = lat2 * math.pi / 180
    phi_b = lat1 * math.pi / 180
    half_dphi = math.sin((phi_a - phi_b) / 2)
    half_dlam = math.sin((lon2 * math.pi / 180 - lon1 * math.pi / 180) / 2)
    h = half_dphi * half_dphi + half_dlam * half_dlam * math.cos(phi_a) * math.cos(
        phi_b
    )
    return EARTH_RADIUS_M * (2 * math.asin(math.sqrt(min(h, 1.0))))


def haversine_m_np(
    lat: float, lon: float, lats: ArrayLike, lons: ArrayLike
) -> NDArray[np.float64]:
    """Distances in meters from ``(lat, lon)`` to each of ``(lats[i], lons[i])``.

    The same operations as ``haversine_m(lat, lon, lats[i], lons[i])``, done by
    numpy; its sin/cos may round differently from the C library's in the last bit.
    """
    phi_b = lat * math.pi / 180
    phi_a = np.asarray(lats, dtype=np.float64) * math.pi / 180
    lam_a = np.asarray(lons, dtype=np.float64) * math.pi / 180
    half_dphi = np.sin((phi_a - phi_b) / 2)
    half_dlam = np.sin((lam_a - lon * math.pi / 180) / 2)
    h = half_dphi * half_dphi + half_dlam * half_dlam * np.cos(phi_a) * math.cos(phi_b)
    result: NDArray[np.float64] = EARTH_RADIUS_M * (
        2 * np.arcsin(np.sqrt(np.minimum(h, 1.0)))
    )
    return result


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from the first position to the second, degrees in [0, 360)."""
    phi1 = lat1 * _RAD
    phi2 = lat2 * _RAD
    dlam = (lon2 - lon1) * _RAD
    y = math.sin(dlam) * math.cos(phi2)
    x = math.cos(phi1) * math.sin(phi2) - math.sin(phi1) * math.cos(phi2) * math.cos(
        dlam
    )
    return (math.atan2(y, x) * _DEG) % 360.0


def bearing_deg_np(
    lat: float, lon: float, lats: ArrayLike, lons: ArrayLike
) -> NDArray[np.float64]:
    """Initial bearings from ``(lat, lon)`` to each position, degrees in [0, 360)."""
    phi1 = lat * _RAD
    phi2 = np.asarray(lats, dtype=np.float64) * _RAD
    dlam = (np.asarray(lons, dtype=np.float64) - lon) * _RAD
    y = np.sin(dlam) * np.cos(phi2)
    x = math.cos(phi1) * np.sin(phi2) - math.sin(phi1) * np.cos(phi2) * np.cos(dlam)
    result: NDArray[np.float64] = np.mod(np.arctan2(y, x) * _DEG, 360.0)
    return result


def destination(
    lat: float, lon: float, meters: float, bearing: float
) -> tuple[float, float]:
    """The position reached from ``(lat, lon)`` going ``meters`` along ``bearing``.

    The bearing is in degrees clockwise from north; the longitude is normalized to
    [-180, 180).
    """
    delta = meters / EARTH_RADIUS_M
    theta = bearing * _RAD
    phi1 = lat * _RAD
    sin_phi2 = math.sin(phi1) * math.cos(delta) + math.cos(phi1) * math.sin(
        delta
    ) * math.cos(theta)
    phi2 = math.asin(max(-1.0, min(1.0, sin_phi2)))
    lam = lon * _RAD + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(phi1),
        math.cos(delta) - math.sin(phi1) * math.sin(phi2),
    )
    lon2 = (lam * _DEG + 540.0) % 360.0 - 180.0
    return phi2 * _DEG, lon2


def destination_np(
    lat: float, lon: float, meters: float, bearings: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``destination`` for many bearings at once: (lats, lons) arrays."""
    delta = meters / EARTH_RADIUS_M
    theta = np.asarray(bearings, dtype=np.float64) * _RAD
    phi1 = lat * _RAD
    sin_phi2 = math.sin(phi1) * math.cos(delta) + math.cos(phi1) * math.sin(
        delta
    ) * np.cos(theta)
    phi2 = np.arcsin(np.clip(sin_phi2, -1.0, 1.0))
    lam = lon * _RAD + np.arctan2(
        np.sin(theta) * math.sin(delta) * math.cos(phi1),
        math.cos(delta) - math.sin(phi1) * np.sin(phi2),
    )
    lons: NDArray[np.float64] = np.mod(lam * _DEG + 540.0, 360.0) - 180.0
    lats: NDArray[np.float64] = phi2 * _DEG
    return lats, lons


def bbox_around(
    lat: float, lon: float, meters: float
) -> tuple[float, float, float, float]:
    """A box ``(minlat, minlon, maxlat, maxlon)`` holding every point within
    ``meters`` of ``(lat, lon)``; see the module's Limits for poles and the
    antimeridian. Raises ``ValueError`` for a negative or non-finite distance.
    """
    if not (math.isfinite(meters) and meters >= 0.0):
        raise ValueError(f"distance must be finite and >= 0, not {meters!r}")

    radius = meters / EARTH_RADIUS_M * (1 + 1e-9)
    phi = lat * _RAD
    minlat = (phi - radius) * _DEG - _PAD_DEG
    maxlat = (phi + radius) * _DEG + _PAD_DEG
    if radius >= math.pi or maxlat >= 90.0 or minlat <= -90.0:
        return max(minlat, -90.0), -180.0, min(maxlat, 90.0), 180.0

    # The widest longitude reached by a spherical cap that holds no pole.
    ratio = math.sin(radius) / math.cos(phi)
    dlon = math.asin(min(ratio, 1.0)) * _DEG + _PAD_DEG
    minlon = lon - dlon
    maxlon = lon + dlon
    if minlon < -180.0 or maxlon > 180.0:
        return minlat, -180.0, maxlat, 180.0
    return minlat, minlon, maxlat, maxlon
