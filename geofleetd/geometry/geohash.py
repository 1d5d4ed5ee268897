"""Standard base-32 geohashes: encode a position, decode a hash to its cell.

Owns the geohash alphabet and the bisection that maps between positions and cells.
A hash alternates longitude and latitude bits, longitude first; each bit halves the
current range, and a value on the midpoint goes to the upper half. Midpoints of
repeated halvings of [-90, 90] and [-180, 180] are exact binary fractions, so the
bisection compares against the true cell edges with no rounding.

Limits: precision is 1-12 characters when encoding (12 characters is 60 bits, finer
than a float64 latitude needs); decoding accepts up to 24 characters, in either case.

Imports only ``geofleetd.errors``.
"""

from __future__ import annotations

import math

from geofleetd.errors import GeofleetError, invalid_arg

ALPHABET = "0123456789bcdefghjkmnpqrstuvwxyz"
MAX_PRECISION = 12
MAX_DECODE_LENGTH = 24

_VALUES = {ch: i for i, ch in enumerate(ALPHABET)}


def encode(lat: float, lon: float, precision: int = MAX_PRECISION) -> str:
    """The geohash of ``(lat, lon)`` with ``precision`` characters."""
    if isinstance(precision, bool) or not 1 <= precision <= MAX_PRECISION:
        raise invalid_arg(str(precision))
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise GeofleetError(f"invalid latitude {lat!r} for geohash")
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise GeofleetError(f"invalid longitude {lon!r} for geohash")

    lat_lo, lat_hi = -90.0, 90.0
    lon_lo, lon_hi = -180.0, 180.0
    chars: list[str] = []
    for _ in range(precision):
        value = 0
        for bit in range(5):
            value <<= 1
            if (len(chars) * 5 + bit) % 2 == 0:
                mid = (lon_lo + lon_hi) / 2
                if lon >= mid:
                    value |= 1
                    lon_lo = mid
                else:
                    lon_hi = mid
            else:
                mid = (lat_lo + lat_hi) / 2
                if lat >= mid:
                    value |= 1
                    lat_lo = mid
                else:
                    lat_hi = mid
        chars.append(ALPHABET[value])
    return "".join(chars)


def decode_bbox(geohash: str) -> tuple[float, float, float, float]:
    """The cell of ``geohash`` as ``(minlat, minlon, maxlat, maxlon)``."""
    text = geohash.lower()
    if not 1 <= len(text) <= MAX_DECODE_LENGTH or any(ch not in _VALUES for ch in text):
        raise invalid_arg(geohash)

    lat_lo, lat_hi = -90.0, 90.0
    lon_lo, lon_hi = -180.0, 180.0
    even = True
    for ch in text:
        value = _VALUES[ch]
        for shift in range(4, -1, -1):
            upper = (value >> shift) & 1
            if even:
                mid = (lon_lo + lon_hi) / 2
                if upper:
                    lon_lo = mid
                else:
                    lon_hi = mid
            else:
                mid = (lat_lo + lat_hi) / 2
                if upper:
                    lat_lo = mid
                else:
                    lat_hi = mid
            even = not even
    return lat_lo, lon_lo, lat_hi, lon_hi


def decode(geohash: str) -> tuple[float, float]:
    """The center of the cell of ``geohash`` as ``(lat, lon)``."""
    minlat, minlon, maxlat, maxlon = decode_bbox(geohash)
    return (minlat + maxlat) / 2, (minlon + maxlon) / 2
