"""Tile38's JSON reply shape: ``{"ok":true,...,"elapsed":"1.2µs"}``.

``dumps`` serialises plain Python values with Go-style numbers (``33`` rather than
``33.0``) and splices ``Raw`` values (GeoJSON text already in canonical form) in as
they are. No I/O.
"""

from __future__ import annotations

import json
import math
from typing import Any

_escape = json.encoder.encode_basestring


class Raw(str):
    """JSON text to splice in verbatim."""

    __slots__ = ()


def num(x: float) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return str(x)
    if not math.isfinite(x):
        return "0"
    if x.is_integer() and abs(x) < 2**53:
        return str(int(x))
    r = repr(x)
    if "e" in r:
        a = abs(x)
        if 1e-6 <= a < 1e21:
            r = format(x, "f").rstrip("0").rstrip(".")
        else:
            mant, _, exp = r.partition("e")
            sign = exp[0] if exp[0] in "+-" else "+"
            r = f"{mant}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"
    return r


def dumps(value: Any) -> str:
    parts: list[str] = []
    _dump(value, parts)
    return "".join(parts)


def _dump(value: Any, out: list[str]) -> None:
    if isinstance(value, Raw):
        out.append(value)
    elif isinstance(value, str):
        out.append(_escape(value))
    elif value is None:
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int | float):
        out.append(num(value))
    elif isinstance(value, dict):
        out.append("{")
        first = True
        for k, v in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(_escape(str(k)))
            out.append(":")
            _dump(v, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _dump(v, out)
        out.append("]")
    else:
        raise TypeError(f"cannot serialise {type(value).__name__}")


def elapsed(seconds: float) -> str:
    """Go-style duration text, as Tile38 prints ``elapsed``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3f}µs".replace(".000µs", "µs")
    if seconds < 1:
        return f"{seconds * 1e3:.6f}".rstrip("0").rstrip(".") + "ms"
    return f"{seconds:.6f}".rstrip("0").rstrip(".") + "s"


def ok_reply(body: dict[str, Any] | None, seconds: float) -> str:
    parts = ['{"ok":true']
    if body:
        for k, v in body.items():
            parts.append(",")
            parts.append(_escape(k))
            parts.append(":")
            _dump(v, parts)
    parts.append(',"elapsed":"')
    parts.append(elapsed(seconds))
    parts.append('"}')
    return "".join(parts)


def err_reply(message: str, seconds: float) -> str:
    return f'{{"ok":false,"err":{_escape(message)},"elapsed":"{elapsed(seconds)}"}}'
