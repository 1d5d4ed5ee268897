"""Shared fixtures: a real geofleetd server process on 127.0.0.1 with a temp LMDB dir.

``server`` starts ``python -m geofleetd serve --port 0`` in a subprocess, reads the
bound port from its ``listening`` log line, and stops it after the test. Tests talk
to it over real sockets (redis-py, or ``RawClient`` for exact RESP bytes).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hiredis
import pytest
import redis
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "long",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "geofleetd" / "data"


@dataclass
class ServerProc:
    proc: subprocess.Popen[bytes]
    port: int
    dir: Path
    log_path: Path
    extra: list[str] = field(default_factory=list)

    def client(self, **kw: Any) -> redis.Redis:
        """redis-py with raw replies (Tile38 shapes, not Redis' parsed ones)."""
        client = redis.Redis(
            host="127.0.0.1", port=self.port, decode_responses=True, protocol=2, **kw
        )
        client.response_callbacks.clear()
        return client

    def raw(self) -> RawClient:
        return RawClient(self.port)

    def stop(self, sig: int = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    data_dir: Path,
    extra: list[str] | None = None,
    wait_ready: bool = True,
    port: int = 0,
) -> ServerProc:
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}.server.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    logf = open(log_path, "ab")
    cmd = [
        sys.executable,
        "-m",
        "geofleetd",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        *(extra or []),
    ]
    proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, cwd=str(ROOT))
    logf.close()
    deadline = time.monotonic() + 30
    found = 0
    while time.monotonic() < deadline:
        with open(log_path, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
        m = re.findall(r"listening addr=127\.0\.0\.1:(\d+)", text)
        if m:
            found = int(m[-1])
            if (
                not wait_ready
                or "ready records_replayed" in text.split(f"127.0.0.1:{found}")[-1]
            ):
                break
        if proc.poll() is not None:
            raise RuntimeError(f"server exited at start:\n{text[-2000:]}")
        time.sleep(0.02)
    else:
        proc.kill()
        raise RuntimeError("server did not become ready in 30 s")
    return ServerProc(proc, found, data_dir, log_path, extra or [])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProc]:
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()


@pytest.fixture
def r(server: ServerProc) -> Iterator[redis.Redis]:
    client = server.client()
    yield client
    client.close()


class RawClient:
    """Exact RESP over a socket: send bytes or commands, read decoded replies."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader(encoding="utf-8")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, *args: str | bytes) -> None:
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a.encode() if isinstance(a, str) else a
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))

    def read(self) -> Any:
        while True:
            reply = self.reader.gets()
            if reply is not False:
                return reply
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("closed")
            self.reader.feed(data)

    def call(self, *args: str | bytes) -> Any:
        self.send(*args)
        return self.read()

    def closed_by_peer(self, timeout: float = 2.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(1 << 16)
                if not data:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()
