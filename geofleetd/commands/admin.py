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
import threading
import time
from typing import Any

from geofleetd import __version__
from geofleetd.commands.base import Ctx, Json, WrongArgs, command, invalid
from geofleetd.errors import KEY_NOT_FOUND, GeofleetError
from geofleetd.geometry.fmt import fnum
from geofleetd.geometry.geojson import rect_ring
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
        ring = rect_ring(minlat, minlon, maxlat, maxlon)
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
    ctx.server.hooks.delete(ctx, sorted(ctx.server.hooks.hooks))
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


def _rss_bytes() -> int:
    """Resident memory now (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def server_stats(ctx: Ctx) -> dict[str, Any]:
    """SERVER's fields: Tile38's leader set, then a few of geofleetd's own."""
    srv = ctx.server
    cols = ctx.db.cols.values()
    num_objects = sum(len(c) for c in cols)
    num_points = sum(c.num_points() for c in cols)
    num_strings = sum(len(c.strings) for c in cols)
    rss = _rss_bytes()
    return {
        "id": srv.server_id,
        "version": __version__,
        "pid": os.getpid(),
        "uptime": int(time.time() - srv.started),
        "num_collections": len(ctx.db.cols),
        "num_objects": num_objects,
        "num_points": num_points,
        "num_strings": num_strings,
        "num_hooks": srv.num_hooks(),
        "in_memory_size": num_points * 16,
        "heap_size": rss,
        "heap_released": 0,
        "mem_alloc": rss,
        "read_only": srv.read_only,
        "aof_size": srv.log_bytes(),
        "threads": threading.active_count(),
        "cpus": os.cpu_count() or 1,
        "http_transport": False,
        "max_heap_size": 0,
        "avg_item_size": 0,
        "pointer_size": 8,
        "num_connections": len(srv.clients),
        "fsync": srv.config.fsync,
        "python": sys.version.split()[0],
    }


# Go runtime metrics of Tile38's SERVER EXT with no Python counterpart: reported
# as 0 so that clients expecting Tile38's field set can read the reply.
_GO_ONLY = (
    "buck_hash_sys_bytes",
    "heap_idle_bytes",
    "heap_released_bytes",
    "lookups_total",
    "mallocs_total",
    "mcache_inuse_bytes",
    "mcache_sys_bytes",
    "mspan_inuse_bytes",
    "mspan_sys_bytes",
    "next_gc_bytes",
    "other_sys_bytes",
    "stack_inuse_bytes",
    "stack_sys_bytes",
)


def extended_stats(ctx: Ctx, base: dict[str, Any]) -> dict[str, Any]:
    """SERVER EXT: Tile38's extended field set, then geofleetd's own counters."""
    srv = ctx.server
    own = srv.ext_stats()
    rss = base["heap_size"]
    collected = sum(int(g.get("collected", 0)) for g in gc.get_stats())
    out: dict[str, Any] = {
        "alloc_bytes": rss,
        "alloc_bytes_total": rss,
        "frees_total": float(collected),
        "gc_cpu_fraction": 0.0,
        "gc_sys_bytes": 0.0,
        "go_goroutines": len(srv.clients),
        "go_threads": base["threads"],
        "go_version": "python" + base["python"],
        "heap_alloc_bytes": rss,
        "heap_inuse_bytes": rss,
        "heap_objects": 0,
        "heap_sys_bytes": rss,
        "last_gc_time_seconds": 0.0,
        "sys_bytes": rss,
        "sys_cpus": base["cpus"],
    }
    out.update(dict.fromkeys(_GO_ONLY, 0))
    out.update(
        {
            "tile38_aof_current_rewrite_time_sec": 0,
            "tile38_aof_enabled": True,
            "tile38_aof_last_rewrite_time_sec": 0,
            "tile38_aof_rewrite_in_progress": False,
            "tile38_aof_size": base["aof_size"],
            "tile38_avg_point_size": 0,
            "tile38_cluster_enabled": False,
            "tile38_connected_clients": len(srv.clients),
            "tile38_connected_slaves": 0,
            "tile38_expired_keys": 0,
            "tile38_http_transport": False,
            "tile38_id": base["id"],
            "tile38_in_memory_size": base["in_memory_size"],
            "tile38_max_heap_size": 0,
            "tile38_num_collections": base["num_collections"],
            "tile38_num_hooks": base["num_hooks"],
            "tile38_num_objects": base["num_objects"],
            "tile38_num_points": base["num_points"],
            "tile38_num_strings": base["num_strings"],
            "tile38_num_object_groups": 0,
            "tile38_num_hook_groups": 0,
            "tile38_pid": base["pid"],
            "tile38_pointer_size": 8,
            "tile38_read_only": base["read_only"],
            "tile38_total_commands_processed": srv.commands_processed,
            "tile38_total_connections_received": srv.connections_received,
            "tile38_total_messages_sent": int(own.get("fence_events_sent", 0)),
            "tile38_type": "leader",
            "tile38_uptime_in_seconds": float(time.time() - srv.started),
            "tile38_version": __version__,
        }
    )
    out.update(own)
    return out


@command("SERVER")
def cmd_server(ctx: Ctx, args: list[str]) -> object:
    if len(args) > 2 or (len(args) == 2 and args[1].upper() != "EXT"):
        raise WrongArgs("server")
    stats = server_stats(ctx)
    if len(args) == 2:
        stats = extended_stats(ctx, stats)
    if ctx.json:
        return Json(stats=stats)
    flat: list[object] = []
    for k, v in stats.items():
        flat += [k, v if isinstance(v, int) and not isinstance(v, bool) else str(v)]
    return flat


@command("INFO")
def cmd_info(ctx: Ctx, args: list[str]) -> object:
    stats = server_stats(ctx)
    own = ctx.server.ext_stats()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Tile38's sections and fields (CPU seconds as whole numbers, as Tile38's
    # clients expect integers there), plus a few of geofleetd's own.
    sections: dict[str, dict[str, Any]] = {
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
            "aof_rewrite_in_progress": 0,
            "aof_last_rewrite_time_sec": 0,
            "aof_current_rewrite_time_sec": 0,
            "aof_current_size": stats["aof_size"],
            "fsync": stats["fsync"],
        },
        "stats": {
            "total_connections_received": ctx.server.connections_received,
            "total_commands_processed": ctx.server.commands_processed,
            "total_messages_sent": int(own.get("fence_events_sent", 0)),
            "expired_keys": 0,
        },
        "replication": {"role": "master", "connected_slaves": 0},
        "cpu": {
            "used_cpu_sys": int(usage.ru_stime),
            "used_cpu_user": int(usage.ru_utime),
            "used_cpu_sys_children": int(children.ru_stime),
            "used_cpu_user_children": int(children.ru_utime),
        },
        "cluster": {"cluster_enabled": 0},
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
