"""Key and server commands: PING ECHO KEYS STATS BOUNDS FLUSHDB OUTPUT CLIENT
SERVER INFO HEALTHZ READONLY CONFIG GC AOFSHRINK.

These read or change server-wide state through ``ctx.server``; data changes (only
FLUSHDB here) are reported as change records like every other write.
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import time
from typing import Any

from geofleetd import __version__
from geofleetd.commands.base import Ctx, Json, WrongArgs, command, invalid
from geofleetd.errors import KEY_NOT_FOUND, GeofleetError
from geofleetd.geometry.fmt import fnum
from geofleetd.protocol.resp import OK, Simple
from geofleetd.store.collection import glob_match


@command("PING")
def cmd_ping(ctx: Ctx, args: list[str]) -> object:
    if len(args) > 2:
        raise WrongArgs("ping")
    if ctx.json:
        return Json(ping="pong" if len(args) == 1 else args[1])
    return Simple("PONG") if len(args) == 1 else args[1]


@command("ECHO")
def cmd_echo(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 2:
        raise WrongArgs("echo")
    return Json(message=args[1]) if ctx.json else args[1]


@command("HEALTHZ")
def cmd_healthz(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 1:
        raise WrongArgs("healthz")
    return Json() if ctx.json else OK


@command("KEYS")
def cmd_keys(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 2:
        raise WrongArgs("keys")
    pattern = args[1]
    keys = sorted(k for k in ctx.db.cols if glob_match(pattern, k))
    return Json(keys=keys) if ctx.json else keys


def _stats_of(ctx: Ctx, key: str) -> dict[str, int] | None:
    col = ctx.db.cols.get(key)
    if col is None:
        return None
    num_strings = len(col.strings)
    size = 0
    for shape in col.shapes.values():
        size += len(shape.text)
    size += len(col.points) * 16 + sum(len(s) for s in col.strings.values())
    return {
        "in_memory_size": size,
        "num_objects": len(col),
        "num_points": col.num_points(),
        "num_strings": num_strings,
    }


@command("STATS")
def cmd_stats(ctx: Ctx, args: list[str]) -> object:
    if len(args) < 2:
        raise WrongArgs("stats")
    found = [_stats_of(ctx, k) for k in args[1:]]
    if ctx.json:
        return Json(stats=found)
    out: list[object] = []
    for st in found:
        if st is None:
            out.append(None)
        else:
            flat: list[str] = []
            for name, value in st.items():
                flat += [name, str(value)]
            out.append(flat)
    return out


@command("BOUNDS")
def cmd_bounds(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 2:
        raise WrongArgs("bounds")
    col = ctx.db.cols.get(args[1])
    b = col.geo_bounds() if col is not None else None
    if b is None:
        if ctx.json:
            raise GeofleetError(KEY_NOT_FOUND)
        return None
    minlat, minlon, maxlat, maxlon = b
    if ctx.json:
        ring = [
            [minlon, minlat],
            [maxlon, minlat],
            [maxlon, maxlat],
            [minlon, maxlat],
            [minlon, minlat],
        ]
        return Json(bounds={"type": "Polygon", "coordinates": [ring]})
    return [[fnum(minlon), fnum(minlat)], [fnum(maxlon), fnum(maxlat)]]


@command("FLUSHDB", write=True)
def cmd_flushdb(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 1:
        raise WrongArgs("flushdb")
    ctx.db.note_cols()
    for key in list(ctx.db.cols):
        if ctx.server.fences_watch(key):
            ctx.notes.append(("drop", key, None, None, None, None))
    ctx.db.cols = {}
    ctx.db.heap = []
    engine = ctx.server.fences
    for name in sorted(engine.channels):  # Tile38 forgets channels too
        ctx.db.note(("chan", name, engine.channels[name]))
        engine.del_channel(name)
        ctx.changes.append(["delchan", name])
    ctx.changes.append(["flush"])
    return Json() if ctx.json else OK


@command("OUTPUT")
def cmd_output(ctx: Ctx, args: list[str]) -> object:
    if len(args) > 2:
        raise WrongArgs("output")
    if len(args) == 1:
        return Json(output="json") if ctx.json else Simple("resp")
    mode = args[1].lower()
    if mode not in ("json", "resp"):
        raise invalid(args[1])
    ctx.client.json = mode == "json"
    return Json() if ctx.client.json else OK


@command("CLIENT")
def cmd_client(ctx: Ctx, args: list[str]) -> object:
    if len(args) < 2:
        raise WrongArgs("client")
    sub = args[1].lower()
    if sub == "getname" and len(args) == 2:
        return Json(name=ctx.client.name) if ctx.json else ctx.client.name
    if sub == "setname" and len(args) == 3:
        ctx.client.name = args[2]
        return Json() if ctx.json else OK
    if sub == "id" and len(args) == 2:
        return Json(id=ctx.client.id) if ctx.json else ctx.client.id
    if sub == "list" and len(args) == 2:
        lines = ctx.server.client_list()
        if ctx.json:
            return Json(list=lines)
        return "".join(
            " ".join(f"{k}={v}" for k, v in line.items()) + "\n" for line in lines
        )
    if sub == "kill" and len(args) == 3:
        if not ctx.server.kill_client(args[2]):
            raise GeofleetError("No such client")
        return Json() if ctx.json else OK
    raise invalid(args[1])


def server_stats(ctx: Ctx) -> dict[str, Any]:
    srv = ctx.server
    num_objects = sum(len(c) for c in ctx.db.cols.values())
    num_points = sum(c.num_points() for c in ctx.db.cols.values())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "id": srv.server_id,
        "version": __version__,
        "pid": os.getpid(),
        "uptime": int(time.time() - srv.started),
        "num_collections": len(ctx.db.cols),
        "num_objects": num_objects,
        "num_points": num_points,
        "num_hooks": srv.num_hooks(),
        "in_memory_size": num_points * 16,
        "heap_size": usage.ru_maxrss * 1024,
        "mem_alloc": usage.ru_maxrss * 1024,
        "read_only": srv.read_only,
        "following": "",
        "aof_size": srv.log_bytes(),
        "threads": 1,
        "cpus": os.cpu_count() or 1,
        "http_transport": False,
        "max_heap_size": 0,
        "avg_item_size": 0,
        "pointer_size": 8,
        "num_connections": len(srv.clients),
        "fsync": srv.config.fsync,
        "python": sys.version.split()[0],
    }


@command("SERVER")
def cmd_server(ctx: Ctx, args: list[str]) -> object:
    if len(args) > 2 or (len(args) == 2 and args[1].upper() != "EXT"):
        raise WrongArgs("server")
    stats = server_stats(ctx)
    if len(args) == 2:
        stats.update(ctx.server.ext_stats())
    if ctx.json:
        return Json(stats=stats)
    flat: list[object] = []
    for k, v in stats.items():
        flat += [k, v if isinstance(v, int) and not isinstance(v, bool) else str(v)]
    return flat


@command("INFO")
def cmd_info(ctx: Ctx, args: list[str]) -> object:
    stats = server_stats(ctx)
    sections = {
        "server": {
            "tile38_version": "1.37.0",
            "geofleetd_version": __version__,
            "redis_version": "7.0.0",
            "uptime_in_seconds": stats["uptime"],
            "process_id": stats["pid"],
        },
        "clients": {"connected_clients": stats["num_connections"]},
        "memory": {"used_memory": stats["heap_size"]},
        "persistence": {
            "aof_enabled": 1,
            "aof_current_size": stats["aof_size"],
            "fsync": stats["fsync"],
        },
        "stats": {
            "total_commands_processed": ctx.server.commands_processed,
            "total_connections_received": ctx.server.connections_received,
        },
        "replication": {"role": "master", "connected_slaves": 0},
        "cpu": {
            "used_cpu_sys": resource.getrusage(resource.RUSAGE_SELF).ru_stime,
            "used_cpu_user": resource.getrusage(resource.RUSAGE_SELF).ru_utime,
        },
        "keyspace": {"num_collections": stats["num_collections"]},
    }
    wanted = {a.lower() for a in args[1:]}
    if wanted - set(sections) - {"all", "default", "everything"}:
        raise invalid(next(iter(wanted - set(sections))))
    chosen = {
        name: body
        for name, body in sections.items()
        if not wanted or wanted & {"all", "default", "everything", name}
    }
    if ctx.json:
        return Json(info={k: v for body in chosen.values() for k, v in body.items()})
    text = []
    for name, body in chosen.items():
        text.append(f"# {name.capitalize()}\r\n")
        text.extend(f"{k}:{v}\r\n" for k, v in body.items())
        text.append("\r\n")
    return "".join(text)


@command("READONLY", write=False)
def cmd_readonly(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 2:
        raise WrongArgs("readonly")
    flag = args[1].lower()
    if flag not in ("yes", "no"):
        raise invalid(args[1])
    ctx.server.set_read_only(flag == "yes")
    return Json() if ctx.json else OK


@command("CONFIG")
def cmd_config(ctx: Ctx, args: list[str]) -> object:
    if len(args) < 2:
        raise WrongArgs("config")
    sub = args[1].lower()
    cfg = ctx.server.config
    if sub == "get" and len(args) == 3:
        found = cfg.get_matching(args[2])
        if ctx.json:
            return Json(properties=found)
        flat: list[str] = []
        for k, v in found.items():
            flat += [k, v]
        return flat
    if sub == "set" and len(args) in (3, 4):
        cfg.set_runtime(args[2], args[3] if len(args) == 4 else "")
        ctx.server.config_changed()
        return Json() if ctx.json else OK
    if sub == "rewrite" and len(args) == 2:
        cfg.rewrite()
        return Json() if ctx.json else OK
    if sub in ("get", "set", "rewrite"):
        raise WrongArgs("config")
    raise invalid(args[1])


@command("GC")
def cmd_gc(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 1:
        raise WrongArgs("gc")
    gc.collect()
    return Json() if ctx.json else OK


@command("AOFSHRINK")
def cmd_aofshrink(ctx: Ctx, args: list[str]) -> object:
    if len(args) != 1:
        raise WrongArgs("aofshrink")
    ctx.server.request_compaction()
    return Json() if ctx.json else OK
