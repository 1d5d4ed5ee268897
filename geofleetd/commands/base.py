"""What every command handler shares: the context, the registry, argument helpers.

A handler is ``def cmd_name(ctx: Ctx, args: list[str]) -> object``. It parses its
arguments, changes the store, and returns a reply: a RESP value (see
``protocol.resp.encode``) in RESP mode, or a ``Json`` body in JSON mode. State changes
are reported by appending change records to ``ctx.changes`` (see docs/internals.md)
and undo entries to the database journal; handlers never write the log.

Errors are raised as ``GeofleetError``; ``WrongArgs`` renders as Redis-style
``wrong number of arguments for 'x' command`` in RESP mode and Tile38's ``invalid
number of arguments`` in JSON mode.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from geofleetd.errors import GeofleetError
from geofleetd.geometry.fmt import fnum
from geofleetd.protocol.jsonout import Raw
from geofleetd.store.database import Database

if TYPE_CHECKING:
    from geofleetd.server.app import Server
    from geofleetd.server.connection import ClientState


class WrongArgs(GeofleetError):
    def __init__(self, command: str) -> None:
        super().__init__(f"wrong number of arguments for '{command.lower()}' command")
        self.command = command.lower()


def invalid(arg: str) -> GeofleetError:
    return GeofleetError(f"invalid argument '{arg}'")


class Json(dict[str, Any]):
    """A JSON-mode reply body; the connection adds ``ok`` and ``elapsed``."""


@dataclass(slots=True)
class Ctx:
    db: Database
    server: Server
    client: ClientState
    now: float
    changes: list[list[Any]] = field(default_factory=list)
    # fence notes: (command, key, id, old record or None, new record or None,
    # new fields or None, old fields or None); see fences/engine.py
    notes: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def json(self) -> bool:
        return self.client.json


Handler = Callable[[Ctx, list[str]], object]


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    handler: Handler
    write: bool


COMMANDS: dict[str, Spec] = {}


def command(*names: str, write: bool = False) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for name in names:
            COMMANDS[name.upper()] = Spec(name.lower(), fn, write)
            COMMANDS[name.lower()] = COMMANDS[name.upper()]
        return fn

    return deco


def lookup(name: str) -> Spec | None:
    spec = COMMANDS.get(name)
    if spec is None:
        spec = COMMANDS.get(name.upper())
    return spec


# -- argument parsing ------------------------------------------------------------


def loose_number(s: str) -> bool:
    """Text Python's float() takes but a protocol should not: ``1_0``, `` 1``,
    non-ASCII digits."""
    return "_" in s or not s.isascii() or s != s.strip()


def parse_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise invalid(s) from None
    if not math.isfinite(v) or loose_number(s):
        raise invalid(s)
    return v


def parse_int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise invalid(s) from None


def parse_lat(s: str) -> float:
    v = parse_float(s)
    if not -90.0 <= v <= 90.0:
        raise invalid(s)
    return v


def parse_lon(s: str) -> float:
    v = parse_float(s)
    if not -180.0 <= v <= 180.0:
        raise invalid(s)
    return v


def field_value(s: str) -> float | str:
    """Fields hold numbers when the text is a finite number, else the text."""
    try:
        v = float(s)
    except ValueError:
        return s
    if loose_number(s):
        return s
    if not math.isfinite(v):
        raise invalid(s)  # NaN and infinities are refused, as for coordinates
    return v


def field_text(v: float | str) -> str:
    return fnum(v) if isinstance(v, float) else v


def field_json(v: float | str) -> float | str:
    """A field value for a JSON-mode reply.

    Numbers stay numbers. A string that holds a JSON object or array (what a client
    sends for a structured field) is spliced in as JSON, as Tile38 does; any other
    string is a JSON string.
    """
    if isinstance(v, str) and v[:1] in ("{", "[") and _is_json_document(v):
        return Raw(v)
    return v


def _is_json_document(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def fields_json(fields: dict[str, float | str]) -> dict[str, float | str]:
    """Fields as a name-sorted dict for a JSON-mode reply."""
    return {name: field_json(fields[name]) for name in sorted(fields)}


def fields_resp(fields: dict[str, float | str] | None) -> list[str]:
    """Fields as a flat, name-sorted [name, value, ...] list for RESP."""
    if not fields:
        return []
    out: list[str] = []
    for name in sorted(fields):
        out.append(name)
        out.append(field_text(fields[name]))
    return out
