"""Channel commands: SETCHAN DELCHAN PDELCHAN CHANS.

``SETCHAN name [META name value ...] [EX seconds] NEARBY|WITHIN|INTERSECTS key
[FENCE] ...`` defines a fence whose events are published to the pub/sub channel
``name`` (answer 1 when new, 0 when it replaced a channel of that name). Channel
definitions are change records in the log, so they survive a restart. The area of
``GET key id`` is resolved when the channel is created; its GeoJSON goes into the
record, so a restart restores the same area even if that object has moved or gone.

A channel set or deleted in the middle of a batch sees exactly the writes after
(or before) that command: the engine is told the position in the batch's notes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from geofleetd.commands.base import (
    Ctx,
    Json,
    WrongArgs,
    command,
    invalid,
    parse_float,
)
from geofleetd.commands.search import Query, parse_query
from geofleetd.geometry import areas
from geofleetd.store.collection import glob_match

if TYPE_CHECKING:
    from geofleetd.server.app import Server


class _Frozen:
    """Stands in for the database while a channel is restored from the log: every
    ``GET key id`` reads the area recorded when the channel was created."""

    def __init__(self, text: str) -> None:
        self.cols = self
        self.text = text

    def get(self, key: str) -> _Frozen:
        return self

    def object_json(self, oid: str) -> str:
        return self.text


def parse_meta_ex(
    ctx: Ctx, args: list[str], i: int, name: str
) -> tuple[dict[str, str], float | None, int]:
    """``[META name value ...] [EX seconds]`` of SETCHAN/SETHOOK at ``args[i]``:
    (meta, absolute expiry or None, index of the fence query)."""
    meta: dict[str, str] = {}
    expires_at: float | None = None
    while i < len(args):
        word = args[i].upper()
        if word == "META":
            if i + 2 >= len(args):
                raise WrongArgs(name)
            meta[args[i + 1]] = args[i + 2]
            i += 3
        elif word == "EX":
            if i + 1 >= len(args):
                raise WrongArgs(name)
            expires_at = ctx.now + parse_float(args[i + 1])
            i += 2
        else:
            break
    return meta, expires_at, i


def parse_fence_args(
    server: Server, args: list[str], area_json: str | None = None
) -> Query:
    """Parse a fence query (``NEARBY key ...``) outside of any client.

    ``area_json``: the recorded area of a ``GET key id`` (on replay).
    """
    from geofleetd.server.connection import ClientState

    db: Any = server.db if area_json is None else _Frozen(area_json)
    ctx = Ctx(db, server, ClientState(0, "fence"), time.time())
    if not args or args[0].upper() not in ("NEARBY", "WITHIN", "INTERSECTS"):
        raise invalid(args[0] if args else "")
    q = parse_query(ctx, args)
    q.fence = True
    return q


def _get_area_json(q: Query, args: list[str]) -> str | None:
    """The GeoJSON of an area given as ``GET key id`` (None for other areas)."""
    if isinstance(q.area, areas.ShapeArea) and any(
        a.upper() == "GET" for a in args[2:]
    ):
        return q.area.shape.text or None
    return None


@command("SETCHAN", write=True)
def cmd_setchan(ctx: Ctx, args: list[str]) -> object:
    if len(args) < 3:
        raise WrongArgs("setchan")
    name = args[1]
    meta, expires_at, i = parse_meta_ex(ctx, args, 2, "setchan")
    fence_args = args[i:]
    if not fence_args:
        raise WrongArgs("setchan")
    q = parse_fence_args(ctx.server, fence_args)

    engine = ctx.server.fences
    ctx.db.note(("chan", name, engine.channels.get(name)))
    created = engine.set_channel(
        name,
        q,
        fence_args,
        meta,
        expires_at,
        _get_area_json(q, fence_args),
        ctx.notes,
    )
    ctx.changes.append(engine.channel_record(name))
    return Json() if ctx.json else int(created)


@command("DELCHAN", write=True)
def cmd_delchan(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 2:
        raise WrongArgs("delchan")
    return _delete(ctx, [args[1]] if args[1] in ctx.server.fences.channels else [])


@command("PDELCHAN", write=True)
def cmd_pdelchan(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 2:
        raise WrongArgs("pdelchan")
    names = [n for n in ctx.server.fences.channels if glob_match(args[1], n)]
    return _delete(ctx, names)


def _delete(ctx: Ctx, names: list[str]) -> object:
    engine = ctx.server.fences
    for name in names:
        ctx.db.note(("chan", name, engine.channels[name]))
        engine.del_channel(name, ctx.notes)
        ctx.changes.append(["delchan", name])
    return Json() if ctx.json else len(names)


@command("CHANS")
def cmd_chans(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 2:
        raise WrongArgs("chans")
    engine = ctx.server.fences
    rows: list[Any] = []
    for name in sorted(engine.channels):
        if not glob_match(args[1], name):
            continue
        f = engine.channels[name]
        ttl = -1.0 if f.expires_at is None else max(0.0, f.expires_at - ctx.now)
        if ctx.json:
            rows.append(
                {
                    "name": name,
                    "key": f.key,
                    "ttl": round(ttl),
                    "endpoints": [f"local://{name}"],
                    "command": f.args,
                    "meta": f.meta,
                }
            )
        else:
            flat_meta: list[str] = []
            for k, v in f.meta.items():
                flat_meta += [k, v]
            rows.append([name, f.key, [f"local://{name}"], f.args, flat_meta])
    return Json(chans=rows) if ctx.json else rows
