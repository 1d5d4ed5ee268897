"""Pieces shared by the benchmark scripts: servers, a tiny RESP client, pipes.

Every server the benchmark starts goes through :class:`Server`, which records
the process so :func:`stop_all` can end it whatever happened; on Linux the
child is also asked to die with its parent (``PR_SET_PDEATHSIG``), so even a
killed ``run.py`` leaves nothing behind. Every wait here takes a timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hiredis

HOST = "127.0.0.1"


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


class ServerExited(BenchError):
    """A server process ended before it answered."""


class Unsupported(BenchError):
    """The server refused a workload outright (not built yet)."""


# --- a minimal RESP client -------------------------------------------------


def encode(args: Sequence[str | bytes]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        raw = a if isinstance(a, bytes) else a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class Client:
    """Blocking RESP client for set-up and checks (never for timed load)."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.reader = hiredis.Reader(encoding="utf-8", errors="replace")

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, args: Sequence[str | bytes]) -> None:
        self.sock.sendall(encode(args))

    def read(self) -> Any:
        while True:
            reply = self.reader.gets()
            if reply is not False:
                return reply
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.reader.feed(data)

    def call(self, *args: str | bytes) -> Any:
        """Send one command; return its reply (errors come back as values)."""
        self.send(args)
        return self.read()


def is_error(reply: Any) -> bool:
    return isinstance(reply, hiredis.ReplyError)


def parse_commands(path: Path, limit: int) -> list[list[bytes]]:
    """The first ``limit`` commands of a RESP file, as argument lists."""
    reader = hiredis.Reader()
    out: list[list[bytes]] = []
    with path.open("rb") as fh:
        while len(out) < limit:
            chunk = fh.read(65536)
            if not chunk:
                break
            reader.feed(chunk)
            while len(out) < limit:
                cmd = reader.gets()
                if cmd is False:
                    break
                out.append(cmd)
    return out


# --- processes -------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_libc = None
with contextlib.suppress(OSError, TypeError):
    _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_prctl = getattr(_libc, "prctl", None)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_LIVE: list[subprocess.Popen[bytes]] = []


