"""Command line: ``geofleetd serve``, ``geofleetd replay``, ``geofleetd check``.

- ``serve`` loads the config (TOML file, then flags), opens the data dir and runs
  until SIGINT/SIGTERM, then shuts down gracefully.
- ``replay`` streams a trace CSV (``vehicle_id,timestamp_iso,lat,lon,speed_mps,
  heading_deg``, optionally gzipped) into a running server as pipelined SETs, paced
  by the timestamps (``--speedup N``) or as fast as possible (``--max``).
- ``check`` verifies the append log and, with ``--repair``, cuts it at the first
  damaged record after keeping a backup.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import io
import logging
import signal
import socket
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import hiredis

from geofleetd import __version__
from geofleetd.logs import kv, setup

log = logging.getLogger("geofleetd")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="geofleetd", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="cmd", required=True)

    sp = sub.add_parser("serve", help="run the server")
    sp.add_argument("--host")
    sp.add_argument("--port", type=int)
    sp.add_argument("--dir", help="data directory (default ./data)")
    sp.add_argument("--config", help="TOML config file")
    sp.add_argument("--fsync", choices=["always", "everysec", "no"])
    sp.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    sp.add_argument("--max-request-bytes", type=int)
    sp.add_argument("--map-size-max", type=int, help="LMDB size ceiling in bytes")

    rp = sub.add_parser("replay", help="stream a trace CSV into a running server")
    rp.add_argument("file")
    rp.add_argument("--host", default="127.0.0.1")
    rp.add_argument("--port", type=int, default=9851)
    rp.add_argument("--key", default="fleet")
    pace = rp.add_mutually_exclusive_group()
    pace.add_argument("--speedup", type=float, default=None)
    pace.add_argument("--max", action="store_true", help="as fast as possible")
    rp.add_argument("--batch", type=int, default=2000)
    rp.add_argument("--quiet", action="store_true")

    cp = sub.add_parser("check", help="verify (and repair) the append log")
    cp.add_argument("--dir", default="./data")
    cp.add_argument("--repair", action="store_true")

    args = parser.parse_args(argv)
    if args.cmd == "serve":
        return serve(args)
    if args.cmd == "replay":
        return replay(args)
    return check(args)


def serve(args: argparse.Namespace) -> int:
    from geofleetd.config import Config
    from geofleetd.errors import GeofleetError
    from geofleetd.server.app import Server

    overrides: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "dir": args.dir,
        "fsync": args.fsync,
        "log_level": args.log_level,
        "max_request_bytes": args.max_request_bytes,
        "map_size_max": args.map_size_max,
    }
    try:
        config = Config.load(args.config, overrides)
    except (GeofleetError, OSError, ValueError) as exc:
        print(f"geofleetd: {exc}", file=sys.stderr)
        return 2
    setup(config.log_level)

    async def run() -> int:
        server = Server(config)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await server.start()
        except Exception as exc:
            log.error(kv("start_failed", cause=exc))
            return 1
        waiter = asyncio.create_task(stop.wait())
        fatal = asyncio.create_task(server.stopped.wait())
        await asyncio.wait({waiter, fatal}, return_when=asyncio.FIRST_COMPLETED)
        if server.fatal is not None:
            await server.stop()
            print(f"geofleetd: {server.fatal}", file=sys.stderr)
            return 1
        await server.stop()
        return 0

    return asyncio.run(run())


def check(args: argparse.Namespace) -> int:
    from geofleetd.persistence.check import check as check_log
    from geofleetd.persistence.errors import LogLockedError

    directory = Path(args.dir)
    if not directory.is_dir():
        print(f"geofleetd check: no such directory: {directory}", file=sys.stderr)
        return 2
    try:
        report = check_log(directory, repair=args.repair)
    except LogLockedError:
        print(
            f"geofleetd check: {directory} is in use by a running server; "
            "stop it first",
            file=sys.stderr,
        )
        return 2
    print(report.summary())
    return 0 if report.ok or args.repair else 1


# -- replay ----------------------------------------------------------------------


def read_trace(path: str) -> Iterator[dict[str, str]]:
    raw: io.TextIOBase
    if path.endswith(".gz"):
        raw = io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    else:
        raw = open(path, encoding="utf-8", newline="")
    with raw:
        yield from csv.DictReader(raw)


def row_command(key: str, row: dict[str, str]) -> list[str]:
    cmd = ["SET", key, row["vehicle_id"]]
    for name, column in (("speed", "speed_mps"), ("heading", "heading_deg")):
        value = (row.get(column) or "").strip()
        if value:
            cmd += ["FIELD", name, value]
    cmd += ["POINT", row["lat"], row["lon"]]
    return cmd


def _encode(cmd: list[str]) -> bytes:
    out = [b"*%d\r\n" % len(cmd)]
    for arg in cmd:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _parse_ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def replay(args: argparse.Namespace) -> int:
    if args.batch < 1:
        print("geofleetd replay: --batch must be at least 1", file=sys.stderr)
        return 2
    if args.speedup is not None and not args.speedup > 0:
        print("geofleetd replay: --speedup must be positive", file=sys.stderr)
        return 2
    try:
        return _replay(args)
    except FileNotFoundError as exc:
        print(f"geofleetd replay: {exc}", file=sys.stderr)
    except KeyError as exc:
        print(
            f"geofleetd replay: the CSV has no column {exc}; expected "
            "vehicle_id,timestamp_iso,lat,lon,speed_mps,heading_deg",
            file=sys.stderr,
        )
    except OSError as exc:
        print(f"geofleetd replay: {args.host}:{args.port}: {exc}", file=sys.stderr)
    return 1


def _replay(args: argparse.Namespace) -> int:
    rows = list(read_trace(args.file))
    total = len(rows)
    sock = socket.create_connection((args.host, args.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = hiredis.Reader()
    sent = errors = 0
    first_error = ""
    t0 = time.perf_counter()
    speedup = None if args.max or args.speedup is None else args.speedup
    if not args.max and args.speedup is None:
        speedup = 60.0
    ts0 = _parse_ts(rows[0]["timestamp_iso"]) if rows else 0.0
    last_draw = 0.0
    i = 0
    while i < total:
        if speedup is None:
            chunk = rows[i : i + args.batch]
        else:
            now_sim = ts0 + (time.perf_counter() - t0) * speedup
            j = i
            while (
                j < total
                and j - i < args.batch
                and (_parse_ts(rows[j]["timestamp_iso"]) <= now_sim)
            ):
                j += 1
            if j == i:
                wait = (_parse_ts(rows[i]["timestamp_iso"]) - now_sim) / speedup
                time.sleep(min(max(wait, 0.001), 0.5))
                continue
            chunk = rows[i:j]
        sock.sendall(b"".join(_encode(row_command(args.key, r)) for r in chunk))
        got = 0
        while got < len(chunk):
            data = sock.recv(1 << 16)
            if not data:
                print("replay: server closed the connection", file=sys.stderr)
                return 1
            reader.feed(data)
            while True:
                reply = reader.gets()
                if reply is False:
                    break
                got += 1
                if isinstance(reply, hiredis.ReplyError):
                    errors += 1
                    first_error = first_error or str(reply)
        sent += len(chunk)
        i += len(chunk)
        now = time.perf_counter()
        if not args.quiet and (now - last_draw > 0.2 or i == total):
            last_draw = now
            _progress(i, total, now - t0)
    elapsed = time.perf_counter() - t0
    if not args.quiet:
        sys.stderr.write("\n")
    rate = sent / elapsed if elapsed > 0 else 0.0
    print(
        f"rows sent: {sent}  errors: {errors}  seconds: {elapsed:.2f}  "
        f"rate: {rate:,.0f} rows/s"
    )
    if first_error:
        print(f"first error: {first_error}")
    return 0 if errors == 0 else 1


def _progress(done: int, total: int, elapsed: float) -> None:
    width = 30
    frac = done / total if total else 1.0
    bar = "#" * int(frac * width)
    rate = done / elapsed if elapsed > 0 else 0.0
    sys.stderr.write(f"\r[{bar:<{width}}] {done}/{total} {rate:,.0f} rows/s")
    sys.stderr.flush()
