"""Run geofleetd's benchmarks, and Redis' GEO counterparts, in one go.

    python bench/run.py [--only set,nearby,...] [--quick] [--servers geofleetd,redis]

Workloads (``--only`` takes these names or the groups ``core``, ``issue3``,
``issue4``; default: all):

* core (issue 2): ``set``, ``nearby``, ``within``, ``district``, ``ais``
* issue 3: ``fsync`` (200k SETs under each --fsync policy), ``recovery``
  (1M records, SIGTERM, restart, time until data is served)
* issue 4: ``fences`` (1,000 NEARBY channels + a PSUBSCRIBE subscriber, then
  the 200k SETs), ``ais-fences`` (71 district channels, then the AIS week),
  ``latency`` (SET-to-event at a paced 10k/s, see latency.py)

Load is pushed by ``redis-cli --pipe`` from files that gen.py writes (and
this script regenerates when they are missing or stale); each figure is the
wall clock of that redis-cli process, which exits after the last reply. Both
servers listen on 127.0.0.1 only, on free ports, with fresh temporary data
folders, and every process started here is ended on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import gen  # noqa: E402
from common import (  # noqa: E402
    BenchError,
    Client,
    Server,
    ServerExited,
    Unsupported,
    is_error,
)

CORE = ["set", "nearby", "within", "district", "ais"]
ISSUE3 = ["fsync", "recovery"]
ISSUE4 = ["fences", "ais-fences", "latency"]
ALL = CORE + ISSUE3 + ISSUE4
GROUPS = {"core": CORE, "issue3": ISSUE3, "issue4": ISSUE4, "all": ALL}

# Tile38 1.37.0, measured with these workloads on a machine like this one
# (issues 2-4); Tile38 itself cannot be installed here.
T38 = {
    "set": 251_000,
    "nearby": 17_000,
    "within": 100_000,
    "district": 700,
    "rss_mb": 58,
    "fences": 76_000,
    "ais-fences": 95_000,
    "recovery_s": 3.1,
}
TARGET = {
    "set": ">=125k/s",
    "nearby": ">=17k/s",
    "within": ">=50k/s",
    "district": ">=700/s",
    "rss_mb": "<=110 MB",
    "fsync": "always/no >=0.8",
    "recovery_s": "<10 s",
    "fences": ">=76k/s",
    "ais-fences": ">=95k/s",
    "latency": "p99 <5 ms",
}
LABEL = {
    "set": "SET fleet POINT",
    "nearby": "NEARBY LIMIT 10 IDS",
    "within": "WITHIN COUNT BOUNDS 0.01 deg",
    "district": "WITHIN COUNT OBJECT district",
    "ais": "AIS week SET harbor",
}
# A figure taken while other processes kept this many cores busy is marked "*".
BUSY_MARK = 0.25
REDIS_WORKLOADS = {"set", "nearby", "within", "ais"}  # Redis has no polygon query


def log(msg: str) -> None:
    print(msg, flush=True)


# --- set-up ----------------------------------------------------------------


def ensure_redis_tools() -> None:
    """Install Debian's redis-server and redis-tools when either is missing."""
    if shutil.which("redis-server") and shutil.which("redis-cli"):
        return
    if os.geteuid() != 0:
        raise BenchError(
            "redis-server/redis-cli missing; as root run: "
            "apt-get install -y redis-server redis-tools"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log("installing redis-server and redis-tools with apt-get ...")
    for argv in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "redis-server", "redis-tools"],
    ):
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=900
        )
        if proc.returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed: {proc.stderr.strip()[-500:]}")
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        raise BenchError(
            "apt-get finished but redis-server/redis-cli are still missing"
        )


def ensure_files(scale: str) -> dict[str, Any]:
    out = HERE / "out" / scale
    mpath = out / "manifest.json"
    manifest: dict[str, Any] | None = None
    if mpath.exists():
        manifest = json.loads(mpath.read_text())
        missing = [
            f for f in manifest["files"].values() if not (out / f["file"]).exists()
        ]
        if manifest.get("generator") != gen.source_hash() or missing:
            manifest = None
    if manifest is None:
        log(f"generating {scale} workload files into {out} ...")
        manifest = gen.generate(scale, out)
    manifest["dir"] = str(out)
    return manifest


