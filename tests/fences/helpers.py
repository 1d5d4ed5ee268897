"""Shared pieces of the fence tests: a background event reader, event shapes.

``Events`` owns one socket (a live fence or a subscriber), reads it in a thread and
keeps every decoded message, so a test can send a whole pipeline of updates and then
wait for an exact number of events (and then for silence). Events are compared
through ``brief``: the fields a test pins down, without the volatile ``time`` and
``group`` (those are checked on their own).
"""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import hiredis

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
GROUP_RE = re.compile(r"^[0-9a-f]{24}$")
EARTH_RADIUS_M = 6371e3  # Tile38's sphere


class Events:
    """A connection whose pushed messages are collected by a reader thread."""

    def __init__(self, port: int, *command: str, rcvbuf: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader(encoding="utf-8")
        self.items: list[Any] = []
        self.closed = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if command:
            self.send(*command)

    def send(self, *args: str) -> None:
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            raw = a.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
        self.sock.sendall(b"".join(out))

    def start(self) -> Events:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                if self.closed:
                    return
                continue
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return
            self.reader.feed(data)
            while (msg := self.reader.gets()) is not False:
                with self._lock:
                    self.items.append(msg)

    def count(self) -> int:
        with self._lock:
            return len(self.items)

    def wait(self, n: int, timeout: float = 10.0) -> list[Any]:
        """The first ``n`` messages (fails when fewer arrive within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self.count() < n and time.monotonic() < deadline:
            time.sleep(0.005)
        with self._lock:
            got = list(self.items)
        assert len(got) >= n, f"only {len(got)} of {n} messages: {got[-3:]!r}"
        return got[:n]

    def quiet(self, n: int, wait: float = 0.3) -> None:
        """No message beyond the first ``n`` arrives within ``wait`` seconds."""
        time.sleep(wait)
        with self._lock:
            extra = self.items[n:]
        assert not extra, f"unexpected messages: {extra[:3]!r}"

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=2)


def payload(msg: Any) -> dict[str, Any]:
    """The event JSON of a live-fence bulk string or a (p)message array."""
    if isinstance(msg, list):
        assert msg[0] in ("message", "pmessage"), msg
        text = msg[-1]
    else:
        text = msg
    assert isinstance(text, str), msg
    event = json.loads(text)
    assert isinstance(event, dict), text
    return event


def brief(event: dict[str, Any]) -> tuple[Any, ...]:
    """(command, detect, id, [lon, lat]) of an event, checking its fixed parts."""
    assert TIME_RE.match(event["time"]), event
    if event["command"] in ("set", "fset"):
        assert GROUP_RE.match(event["group"]), event
        coords = event["object"]["coordinates"] if "object" in event else None
        return (event["command"], event["detect"], event["id"], coords)
    return (event["command"], None, event.get("id"), None)


def command(port: int, *args: str) -> Any:
    """One command on a fresh connection; its decoded reply."""
    return pipeline(port, [args])[0]


def point(lat: float, lon: float) -> str:
    return json.dumps({"type": "Point", "coordinates": [lon, lat]})


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle meters on Tile38's sphere (the test's own formula)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))


def resp(*args: str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        raw = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def pipeline(
    port: int, commands: Sequence[Sequence[str]], chunk: int = 5000
) -> list[Any]:
    """Send commands in pipelined chunks over one connection; return every reply."""
    replies: list[Any] = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = hiredis.Reader(encoding="utf-8")
        for start in range(0, len(commands), chunk):
            part = commands[start : start + chunk]
            sock.sendall(b"".join(resp(*c) for c in part))
            want = len(replies) + len(part)
            while len(replies) < want:
                data = sock.recv(1 << 16)
                if not data:
                    raise ConnectionError("server closed the connection")
                reader.feed(data)
                while (r := reader.gets()) is not False:
                    replies.append(r)
    return replies
