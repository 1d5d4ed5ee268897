"""PUBLISH (plain messages to SUBSCRIBE/PSUBSCRIBE clients)."""

from __future__ import annotations

from geofleetd.commands.base import Ctx, Json, WrongArgs, command


@command("PUBLISH")
def cmd_publish(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 3:
        raise WrongArgs("publish")
    sent = ctx.server.hub.publish(args[1], args[2])
    return Json(published=sent) if ctx.json else sent