def geofleetd_argv(explicit: str | None) -> tuple[list[str] | None, str]:
    """The command that starts geofleetd, or None and the reason."""
    if explicit:
        argv = shlex.split(explicit)
    elif shutil.which("geofleetd"):
        argv = [shutil.which("geofleetd") or "geofleetd"]
    else:
        return None, "the geofleetd command is not installed (pip install -e .)"
    try:
        proc = subprocess.run(
            [*argv, "serve", "--help"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"`{' '.join(argv)} serve --help` failed: {exc}"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return None, f"`geofleetd serve --help` exits {proc.returncode}: {tail[0]}"
    return argv, proc.stdout


# --- the run ---------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    manifest: dict[str, Any]
    workdir: Path
    g_argv: list[str] | None
    g_reason: str  # why geofleetd cannot run, or its `serve --help` text

    @property
    def g_help(self) -> str:
        return self.g_reason if self.g_argv is not None else ""

    results: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counter: int = 0
    g_broken: str = ""  # why geofleetd failed to start, once it has

    # -- helpers --

    def file(self, name: str) -> tuple[Path, int]:
        info = self.manifest["files"][name]
        return Path(self.manifest["dir"]) / info["file"], int(info["commands"])

    def timeout_for(self, commands: int) -> float:
        if self.args.pipe_timeout:
            return float(self.args.pipe_timeout)
        return 120.0 + commands / 2000.0

    def server(self, kind: str, label: str, extra: list[str] | None = None) -> Server:
        self.counter += 1
        root = self.workdir / f"{self.counter:02d}-{label}"
        root.mkdir(parents=True)
        if kind == "redis":
            base = [shutil.which("redis-server") or "redis-server"]
        else:
            assert self.g_argv is not None
            base = list(self.g_argv)
        return Server(kind, base, root, label, list(extra or []))

    @contextlib.contextmanager
    def step(
        self, name: str, workload: str | None = None, kind: str | None = None
    ) -> Iterator[None]:
        """Run one step; report and record its failure instead of stopping.

        ``Unsupported`` is not a failure: the server refused the workload
        outright (an error to every command), which is expected while the
        feature is not built; it is noted under ``workload``/``kind``.
        """
        log(f"-- {name}")
        try:
            yield
        except Unsupported as exc:
            log(f"   not supported yet: {exc}")
            if workload and kind:
                entry = self.results.setdefault(workload, {}).setdefault(kind, {})
                entry.setdefault("unsupported", str(exc))
        except BenchError as exc:
            self.failures.append(f"{name}: {exc}")
            log(f"FAILED at step '{name}': {exc}")
        except Exception as exc:  # any other bug: report it, go on with the rest
            self.failures.append(f"{name}: {type(exc).__name__}: {exc}")
            log(f"FAILED at step '{name}': {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stdout)

    def quiet(self, own: list[int]) -> float:
        """Before a timed run: wait for other processes to leave the CPUs."""
        busy = common.wait_quiet(self.args.quiet_wait, self.args.quiet_cores, own)
        if busy >= self.args.quiet_cores:
            log(
                f"   machine still busy after {self.args.quiet_wait:.0f} s: other "
                f"processes use {busy:.2f} cores; timing anyway"
            )
        return busy

    def pipe(self, srv: Server, name: str, timed: bool = False) -> common.PipeResult:
        if not srv.alive():
            raise BenchError(f"{srv.label} is not running; log tail:\n{srv.log_tail()}")
        path, n = self.file(name)
        busy_before = self.quiet([srv.pid]) if timed else 0.0
        try:
            res = common.pipe(srv.port, path, n, self.timeout_for(n), srv.root, srv.pid)
        except BenchError as exc:
            if srv.alive():
                raise
            raise BenchError(
                f"{srv.label} exited (code {srv.proc.returncode if srv.proc else '?'}) "
                f"during {name}: {exc}\nlog tail:\n{srv.log_tail()}"
            ) from exc
        res.busy_before = busy_before
        if not srv.alive():
            raise BenchError(
                f"{srv.label} exited during {name}; log tail:\n{srv.log_tail()}"
            )
        if res.errors:
            log(
                f"   {res.errors:,} of {n:,} replies were errors, first: "
                f"{res.first_errors[:1]}"
            )
        return res

    def load(self, srv: Server, name: str) -> None:
        """Untimed prerequisite load; every reply must be OK."""
        res = self.pipe(srv, name)
        if res.errors >= res.commands:
            raise Unsupported(f"{name} refused: {res.first_errors[:1]}")
        if res.errors:
            raise BenchError(
                f"loading {name} gave {res.errors:,} errors: {res.first_errors[:1]}"
            )

    def record(
        self, workload: str, kind: str, res: common.PipeResult, **extra: Any
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "commands": res.commands,
            "seconds": round(res.seconds, 4),
            "rate": round(res.rate, 1),
            "errors": res.errors,
            "first_errors": res.first_errors[:2],
            "cpu_server": round(res.server_cpu, 2),
            "cpu_redis_cli": round(res.client_cpu, 2),
            "cpu_others": round(res.other_cpu, 2),
            "others_before": round(res.busy_before, 2),
            **extra,
        }
        if res.errors and res.errors >= res.commands:
            entry["unsupported"] = res.first_errors[0] if res.first_errors else "errors"
            log(f"   not supported yet: {entry['unsupported']}")
        else:
            log(
                f"   {res.commands:,} commands in {res.seconds:.3f} s = "
                f"{res.rate:,.0f}/s (cores: server {res.server_cpu:.2f}, "
                f"redis-cli {res.client_cpu:.2f}, others {res.other_cpu:.2f})"
            )
        self.results.setdefault(workload, {})[kind] = entry
        return entry

    def kinds(self) -> list[str]:
        out = []
        if "geofleetd" in self.args.servers:
            if self.g_argv is None:
                self.notes.append(f"geofleetd not run: {self.g_reason}")
            elif self.g_broken:
                self.notes.append(f"geofleetd skipped after: {self.g_broken}")
            else:
                out.append("geofleetd")
        if "redis" in self.args.servers:
            out.append("redis")
        return out

    def geofleetd_extra(self) -> list[str]:
        return ["--fsync", self.args.fsync] if self.args.fsync else []

    def start(self, srv: Server) -> float:
        try:
            secs = srv.start()
        except ServerExited as exc:
            if srv.kind == "geofleetd" and srv.starts == 1:
                # It cannot start at all: say so once, skip its other steps.
                self.g_broken = str(exc).splitlines()[0]
            raise
        log(
            f"   {srv.label} pid {srv.pid} on 127.0.0.1:{srv.port}, "
            f"ready in {secs:.2f} s"
        )
        return secs

    def samples(self, srv: Server, name: str, n: int = 3) -> list[Any]:
        path, _ = self.file(name)
        cmds = common.parse_commands(path, n)
        with Client(srv.port) as c:
            return [c.call(*cmd) for cmd in cmds]

    # -- core workloads (issue 2) --

    def run_core(self, selected: list[str]) -> None:
        for kind in self.kinds():
            todo = [w for w in selected if kind == "geofleetd" or w in REDIS_WORKLOADS]
            if not todo:
                continue
            extra = self.geofleetd_extra() if kind == "geofleetd" else []
            srv = self.server(kind, f"{kind}-core", extra)
            with self.step(f"{kind}: start for core workloads"):
                self.start(srv)
            if not srv.alive():
                continue
            for w in todo:
                with self.step(f"{kind}: {w}", w, kind):
                    if not srv.alive():
                        log(f"   {srv.label} had exited; starting it again")
                        srv.port = 0
                        self.start(srv)
                    self.core_workload(srv, kind, w)
            with self.step(f"{kind}: stop core server"):
                secs, killed = srv.stop()
                if killed:
                    raise BenchError(
                        f"{srv.label} ignored SIGTERM for {secs:.0f} s; killed"
                    )

    def core_workload(self, srv: Server, kind: str, w: str) -> None:
        """Run one core workload ``--repeat`` times and record the median.

        Writes start from an empty store each time (FLUSH first); reads run
        over the 200k SETs loaded once before the first repetition.
        """
        reads = w in ("nearby", "within", "district")
        runs: list[common.PipeResult] = []
        rss_mb: float | None = None
        for i in range(self.args.repeat):
            if i == 0 or not reads:
                srv.flush()
                if reads:
                    self.load(srv, f"set.{kind}")
            res = self.pipe(srv, f"{w}.{kind}", timed=True)
            runs.append(res)
            if i == 0 and w == "set":
                rss = common.vm_rss_kb(srv.pid)
                rss_mb = round(rss / 1024, 1) if rss else None
            if res.errors >= res.commands:
                break  # refused outright: repeating tells nothing
        ordered = sorted(runs, key=lambda r: r.rate)
        entry = self.record(w, kind, ordered[len(ordered) // 2])
        entry["runs"] = [round(r.rate, 1) for r in runs]
        if len(runs) > 1:
            log(f"   median of {len(runs)} runs: " + ", ".join(k(r.rate) for r in runs))
        if w == "set":
            entry["rss_mb"] = rss_mb
            log(f"   VmRSS after the first load: {rss_mb} MB")
            self.check_count(srv, "fleet", int(self.manifest["sizes"]["ids"]))
        if w in ("nearby", "within") and "unsupported" not in entry:
            entry["samples"] = self.samples(srv, f"{w}.{kind}")
        if w == "nearby" and kind == "redis":
            self.check_radius(srv)

    def check_count(self, srv: Server, key: str, want: int) -> int | None:
        with Client(srv.port) as c:
            got = (
                c.call("ZCARD", key)
                if srv.kind == "redis"
                else c.call("SCAN", key, "COUNT")
            )
        if is_error(got) or not isinstance(got, int):
            log(f"   (could not count {key}: {got!r})")
            return None
        if got != want:
            log(f"   WARNING: {key} holds {got:,} objects, expected {want:,}")
        return got

    def check_radius(self, srv: Server) -> None:
        """The fixed GEOSEARCH radius fills 10 results at the worst query points."""
        radius = str(self.manifest["params"]["nearby_radius_m"])
        with Client(srv.port) as c:
            short = []
            for lat, lon in self.manifest["params"]["nearby_check"]:
                got = c.call(
                    "GEOSEARCH",
                    "fleet",
                    "FROMLONLAT",
                    lon,
                    lat,
                    "BYRADIUS",
                    radius,
                    "m",
                    "ASC",
                    "COUNT",
                    "10",
                )
                if not isinstance(got, list) or len(got) < 10:
                    short.append((lat, lon, got))
        if short:
            raise BenchError(
                f"radius {radius} m leaves queries short of 10: {short[:2]}"
            )
        log(f"   radius {radius} m fills 10 results at the 5 sparsest query points")

    # -- issue 3 --

    def run_fsync(self) -> None:
        for kind in self.kinds():
            if kind == "geofleetd" and "--fsync" not in self.g_help:
                log(
                    "-- geofleetd: fsync policies\n   not supported yet: "
                    "`geofleetd serve --help` lists no --fsync"
                )
                for policy in ("always", "everysec", "no"):
                    self.results.setdefault(f"fsync-{policy}", {})[kind] = {
                        "unsupported": "no --fsync option"
                    }
                continue
            for policy in ("always", "everysec", "no"):
                if kind == "redis":
                    extra = ["--appendonly", "yes", "--appendfsync", policy]
                else:
                    extra = ["--fsync", policy]
                srv = self.server(kind, f"{kind}-fsync-{policy}", extra)
                with self.step(f"{kind}: set under fsync={policy}"):
                    self.start(srv)
                    res = self.pipe(srv, f"set.{kind}", timed=True)
                    self.record(f"fsync-{policy}", kind, res)
                with self.step(f"{kind}: stop fsync={policy} server"):
                    srv.stop()

    def run_recovery(self) -> None:
        want = int(self.manifest["files"]["recovery.geofleetd"]["commands"])
        for kind in self.kinds():
            extra = (
                ["--appendonly", "yes", "--appendfsync", "everysec"]
                if kind == "redis"
                else self.geofleetd_extra()
            )
            srv = self.server(kind, f"{kind}-recovery", extra)
            with self.step(f"{kind}: recovery of {want:,} records", "recovery", kind):
                self.recover_one(srv, kind, want)
            with self.step(f"{kind}: stop recovery server"):
                srv.stop()

    def recover_one(self, srv: Server, kind: str, want: int) -> None:
        """Load ``want`` records, stop with SIGTERM, restart, time readiness."""
        self.start(srv)
        res = self.pipe(srv, f"recovery.{kind}", timed=True)
        entry = self.record("recovery", kind, res)
        if "unsupported" in entry:
            return
        rss = common.vm_rss_kb(srv.pid)
        entry["rss_mb_loaded"] = round(rss / 1024, 1) if rss else None
        entry["count_before"] = self.check_count(srv, "fleet", want)
        stop_s, killed = srv.stop(timeout=120)
        entry["stop_s"] = round(stop_s, 3)
        entry["stop_killed"] = killed
        entry["dir_mb"] = round(
            sum(p.stat().st_size for p in srv.data_dir.rglob("*") if p.is_file()) / 1e6,
            1,
        )
        log(
            f"   SIGTERM -> exit in {stop_s:.2f} s"
            f"{' (KILLED)' if killed else ''}; "
            f"data dir {entry['dir_mb']} MB"
        )
        entry["others_before_restart"] = round(self.quiet([]), 2)
        ready = srv.start(ready_timeout=300)
        entry["restart_s"] = round(ready, 3)
        entry["count_after"] = self.check_count(srv, "fleet", want)
        rss = common.vm_rss_kb(srv.pid)
        entry["rss_mb_recovered"] = round(rss / 1024, 1) if rss else None
        log(
            f"   restart: serving data after {ready:.2f} s, "
            f"{entry['count_after']} objects, "
            f"VmRSS {entry['rss_mb_recovered']} MB"
        )
        if entry["count_after"] != want:
            raise BenchError(
                f"after restart {entry['count_after']} objects, "
                f"expected {want:,} (is the log persisted?)"
            )

    # -- issue 4 --

    def run_fence_ingest(self, workload: str, chans: str, data: str) -> None:
        if "geofleetd" not in self.kinds():
            return
        srv = self.server("geofleetd", f"geofleetd-{workload}", self.geofleetd_extra())
        sub: Subscriber | None = None
        try:
            with self.step(f"geofleetd: {workload}", workload, "geofleetd"):
                self.start(srv)
                first = common.parse_commands(self.file(chans)[0], 1)[0]
                with Client(srv.port) as c:
                    reply = c.call(*first)
                if is_error(reply):
                    log(f"   not supported yet: SETCHAN answers {reply}")
                    self.results[workload] = {"geofleetd": {"unsupported": str(reply)}}
                    return
                res = self.pipe(srv, chans)
                log(f"   {res.commands:,} SETCHAN in {res.seconds:.3f} s")
                if res.errors:
                    raise BenchError(
                        f"SETCHAN gave {res.errors} errors: {res.first_errors[:1]}"
                    )
                sub = Subscriber(srv.port)
                if not sub.wait_subscribed(10):
                    log(f"   not supported yet: PSUBSCRIBE * gave {sub.head()!r}")
                    self.results[workload] = {
                        "geofleetd": {"unsupported": f"PSUBSCRIBE: {sub.head()}"}
                    }
                    return
                busy_before = self.quiet([srv.pid])
                sub_cpu0 = common.proc_cpu_s(sub.proc.pid)
                t0 = time.monotonic()
                res = self.pipe(srv, data)
                t_end = time.monotonic()
                res.busy_before = busy_before
                sub_cpu = (common.proc_cpu_s(sub.proc.pid) - sub_cpu0) / (t_end - t0)
                sub.wait_idle(idle=2.0, limit=120)
                entry = self.record(workload, "geofleetd", res)
                entry["events"] = sub.events
                entry["chans"] = self.file(chans)[1]
                lag = (sub.last_event - t_end) if sub.last_event else None
                entry["last_event_after_pipe_s"] = (
                    round(lag, 3) if lag is not None else None
                )
                entry["sample_event"] = sub.sample
                entry["cpu_subscriber"] = round(sub_cpu, 2)
                log(
                    f"   subscriber (redis-cli, {sub_cpu:.2f} cores) got "
                    f"{sub.events:,} events; last one "
                    f"{lag if lag is None else round(lag, 3)} s after the last reply "
                    f"({t_end - t0:.2f} s of ingest)"
                )
        finally:
            if sub is not None:
                sub.close()
            with self.step(f"geofleetd: stop {workload} server"):
                srv.stop()

    def run_latency(self) -> None:
        secs = 3.0 if self.args.quick else 10.0
        for kind in self.kinds():
            srv = self.server(
                kind,
                f"{kind}-latency",
                self.geofleetd_extra() if kind == "geofleetd" else [],
            )
            with self.step(f"{kind}: latency at 10k/s", "latency", kind):
                self.start(srv)
                mode = "publish"
                if kind == "geofleetd":
                    mode = "fence"
                    self.load(srv, "set.geofleetd")
                    path = self.file("chans_nearby.geofleetd")[0]
                    with Client(srv.port) as c:
                        reply = c.call(*common.parse_commands(path, 1)[0])
                    if is_error(reply):
                        log(f"   not supported yet: SETCHAN answers {reply}")
                        self.results.setdefault("latency", {})[kind] = {
                            "unsupported": str(reply)
                        }
                        mode = ""
                    else:
                        self.load(srv, "chans_nearby.geofleetd")
                if mode:
                    self.measure_latency(srv, kind, mode, secs)
            with self.step(f"{kind}: stop latency server"):
                srv.stop()

    def measure_latency(self, srv: Server, kind: str, mode: str, secs: float) -> None:
        argv = [
            sys.executable,
            str(HERE / "latency.py"),
            "--port",
            str(srv.port),
            "--mode",
            mode,
            "--rate",
            "10000",
            "--seconds",
            str(secs),
            "--ids",
            str(self.manifest["sizes"]["ids"]),
        ]
        busy_before = self.quiet([srv.pid])
        busy0, srv0 = common.cpu_busy_s(), common.proc_cpu_s(srv.pid)
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        proc = common.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=secs * 3 + 200)
        except subprocess.TimeoutExpired as exc:
            common.end_process(proc, signal.SIGKILL)
            raise BenchError("latency.py did not finish in time") from exc
        common.end_process(proc)
        wall = time.monotonic() - t0
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        probe = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
        server = common.proc_cpu_s(srv.pid) - srv0
        others = max(0.0, common.cpu_busy_s() - busy0 - server - probe) / wall
        lines = out.decode().strip().splitlines()
        if not lines:
            raise BenchError(f"latency.py printed nothing: {err.decode()[-300:]}")
        entry = json.loads(lines[-1])
        entry["cpu_server"] = round(server / wall, 2)
        entry["cpu_probe"] = round(probe / wall, 2)
        entry["cpu_others"] = round(others, 2)
        entry["others_before"] = round(busy_before, 2)
        self.results.setdefault("latency", {})[kind] = entry
        if not entry.get("ok"):
            raise BenchError(f"latency.py: {entry.get('error')}")
        log(
            f"   {entry['updates']:,} updates at {entry['rate_sent']:,.0f}/s, "
            f"{entry['events_matched']:,} events matched: p50 "
            f"{entry.get('p50_ms')} ms, p99 {entry.get('p99_ms')} ms"
        )
        if entry.get("errors"):
            raise BenchError(f"{entry['errors']} updates answered an error")


class Subscriber:
    """``redis-cli PSUBSCRIBE '*'`` in the background, counting messages.

    redis-cli writes each pushed message, when its stdout is a pipe, as four
    lines: ``pmessage``, the pattern, the channel, the payload.
    """

    def __init__(self, port: int) -> None:
        cli = shutil.which("redis-cli") or "redis-cli"
        self.proc = common.spawn(
            [cli, "-h", common.HOST, "-p", str(port), "PSUBSCRIBE", "*"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.events = 0
        self.last_event = 0.0
        self.sample: str | None = None
        self.subscribed = threading.Event()
        self._head: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        pending = -1  # lines left before the payload of a message
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if len(self._head) < 6:
                self._head.append(line)
            if line == "psubscribe":
                self.subscribed.set()
            if pending > 0:
                pending -= 1
                if pending == 0 and self.sample is None:
                    self.sample = line[:400]
                continue
            if line == "pmessage":
                self.events += 1
                self.last_event = time.monotonic()
                pending = 3

    def head(self) -> str:
        return " | ".join(self._head)

    def wait_subscribed(self, timeout: float) -> bool:
        return self.subscribed.wait(timeout)

    def wait_idle(self, idle: float, limit: float) -> None:
        """Wait until no message arrived for ``idle`` s (at most ``limit`` s)."""
        start = time.monotonic()
        seen, since = self.events, time.monotonic()
        while time.monotonic() - start < limit:
            time.sleep(0.1)
            if self.events != seen:
                seen, since = self.events, time.monotonic()
            elif time.monotonic() - since >= idle:
                return

    def close(self) -> None:
        common.end_process(self.proc, signal.SIGTERM, timeout=5)
        self._thread.join(timeout=5)


# --- report ----------------------------------------------------------------


def k(rate: float | None) -> str:
    if rate is None:
        return "-"
    if rate >= 10_000:
        return f"{rate / 1000:,.0f}k"
    if rate >= 1_000:
        return f"{rate / 1000:,.1f}k"
    return f"{rate:,.0f}"


def cell(entry: dict[str, Any] | None, key: str = "rate") -> str:
    if entry is None:
        return "-"
    if "unsupported" in entry:
        return "not supported yet"
    val = entry.get(key)
    text = k(val) + "/s" if key == "rate" and val is not None else str(val)
    if entry.get("errors"):
        text += f" ({entry['errors']:,} err)"
    if key == "rate" and entry.get("cpu_others", 0) >= BUSY_MARK:
        text += " *"
    runs = entry.get("runs") or []
    if key == "rate" and len(runs) > 1 and max(runs) > 1.5 * min(runs):
        text += " (runs " + "/".join(k(x) for x in runs) + ")"
    return text


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str = "rate") -> str:
    try:
        assert a is not None and b is not None
        if (
            "unsupported" in a
            or "unsupported" in b
            or a.get("errors")
            or b.get("errors")
        ):
            return "-"
        return f"{a[key] / b[key]:.2f}"
    except (AssertionError, KeyError, TypeError, ZeroDivisionError):
        return "-"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append(
            "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        )
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def crosscheck(r: dict[str, Any]) -> list[str]:
    """Compare the first replies of geofleetd and Redis on the same queries."""
    lines = []
    g = r.get("nearby", {}).get("geofleetd", {}).get("samples")
    d = r.get("nearby", {}).get("redis", {}).get("samples")
    if g and d:
        same = 0
        for gs, ds in zip(g, d, strict=False):
            ids = gs[1] if isinstance(gs, list) and len(gs) == 2 else gs
            same += ids == ds
        lines.append(f"NEARBY: same 10 ids in the same order for {same}/{len(d)}")
    g = r.get("within", {}).get("geofleetd", {}).get("samples")
    d = r.get("within", {}).get("redis", {}).get("samples")
    if g and d:
        pairs = [
            (gs, len(ds) if isinstance(ds, list) else ds)
            for gs, ds in zip(g, d, strict=False)
        ]
        same = sum(a == b_ for a, b_ in pairs)
        lines.append(
            f"WITHIN: same count for {same}/{len(pairs)} "
            f"(geofleetd/redis: {', '.join(f'{a}/{b_}' for a, b_ in pairs)})"
        )
    if lines:
        return [
            "Cross-check on the first queries of each file: " + "; ".join(lines),
            "",
        ]
    return []


def report(b: Bench) -> str:
    r = b.results
    out: list[str] = []
    rows = [
        [
            "workload",
            "ops",
            "geofleetd",
            "redis",
            "g/redis",
            "Tile38 1.37",
            "g/T38",
            "target",
        ]
    ]
    for w in CORE:
        if w not in r:
            continue
        g, d = r[w].get("geofleetd"), r[w].get("redis")
        ops = (g or d or {}).get("commands")
        t38 = T38.get(w)
        g_t38 = "-"
        if g and t38 and "unsupported" not in g and not g.get("errors"):
            g_t38 = f"{g['rate'] / t38:.2f}"
        rows.append(
            [
                LABEL[w],
                f"{ops:,}" if ops else "-",
                cell(g),
                cell(d) if w in REDIS_WORKLOADS else "n/a (no polygon query)",
                ratio(g, d),
                (k(t38) + "/s") if t38 else "-",
                g_t38,
                TARGET.get(w, "-"),
            ]
        )
    if "set" in r:
        g, d = r["set"].get("geofleetd"), r["set"].get("redis")
        rows.append(
            [
                "VmRSS after the SET load (MB)",
                "",
                cell(g, "rss_mb"),
                cell(d, "rss_mb"),
                ratio(g, d, "rss_mb"),
                "58 MB",
                "-",
                TARGET["rss_mb"],
            ]
        )
    if len(rows) > 1:
        out += [
            "Core workloads (issue 2); Redis runs GEOADD/GEOSEARCH "
            "(Tile38 measured Redis GEOADD at 260k/s):",
            table(rows),
            "",
            *crosscheck(r),
        ]

    if any(f"fsync-{p}" in r for p in ("always", "everysec", "no")):
        rows = [
            [
                "SET ingest by fsync policy",
                "geofleetd",
                "redis (AOF appendfsync)",
                "target",
            ]
        ]
        for p in ("always", "everysec", "no"):
            e = r.get(f"fsync-{p}", {})
            rows.append(
                [f"fsync {p}", cell(e.get("geofleetd")), cell(e.get("redis")), ""]
            )
        ga = r.get("fsync-always", {})
        gn = r.get("fsync-no", {})
        rows.append(
            [
                "ratio always/no",
                ratio(ga.get("geofleetd"), gn.get("geofleetd")),
                ratio(ga.get("redis"), gn.get("redis")),
                TARGET["fsync"],
            ]
        )
        out += ["Durability (issue 3):", table(rows), ""]

    if "recovery" in r:
        rows = [
            [
                "recovery",
                "ingest",
                "stop (SIGTERM)",
                "data dir",
                "restart ready",
                "objects after",
                "VmRSS loaded/recovered",
                "Tile38 / target",
            ]
        ]
        for kind, e in r["recovery"].items():
            if "unsupported" in e:
                rows.append([kind, "not supported yet", "", "", "", "", "", ""])
                continue
            rows.append(
                [
                    kind,
                    cell(e),
                    f"{e.get('stop_s', '-')} s",
                    f"{e.get('dir_mb', '-')} MB",
                    f"{e.get('restart_s', '-')} s",
                    f"{e.get('count_after', '-'):,}"
                    if isinstance(e.get("count_after"), int)
                    else "-",
                    f"{e.get('rss_mb_loaded', '-')} / "
                    f"{e.get('rss_mb_recovered', '-')} MB",
                    f"{T38['recovery_s']} s / {TARGET['recovery_s']}",
                ]
            )
        out += [
            f"Recovery of {b.manifest['sizes']['recovery']:,} records (issue 3; redis: "
            "AOF everysec):",
            table(rows),
            "",
        ]

    fence_rows = [
        ["fences (issue 4, geofleetd)", "ingest", "events", "Tile38 1.37", "target"]
    ]
    refs = {"fences": "76k/s, ~104k events", "ais-fences": "95k/s, 1,261 events"}
    sets = b.manifest["files"]["set.geofleetd"]["commands"]
    ais = b.manifest["files"]["ais.geofleetd"]["commands"]
    names = {
        "fences": f"1,000 NEARBY chans + PSUBSCRIBE, {sets:,} SET",
        "ais-fences": f"71 district chans + PSUBSCRIBE, {ais:,} AIS SET",
    }
    for w in ("fences", "ais-fences"):
        if w in r:
            e = r[w].get("geofleetd")
            fence_rows.append(
                [
                    names[w],
                    cell(e),
                    f"{e['events']:,}" if e and "events" in e else "-",
                    refs[w],
                    TARGET[w],
                ]
            )
    if "latency" in r:
        for kind, e in r["latency"].items():
            what = (
                "SET->event at 10k/s, 1,000 chans"
                if kind == "geofleetd"
                else "redis PUBLISH->message at 10k/s (harness floor)"
            )
            if "unsupported" in e:
                fence_rows.append([what, "not supported yet", "", "", ""])
            elif e.get("ok"):
                fence_rows.append(
                    [
                        what,
                        (
                            f"FELL BEHIND ({e.get('replies', 0):,} of "
                            f"{e.get('updates', 0):,} answered): "
                            if e.get("fell_behind")
                            else ""
                        )
                        + f"p50 {e.get('p50_ms')} ms, p99 {e.get('p99_ms')} ms"
                        + (" *" if e.get("cpu_others", 0) >= BUSY_MARK else ""),
                        f"{e.get('events_matched', 0):,}",
                        "p50 0.24 ms, p99 2.4-2.9 ms" if kind == "geofleetd" else "-",
                        TARGET["latency"] if kind == "geofleetd" else "-",
                    ]
                )
            else:
                fence_rows.append([what, f"failed: {e.get('error')}", "", "", ""])
    if len(fence_rows) > 1:
        out += ["Live fences:", table(fence_rows), ""]
    busy = sorted(
        {
            f"{w}/{kind} ({e['cpu_others']:.2f} cores)"
            for w, per in r.items()
            for kind, e in per.items()
            if isinstance(e, dict) and e.get("cpu_others", 0) >= BUSY_MARK
        }
    )
    if busy:
        out.append(
            f"* other processes kept >= {BUSY_MARK} cores busy during: "
            + ", ".join(busy)
            + "; those figures are low by an unknown amount."
        )
    return "\n".join(out)


def export_ref(ref: str, dest: Path) -> tuple[str, str]:
    """Export the geofleetd package at a git revision.

    Returns the command that starts it and the revision's short hash.
    """
    root = HERE.parent
    rev = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", ref],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if rev.returncode != 0:
        raise BenchError(f"unknown git revision {ref!r}: {rev.stderr.strip()}")
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", ref, "geofleetd"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if archive.returncode != 0:
        raise BenchError(f"git archive {ref} failed: {archive.stderr.decode()[-300:]}")
    subprocess.run(
        ["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True, timeout=60
    )
    # `env` execs the interpreter, so the server keeps the pid run.py sees.
    cmd = shlex.join(["env", f"PYTHONPATH={dest}", sys.executable, "-m", "geofleetd"])
    return cmd, rev.stdout.strip()


def keep_logs(workdir: Path) -> None:
    """Copy every server log of a failed run to bench/out/logs-<time>/."""
    logs = sorted(workdir.glob("*/server.log"))
    if not logs:
        return
    dest = HERE / "out" / time.strftime("logs-%Y%m%dT%H%M%SZ", time.gmtime())
    dest.mkdir(parents=True, exist_ok=True)
    for path in logs:
        shutil.copyfile(path, dest / f"{path.parent.name}.log")
    log(f"server logs of this run copied to {dest}")


def parse_only(text: str | None) -> list[str]:
    if not text:
        return list(ALL)
    chosen: list[str] = []
    for part in text.split(","):
        part = part.strip()
        names = GROUPS.get(part, [part])
        for n in names:
            if n not in ALL:
                raise SystemExit(
                    f"unknown workload {n!r}; choose from {', '.join(ALL)} "
                    f"or {', '.join(GROUPS)}"
                )
            if n not in chosen:
                chosen.append(n)
    return chosen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--only", help=f"comma list of: {', '.join(ALL)}, or core/issue3/issue4"
    )
    ap.add_argument("--quick", action="store_true", help="a tenth of the big workloads")
    ap.add_argument(
        "--servers",
        default="geofleetd,redis",
        help="which servers to run (default both)",
    )
    ap.add_argument(
        "--geofleetd-cmd",
        help="command that starts geofleetd (default: the geofleetd on PATH)",
    )
    ap.add_argument(
        "--geofleetd-ref",
        help="run geofleetd as committed at this git revision (e.g. HEAD), "
        "exported to a temporary folder, instead of the installed work tree",
    )
    ap.add_argument(
        "--fsync",
        choices=["always", "everysec", "no"],
        help="geofleetd --fsync for all but the fsync workload "
        "(default: the server's own default)",
    )
    ap.add_argument(
        "--pipe-timeout", type=float, help="seconds allowed per redis-cli --pipe"
    )
    ap.add_argument(
        "--json",
        type=Path,
        help="write all results here (default "
        "bench/out/results-<scale>-<utc time>.json)",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each timed run, wait up to this many seconds for other "
        "processes to stop using the CPUs (default 60)",
    )
    ap.add_argument(
        "--quiet-cores",
        type=float,
        default=0.25,
        help="'quiet' means other processes use fewer cores than this (default 0.25)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timed runs per core workload; the median is reported (default 3)",
    )
    ap.add_argument(
        "--keep", action="store_true", help="keep the servers' data folders"
    )
    args = ap.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    selected = parse_only(args.only)
    scale = "quick" if args.quick else "full"

    # SIGTERM/SIGHUP end the run through the same clean-up as Ctrl-C.
    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)

    workdir = Path(tempfile.mkdtemp(prefix="geofleetd-bench-"))
    bench: Bench | None = None
    rc = 0
    try:
        ensure_redis_tools()
        manifest = ensure_files(scale)
        rev = ""
        if args.geofleetd_ref:
            args.geofleetd_cmd, rev = export_ref(args.geofleetd_ref, workdir / "src")
        g_argv, g_info = (
            geofleetd_argv(args.geofleetd_cmd)
            if "geofleetd" in args.servers
            else (None, "not asked for")
        )
        bench = Bench(args, manifest, workdir, g_argv, g_info)
        info = common.machine_info()
        if args.geofleetd_ref:
            info["geofleetd_tree"] = f"{args.geofleetd_ref} = {rev} (exported)"
        log("machine: " + ", ".join(f"{k_}={v}" for k_, v in info.items()))
        log(
            f"workloads: {', '.join(selected)} ({scale}); "
            f"servers: {', '.join(args.servers)}"
        )
        if g_argv is None and "geofleetd" in args.servers:
            log(f"geofleetd will not run: {g_info}")
        core = [w for w in CORE if w in selected]
        if core:
            bench.run_core(core)
        if "fsync" in selected:
            bench.run_fsync()
        if "recovery" in selected:
            bench.run_recovery()
        if "fences" in selected:
            bench.run_fence_ingest("fences", "chans_nearby.geofleetd", "set.geofleetd")
        if "ais-fences" in selected:
            bench.run_fence_ingest(
                "ais-fences", "chans_district.geofleetd", "ais.geofleetd"
            )
        if "latency" in selected:
            bench.run_latency()

        log("")
        log(report(bench))
        for note in dict.fromkeys(bench.notes):
            log(f"note: {note}")
        out = args.json or HERE / "out" / (
            f"results-{scale}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "machine": info,
                    "scale": scale,
                    "manifest": {k_: v for k_, v in manifest.items() if k_ != "files"},
                    "results": bench.results,
                    "failures": bench.failures,
                    "notes": bench.notes,
                },
                indent=1,
                default=str,
            )
            + "\n"
        )
        log(f"results written to {out}")
        if bench.failures:
            log(f"{len(bench.failures)} step(s) failed:")
            for f in bench.failures:
                log(f"  - {f.splitlines()[0]}")
            rc = 1
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc}); stopping servers")
        rc = 130
    except BenchError as exc:
        log(f"FAILED during set-up: {exc}")
        rc = 2
    finally:
        common.stop_all()
        if rc != 0:
            keep_logs(workdir)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"server folders kept in {workdir}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