def spawn(argv: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
    """Start a helper process that :func:`stop_all` will end."""
    proc = subprocess.Popen(list(argv), preexec_fn=_die_with_parent, **kw)
    _LIVE.append(proc)
    return proc


def end_process(
    proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10.0
) -> tuple[float, bool]:
    """Signal one process and wait; SIGKILL it after ``timeout``.

    Returns (seconds until it exited, whether it had to be killed).
    """
    t0 = time.perf_counter()
    killed = False
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            killed = True
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
    with contextlib.suppress(ValueError):
        _LIVE.remove(proc)
    return time.perf_counter() - t0, killed


def stop_all() -> None:
    """End every process started through :func:`spawn`, one by one by pid."""
    for proc in list(_LIVE):
        end_process(proc, signal.SIGTERM, timeout=5.0)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def vm_rss_kb(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmRSS:\s+(\d+)\s+kB", text, re.M)
    return int(m.group(1)) if m else None


@dataclass
class Server:
    """One server process (geofleetd or redis-server) on 127.0.0.1."""

    kind: str  # "geofleetd" or "redis"
    argv_base: list[str]
    root: Path  # this instance's folder: data/ inside, log beside it
    label: str
    extra: list[str] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def argv(self) -> list[str]:
        if self.kind == "redis":
            return [
                *self.argv_base,
                "--bind",
                HOST,
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                "--daemonize",
                "no",
                "--save",
                "",
                "--logfile",
                "",
                *([] if "--appendonly" in self.extra else ["--appendonly", "no"]),
                *self.extra,
            ]
        return [
            *self.argv_base,
            "serve",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            *self.extra,
        ]

    def start(self, ready_timeout: float = 120.0) -> float:
        """Start the process; return seconds until it is ready for data."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n--- start {self.starts}: {' '.join(self.argv())}\n".encode())
        log.flush()
        t0 = time.perf_counter()
        self.proc = spawn(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
        )
        log.close()
        wait_ready(self, ready_timeout)
        return time.perf_counter() - t0

    def stop(self, timeout: float = 60.0) -> tuple[float, bool]:
        if self.proc is None:
            return 0.0, False
        out = end_process(self.proc, signal.SIGTERM, timeout)
        return out

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def flush(self) -> None:
        try:
            with Client(self.port) as c:
                reply = c.call("FLUSHALL" if self.kind == "redis" else "FLUSHDB")
        except OSError as exc:
            state = "running" if self.alive() else "exited"
            raise BenchError(
                f"{self.label} ({state}) refused FLUSH: {exc}; log tail:\n"
                f"{self.log_tail()}"
            ) from exc
        if is_error(reply):
            raise BenchError(f"{self.label}: flush answered {reply}")

    def probe(self) -> tuple[str, ...]:
        """A read that any server refuses while loading its data."""
        if self.kind == "redis":
            return ("EXISTS", "fleet")
        return ("GET", "fleet", "v0")


def wait_ready(server: Server, timeout: float) -> None:
    """Poll until PING answers PONG and a data read is not refused as LOADING.

    Polls every 5 ms over one connection, reconnecting while the port is
    closed; fails if the process exits or ``timeout`` passes.
    """
    deadline = time.perf_counter() + timeout
    last = "no answer"
    client: Client | None = None
    try:
        while time.perf_counter() < deadline:
            if server.proc is not None and server.proc.poll() is not None:
                tail = server.log_tail(12)
                last = tail.splitlines()[-1].strip() if tail else "(empty log)"
                raise ServerExited(
                    f"{server.label} exited with code {server.proc.returncode} "
                    f"before it was ready: {last}\nlog tail:\n{tail}"
                )
            try:
                if client is None:
                    client = Client(server.port, timeout=5.0)
                pong = client.call("PING")
                if pong == "PONG":
                    data = client.call(*server.probe())
                    if not (is_error(data) and str(data).startswith("LOADING")):
                        return
                    last = str(data)
                else:
                    last = str(pong)
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
                if client is not None:
                    client.close()
                    client = None
            time.sleep(0.005)
    finally:
        if client is not None:
            client.close()
    raise BenchError(f"{server.label} not ready after {timeout:.0f} s (last: {last})")


# --- CPU accounting: is anything else using the machine? -------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_busy_s() -> float:
    """Seconds of CPU time all cores have spent busy since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    vals = [int(v) for v in fields[:8]]
    idle = vals[3] + vals[4]  # idle + iowait
    return (sum(vals) - idle) / _TICK


def proc_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def others_busy(window: float, own: Sequence[int] = ()) -> float:
    """Cores kept busy by other processes over ``window`` seconds."""
    b0, o0, t0 = cpu_busy_s(), sum(proc_cpu_s(p) for p in own), time.monotonic()
    time.sleep(window)
    b1, o1, t1 = cpu_busy_s(), sum(proc_cpu_s(p) for p in own), time.monotonic()
    return max(0.0, (b1 - b0) - (o1 - o0)) / (t1 - t0)


def wait_quiet(limit: float, threshold: float, own: Sequence[int] = ()) -> float:
    """Wait (at most ``limit`` s) until other processes use < ``threshold`` cores.

    Returns the last measured load of others, so a caller can report a run
    that had to start on a busy machine.
    """
    deadline = time.monotonic() + limit
    busy = others_busy(0.3, own)
    while busy >= threshold and time.monotonic() < deadline:
        time.sleep(0.7)
        busy = others_busy(0.3, own)
    return busy


# --- redis-cli --pipe ------------------------------------------------------


@dataclass
class PipeResult:
    commands: int
    seconds: float
    replies: int
    errors: int
    first_errors: list[str]
    server_cpu: float = 0.0  # cores the server used on average during the run
    client_cpu: float = 0.0  # cores redis-cli used
    other_cpu: float = 0.0  # cores every other process on the machine used
    busy_before: float = 0.0  # cores others used just before the run

    @property
    def rate(self) -> float:
        return self.commands / self.seconds if self.seconds > 0 else 0.0


def pipe(
    port: int,
    path: Path,
    commands: int,
    timeout: float,
    scratch: Path,
    server_pid: int | None = None,
) -> PipeResult:
    """Push a RESP file through ``redis-cli --pipe``; time the whole process.

    redis-cli sends the file, then an ECHO of 20 random bytes, and exits once
    that echo comes back, so its wall clock covers every reply.
    """
    cli = shutil.which("redis-cli")
    if cli is None:
        raise BenchError("redis-cli not found")
    err_path = scratch / "pipe.stderr"
    argv = [
        cli,
        "-h",
        HOST,
        "-p",
        str(port),
        "--pipe",
        "--pipe-timeout",
        str(int(min(timeout, 60))),  # give up after 60 s without any reply
    ]
    busy0, srv0 = cpu_busy_s(), proc_cpu_s(server_pid)
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with path.open("rb") as stdin, err_path.open("wb") as stderr:
        t0 = time.perf_counter()
        proc = spawn(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            end_process(proc, signal.SIGKILL)
            raise BenchError(
                f"redis-cli --pipe {path.name} took over {timeout:.0f} s"
            ) from exc
        seconds = time.perf_counter() - t0
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = cpu_busy_s() - busy0
    srv = proc_cpu_s(server_pid) - srv0
    cli_s = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    with contextlib.suppress(ValueError):
        _LIVE.remove(proc)
    text = out.decode(errors="replace")
    m = re.search(r"errors: (\d+), replies: (\d+)", text)
    with err_path.open("rb") as fh:
        first = [ln.decode(errors="replace").rstrip() for ln in itertools.islice(fh, 3)]
    if m is None:
        raise BenchError(
            f"redis-cli --pipe {path.name} exited {proc.returncode} "
            f"without a summary: {text.strip()[-300:]} {' | '.join(first)}"
        )
    if "Last reply received" not in text:
        raise BenchError(
            f"redis-cli --pipe {path.name} never got its closing ECHO back "
            f"(the server must answer ECHO with a bulk string): {text.strip()[-300:]}"
        )
    wall = max(seconds, 1e-9)
    return PipeResult(
        commands,
        seconds,
        int(m.group(2)),
        int(m.group(1)),
        first,
        server_cpu=srv / wall,
        client_cpu=cli_s / wall,
        other_cpu=max(0.0, busy - srv - cli_s) / wall,
    )


def machine_info() -> dict[str, str]:
    def run(argv: list[str]) -> str:
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    model = "?"
    for line in run(["lscpu"]).splitlines():
        if line.startswith("Model name"):
            model = line.split(":", 1)[1].strip()
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    import platform

    return {
        "date_utc": run(["date", "-u"]),
        "nproc": run(["nproc"]),
        "cpu": model,
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "redis": run(["redis-server", "--version"]),
        "kernel": os.uname().release,
        "geofleetd_tree": run(
            [
                "git",
                "-C",
                str(Path(__file__).resolve().parent.parent),
                "describe",
                "--always",
                "--dirty",
            ]
        ),
    }
