"""Number formatting the way Tile38 prints numbers.

Owns two functions and nothing else:

- ``fnum`` prints a float like Go's ``strconv.FormatFloat(x, 'f', -1, 64)``, which is
  how Tile38 prints coordinates, distances and field values in RESP replies and inside
  the GeoJSON it echoes: the shortest digits that read back as the same float, in
  positional notation, never with an exponent (``33.0`` -> ``33``, ``1e-07`` ->
  ``0.0000001``).
- ``json_num`` prints a number as a JSON token the way Go's ``encoding/json`` does:
  integers for integer-valued floats, shortest digits otherwise, and an exponent only
  for magnitudes below 1e-6 or from 1e21 up (``1e-7``, ``1e+21``).

Python's ``repr`` already produces the shortest round-trip digits; only the notation
differs from Go's, so both functions rewrite ``repr``'s output rather than
re-deriving digits.

Imports only the standard library.
"""

from __future__ import annotations

import math
from decimal import Decimal

_MAX_EXACT_INT = 2.0**53


def fnum(x: float) -> str:
    """Go's ``'f', -1`` formatting: shortest round-trip digits, positional notation.

    Infinities and NaN print as Go prints them (``+Inf``, ``-Inf``, ``NaN``); negative
    zero keeps its sign (``-0``), as in Go.
    """
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"

    text = repr(x)
    if "e" in text:
        # repr chose scientific notation; Decimal keeps exactly its digits and
        # writes them out positionally.
        return format(Decimal(text), "f")
    if text.endswith(".0"):
        return text[:-2]
    return text


def json_num(x: float) -> str:
    """The JSON token Go's ``encoding/json`` writes for ``x``.

    Python ints print as they are. Raises ``ValueError`` for NaN and infinities
    (JSON cannot hold them) and ``TypeError`` for bools.
    """
    if isinstance(x, bool):
        raise TypeError("bool is not a JSON number")
    if isinstance(x, int):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{x!r} has no JSON representation")

    magnitude = abs(x)
    if magnitude != 0.0 and (magnitude < 1e-6 or magnitude >= 1e21):
        # repr uses scientific notation in both ranges; Go writes the exponent
        # with at least one digit, so "e-07" becomes "e-7" (and "e+21" stays).
        text = repr(x)
        mantissa, _, exponent = text.partition("e")
        sign, digits = exponent[0], exponent[1:].lstrip("0")
        return f"{mantissa}e{sign}{digits}"
    if x.is_integer() and magnitude <= _MAX_EXACT_INT:
        return "-0" if math.copysign(1.0, x) < 0 and x == 0 else str(int(x))
    return fnum(x)
