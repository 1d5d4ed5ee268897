"""SET-to-event latency at a paced update rate (issue 4).

Two processes: this one sends updates at a fixed rate (default 10k/s, in
1 ms ticks, one ``sendall`` per tick) over one connection and records the
moment each update left; a subscriber process (this script with
``--subscriber``) holds ``PSUBSCRIBE *`` on its own connection and stamps
every message when its bytes arrive. Both use ``time.monotonic_ns`` (Linux
CLOCK_MONOTONIC, one clock for all processes). Afterwards each event is
matched to the update that caused it by (id, latitude, longitude): every
update goes to a fresh random point, so that triple names one update.

Modes:

* ``fence`` (geofleetd): ``SET fleet vN POINT lat lon`` to random vehicles
  of the 200k workload, against the 1,000 NEARBY channels loaded beforehand
  by ``run.py``; an update yields 0, 1 or more events.
* ``publish`` (any Redis-protocol server): ``PUBLISH bench <event-like
  JSON>`` instead, one message per update. With Redis this is the floor of the
  measurement itself: two Python processes, one socket hop, no fence work.

Prints one JSON object on the last line of stdout. Usage::

    python bench/latency.py --port P [--mode fence|publish] [--rate 10000]
        [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hiredis
import numpy as np

HOST = "127.0.0.1"
LAT_MIN, LAT_MAX = 40.49, 40.92
LON_MIN, LON_MAX = -74.26, -73.70


def encode(args: list[str]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        raw = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


# --- subscriber process ----------------------------------------------------


def run_subscriber(port: int, out: Path, idle: float, max_seconds: float) -> int:
    """PSUBSCRIBE *, stamp messages, stop on 'stop' from stdin once idle."""
    sock = socket.create_connection((HOST, port), timeout=10)
    reader = hiredis.Reader()
    sock.sendall(encode(["PSUBSCRIBE", "*"]))
    confirm: Any = False
    deadline = time.monotonic() + 10
    while confirm is False:
        if time.monotonic() > deadline:
            print("error: no PSUBSCRIBE confirmation", flush=True)
            return 1
        data = sock.recv(65536)
        if not data:
            print("error: server closed the connection", flush=True)
            return 1
        reader.feed(data)
        confirm = reader.gets()
    if isinstance(confirm, hiredis.ReplyError) or not isinstance(confirm, list):
        print(f"error: PSUBSCRIBE answered {confirm!r}", flush=True)
        return 1
    print("ready", flush=True)

    stamps: list[int] = []
    payloads: list[bytes] = []
    others = 0
    started = time.monotonic()
    stop_at: float | None = None
    last_msg = time.monotonic()
    sock.setblocking(False)
    stdin_fd = sys.stdin.fileno()
    watch = [sock, stdin_fd]
    while time.monotonic() - started < max_seconds:
        ready, _, _ = select.select(watch, [], [], 0.05)
        now = time.monotonic()
        if sock in ready:
            data: bytes | None
            try:
                data = sock.recv(1 << 18)
            except BlockingIOError:
                data = None
            t = time.monotonic_ns()
            if data == b"":
                break
            if data:
                reader.feed(data)
                while (msg := reader.gets()) is not False:
                    if (
                        isinstance(msg, list)
                        and len(msg) == 4
                        and msg[0] == b"pmessage"
                    ):
                        stamps.append(t)
                        payloads.append(msg[3])
                    else:
                        others += 1
                last_msg = now
        if stdin_fd in ready:
            line = os.read(stdin_fd, 64)
            if not line or b"stop" in line:
                stop_at = now
                watch = [sock]
        if stop_at is not None and (now - last_msg > idle or now - stop_at > 30):
            break
    sock.close()
    with out.open("wb") as fh:
        for t, p in zip(stamps, payloads, strict=True):
            fh.write(b"%d\t%s\n" % (t, p.replace(b"\n", b" ")))
    print(f"done {len(stamps)} {others}", flush=True)
    return 0


# --- sender ----------------------------------------------------------------


def make_updates(
    mode: str, n: int, ids: int, key: str, seed: int
) -> tuple[list[bytes], list[tuple[str, float, float]]]:
    rng = np.random.default_rng(seed)
    vid = rng.integers(0, ids, n)
    lat = np.round(rng.uniform(LAT_MIN, LAT_MAX, n), 6)
    lon = np.round(rng.uniform(LON_MIN, LON_MAX, n), 6)
    cmds: list[bytes] = []
    keys: list[tuple[str, float, float]] = []
    for i in range(n):
        name, la, lo = f"v{vid[i]}", f"{lat[i]:.6f}", f"{lon[i]:.6f}"
        if mode == "fence":
            cmds.append(encode(["SET", key, name, "POINT", la, lo]))
        else:
            body = json.dumps(
                {
                    "command": "set",
                    "detect": "enter",
                    "key": key,
                    "id": name,
                    "object": {"type": "Point", "coordinates": [float(lo), float(la)]},
                },
                separators=(",", ":"),
            )
            cmds.append(encode(["PUBLISH", "bench", body]))
        keys.append((name, round(float(la), 6), round(float(lo), 6)))
    return cmds, keys


def send_paced(
    port: int, cmds: list[bytes], rate: float, max_seconds: float
) -> tuple[np.ndarray, int, int, float]:
    """Send at ``rate``/s in 1 ms ticks; return send stamps, replies, errors."""
    n = len(cmds)
    stamps = np.zeros(n, dtype=np.int64)
    sock = socket.create_connection((HOST, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = hiredis.Reader()
    replies = errors = 0

    def drain(block: float) -> None:
        nonlocal replies, errors
        while True:
            ready, _, _ = select.select([sock], [], [], block)
            if not ready:
                return
            data = sock.recv(1 << 18)
            if not data:
                raise ConnectionError("server closed the sending connection")
            reader.feed(data)
            while (r := reader.gets()) is not False:
                replies += 1
                if isinstance(r, hiredis.ReplyError):
                    errors += 1
                    if errors == 1:
                        print(f"first error reply: {r}", file=sys.stderr)
            block = 0.0

    sent = 0
    t0 = time.monotonic()
    tick = 0.001
    while sent < n:
        now = time.monotonic()
        if now - t0 > max_seconds:
            break
        due = min(n, int((now - t0) * rate) + 1)
        if due > sent:
            hi = min(due, sent + 2000)
            stamps[sent:hi] = time.monotonic_ns()
            sock.sendall(b"".join(cmds[sent:hi]))
            sent = hi
        drain(0.0)
        next_t = t0 + (int((time.monotonic() - t0) / tick) + 1) * tick
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.monotonic() - t0
    deadline = time.monotonic() + 30
    while replies < sent and time.monotonic() < deadline:
        drain(0.1)
    sock.close()
    return stamps[:sent], replies, errors, elapsed


def match(
    events: Path, keys: list[tuple[str, float, float]], stamps: np.ndarray
) -> tuple[list[float], int, int, int]:
    """Latency in ms of every event matched to its update."""
    index: dict[tuple[str, float, float], int] = {}
    for i, k in enumerate(keys[: len(stamps)]):
        index.setdefault(k, i)
    lat_ms: list[float] = []
    unmatched = unparsed = 0
    updates_with_event: set[int] = set()
    with events.open("rb") as fh:
        for line in fh:
            t_txt, _, body = line.rstrip(b"\n").partition(b"\t")
            try:
                ev = json.loads(body)
                lon, lat = ev["object"]["coordinates"][:2]
                k = (str(ev["id"]), round(float(lat), 6), round(float(lon), 6))
            except (ValueError, KeyError, TypeError, IndexError):
                unparsed += 1
                continue
            i = index.get(k)
            if i is None:
                unmatched += 1
                continue
            updates_with_event.add(i)
            lat_ms.append((int(t_txt) - int(stamps[i])) / 1e6)
    return lat_ms, unmatched, unparsed, len(updates_with_event)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=["fence", "publish"], default="fence")
    ap.add_argument("--rate", type=float, default=10_000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument(
        "--ids",
        type=int,
        default=100_000,
        help="vehicles v0..v{ids-1} to move (fence mode)",
    )
    ap.add_argument("--key", default="fleet")
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--subscriber", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.subscriber:
        return run_subscriber(
            args.port, args.out, idle=1.0, max_seconds=args.seconds * 3 + 120
        )

    n = int(args.rate * args.seconds)
    cmds, keys = make_updates(args.mode, n, args.ids, args.key, args.seed)
    with tempfile.TemporaryDirectory(prefix="geofleetd-latency-") as tmp:
        events = Path(tmp) / "events.tsv"
        sub = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--subscriber",
                "--port",
                str(args.port),
                "--out",
                str(events),
                "--seconds",
                str(args.seconds),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert sub.stdout is not None and sub.stdin is not None
            ready, _, _ = select.select([sub.stdout], [], [], 15)
            first = sub.stdout.readline().strip() if ready else "no answer in 15 s"
            if first != "ready":
                print(json.dumps({"ok": False, "error": f"subscriber: {first}"}))
                return 2
            stamps, replies, errors, elapsed = send_paced(
                args.port, cmds, args.rate, max_seconds=args.seconds * 3 + 10
            )
            sub.stdin.write("stop\n")
            sub.stdin.flush()
            sub.wait(timeout=60)
            tail = sub.stdout.read().strip()
        finally:
            if sub.poll() is None:
                sub.send_signal(signal.SIGKILL)
                sub.wait(timeout=10)
        if sub.returncode != 0 or not events.exists():
            print(json.dumps({"ok": False, "error": f"subscriber failed: {tail}"}))
            return 2
        lat_ms, unmatched, unparsed, with_event = match(events, keys, stamps)

    result: dict[str, Any] = {
        "ok": True,
        "mode": args.mode,
        "rate_asked": args.rate,
        "rate_sent": round(len(stamps) / elapsed, 1) if elapsed else 0,
        "updates": len(stamps),
        "replies": replies,
        "errors": errors,
        "events_matched": len(lat_ms),
        "events_unmatched": unmatched,
        "events_unparsed": unparsed,
        "updates_with_event": with_event,
        # The server answered fewer updates than were sent within 30 s of the
        # last send: it could not keep up with the rate, latencies are queueing.
        "fell_behind": replies < len(stamps),
    }
    if lat_ms:
        a = np.asarray(lat_ms)
        for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
            result[f"{name}_ms"] = round(float(np.percentile(a, q)), 3)
        result["max_ms"] = round(float(a.max()), 3)
    print(json.dumps(result))
    return 0 if lat_ms and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
