"""Webhook definitions: SETHOOK HOOKS DELHOOK PDELHOOK.

``SETHOOK name endpoint[,endpoint...] [META name value ...] [EX seconds] NEARBY|
WITHIN|INTERSECTS key FENCE ...`` stores a named fence whose events are meant for
external endpoints. Definitions are change records in the log (``sethook`` and
``delhook``), listed by HOOKS, removed by DELHOOK/PDELHOOK and FLUSHDB, and kept in
snapshots.

Limits: events are not delivered to the endpoints yet; geofleetd never connects to
a hook endpoint. TODO(#4): deliver hook events through an outbox committed in the
same transaction as the change that caused them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from geofleetd.commands.base import Ctx, Json, WrongArgs, command
from geofleetd.commands.fences import parse_fence_args, parse_meta_ex
from geofleetd.store.collection import glob_match


@dataclass
class Hook:
    name: str
    endpoints: list[str]
    args: list[str]
    key: str
    meta: dict[str, str] = field(default_factory=dict)
    expires_at: float | None = None

    def record(self) -> list[Any]:
        return [
            "sethook",
            self.name,
            self.endpoints,
            self.args,
            self.meta,
            self.expires_at,
        ]


class HookRegistry:
    """Named hook definitions; the server keeps one and the log persists it."""

    def __init__(self) -> None:
        self.hooks: dict[str, Hook] = {}

    def apply_record(self, rec: list[Any]) -> None:
        if rec[0] == "sethook":
            _, name, endpoints, args, meta, expires_at = rec
            key = args[1] if len(args) > 1 else ""
            self.hooks[name] = Hook(
                name, list(endpoints), list(args), key, dict(meta or {}), expires_at
            )
        elif rec[0] == "delhook":
            self.hooks.pop(rec[1], None)

    def state_records(self) -> list[list[Any]]:
        return [self.hooks[n].record() for n in sorted(self.hooks)]

    def undo(self, entry: tuple[Any, ...]) -> None:
        if entry[0] != "hook":
            return
        _, name, old = entry
        if old is None:
            self.hooks.pop(name, None)
        else:
            self.hooks[name] = old

    def delete(self, ctx: Ctx, names: list[str]) -> None:
        for name in names:
            ctx.db.note(("hook", name, self.hooks.pop(name)))
            ctx.changes.append(["delhook", name])


@command("SETHOOK", write=True)
def cmd_sethook(ctx: Ctx, args: list[str]) -> object:
    if len(args) < 4:
        raise WrongArgs("sethook")
    name = args[1]
    endpoints = [e for e in args[2].split(",") if e]
    meta, expires_at, i = parse_meta_ex(ctx, args, 3, "sethook")
    fence_args = args[i:]
    if not fence_args or not endpoints:
        raise WrongArgs("sethook")
    q = parse_fence_args(ctx.server, fence_args)

    registry = ctx.server.hooks
    old = registry.hooks.get(name)
    ctx.db.note(("hook", name, old))
    hook = Hook(name, endpoints, fence_args, q.key, meta, expires_at)
    registry.hooks[name] = hook
    ctx.changes.append(hook.record())
    return Json() if ctx.json else int(old is None)


@command("HOOKS")
def cmd_hooks(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 2:
        raise WrongArgs("hooks")
    rows: list[Any] = []
    for name in sorted(ctx.server.hooks.hooks):
        if not glob_match(args[1], name):
            continue
        h = ctx.server.hooks.hooks[name]
        if ctx.json:
            item: dict[str, Any] = {
                "name": name,
                "key": h.key,
                "endpoints": h.endpoints,
                "command": h.args,
                "meta": h.meta,
            }
            if h.expires_at is not None:
                item["ttl"] = max(0, int(h.expires_at - ctx.now))
            rows.append(item)
        else:
            flat: list[str] = []
            for k, v in h.meta.items():
                flat += [k, v]
            rows.append([name, h.key, h.endpoints, h.args, flat])
    return Json(hooks=rows) if ctx.json else rows


@command("DELHOOK", write=True)
def cmd_delhook(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 2:
        raise WrongArgs("delhook")
    names = [args[1]] if args[1] in ctx.server.hooks.hooks else []
    ctx.server.hooks.delete(ctx, names)
    return Json() if ctx.json else len(names)


@command("PDELHOOK", write=True)
def cmd_pdelhook(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 2:
        raise WrongArgs("pdelhook")
    names = [n for n in ctx.server.hooks.hooks if glob_match(args[1], n)]
    ctx.server.hooks.delete(ctx, names)
    return Json() if ctx.json else len(names)
