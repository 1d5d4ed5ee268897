"""A subscriber that never reads is cut off once its unsent events pass
``subscriber_queue_bytes`` (here 256 KiB, from a TOML config file); the server logs
``subscriber_dropped``, its memory stays flat, and a subscriber that keeps up still
gets every event, in order.
"""

from __future__ import annotations

import random
import re
import socket
import time
from pathlib import Path

from tests.conftest import start_server
from tests.fences.helpers import Events, command, payload, pipeline, resp

LIMIT = 256 * 1024
CHANNELS = [f"s{n}" for n in range(10)]


def rss_bytes(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    assert m, text
    return int(m.group(1)) * 1024


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Read (and discard) until the server closes or resets the connection."""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 16):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            continue
    return False


def test_slow_subscriber_is_dropped_and_others_get_everything(tmp_path: Path) -> None:
    config = tmp_path / "geofleetd.toml"
    config.write_text(f"[server]\nsubscriber_queue_bytes = {LIMIT}\n")
    srv = start_server(tmp_path / "data", ["--fsync", "no", "--config", str(config)])
    fast: Events | None = None
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        assert command(srv.port, "CONFIG", "GET", "subscriber_queue_bytes") == [
            "subscriber-queue-bytes",
            str(LIMIT),
        ]
        fence = ["WITHIN", "fleet", "FENCE", "BOUNDS", "0", "0", "10", "10"]
        setchans = [("SETCHAN", name, *fence) for name in CHANNELS]
        assert pipeline(srv.port, setchans) == [1] * len(CHANNELS)
        fast = Events(srv.port, "PSUBSCRIBE", "*").start()
        assert fast.wait(1) == [["psubscribe", "*", 1]]
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", srv.port))
        slow.sendall(resp("PSUBSCRIBE", "*"))  # and never read again

        rng = random.Random(7)
        sets = []
        for k in range(6000):
            lat, lon = f"{rng.uniform(1, 9):.6f}", f"{rng.uniform(1, 9):.6f}"
            sets.append(("SET", "fleet", f"v{k % 50}", "POINT", lat, lon))
        time.sleep(0.2)
        rss0 = rss_bytes(srv.proc.pid)
        for start in range(0, len(sets), 20):  # a steady writer, 20 SETs a batch
            assert pipeline(srv.port, sets[start : start + 20]) == ["OK"] * 20
        rss1 = rss_bytes(srv.proc.pid)

        want: list[tuple[str, str, str]] = []
        seen: set[str] = set()
        for cmd in sets:
            oid = cmd[2]
            if oid not in seen:
                want += [(ch, "enter", oid) for ch in CHANNELS]
            want += [(ch, "inside", oid) for ch in CHANNELS]
            seen.add(oid)
        volume = 280 * len(want)
        assert volume > 60 * LIMIT  # what the silent subscriber was sent, roughly
        msgs = fast.wait(1 + len(want), timeout=60)[1:]
        got = [(m[2], payload(m)["detect"], payload(m)["id"]) for m in msgs]
        assert got == want
        fast.quiet(1 + len(want), wait=0.2)

        assert closed_by_peer(slow, timeout=10)
        log = srv.log_text()
        dropped = [line for line in log.splitlines() if "subscriber_dropped" in line]
        assert len(dropped) == 1, log[-2000:]
        assert f"limit_bytes={LIMIT}" in dropped[0]
        # the server held about one bound for the slow client (~1 MB of growth
        # here); without the bound it keeps everything it was sent (~13 MB)
        assert rss1 - rss0 < 6 * 1024 * 1024, (rss0, rss1)
        assert command(srv.port, "PING") == "PONG"
    finally:
        slow.close()
        if fast is not None:
            fast.close()
        srv.stop()
