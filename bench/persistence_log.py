"""Benchmark of the persistence layer alone: append, replay, check, compaction stall.

Measures, on real LMDB files in a temporary directory (removed afterwards):

1. ``append``: N SET-like records in batches of 1,000 and of 100 under each fsync
   policy, on a fresh log (the file grows) and on a log whose pages were freed by a
   compaction (steady state: pages are reused, the file does not grow). Each figure
   is the median of ``--repeat`` runs, in records per second.
2. ``replay``: decode + checksum of M records after reopening, and ``check()`` of
   the same directory.
3. compaction stall: the main thread appends a batch every 2 ms while a worker
   thread runs ``snapshot_and_compact`` over a large log; the append latencies
   during compaction are compared with those before it.

Usage: ``python bench/persistence_log.py [--records 200000] [--replay 1000000]
[--repeat 3] [--dir /path/on/the/disk/to/test] [--json out.json]``.

Limits: single process, no server, no network; figures are for this machine's
disk and CPU and are noisy on a shared 2-core box (hence the median of repeats).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from geofleetd.persistence import AppendLog, FsyncPolicy, check

POLICIES: tuple[FsyncPolicy, ...] = ("no", "everysec", "always")


def make_records(n: int, start: int = 0) -> list[list[Any]]:
    return [
        [
            "set",
            "fleet",
            f"truck{i}",
            ["p", 40.7 + (i % 1000) * 1e-5, -74.0 - (i % 777) * 1e-5],
            {"speed": 12.5},
            None,
        ]
        for i in range(start, start + n)
    ]


def timed_appends(log: AppendLog, records: list[list[Any]], batch: int) -> float:
    """Records per second appending ``records`` in batches of ``batch``."""
    t0 = time.perf_counter()
    for i in range(0, len(records), batch):
        log.append(records[i : i + batch])
        log.sync_if_due()
    return len(records) / (time.perf_counter() - t0)


def bench_append(
    root: Path, records: list[list[Any]], repeat: int, steady: bool
) -> dict[str, float]:
    out: dict[str, float] = {}
    for batch in (1000, 100):
        runs: dict[str, list[float]] = {p: [] for p in POLICIES}
        for rep in range(repeat):
            for policy in POLICIES:  # interleaved, so drift hits every policy
                d = root / f"append-{policy}-{batch}-{rep}-{int(steady)}"
                with AppendLog(d, fsync=policy) as log:
                    if steady:
                        log.append(records[:1])
                        timed_appends(log, records, 1000)
                        log.snapshot_and_compact([], log.last_seq)
                    runs[policy].append(timed_appends(log, records, batch))
                shutil.rmtree(d)
        for policy in POLICIES:
            out[f"{policy}/batch{batch}"] = statistics.median(runs[policy])
    return out


def bench_replay(root: Path, n: int) -> dict[str, float]:
    d = root / "replay"
    records = make_records(n)
    with AppendLog(d, fsync="no") as log:
        for i in range(0, n, 1000):
            log.append(records[i : i + 1000])
    del records
    t0 = time.perf_counter()
    log = AppendLog(d, fsync="no")
    t_open = time.perf_counter() - t0
    t0 = time.perf_counter()
    count = 0
    for _record in log.replay():
        count += 1
    t_replay = time.perf_counter() - t0
    size = log.stats()["log_file_bytes"]
    log.close()
    assert count == n, (count, n)
    t0 = time.perf_counter()
    report = check(d)
    t_check = time.perf_counter() - t0
    assert report.ok, report.summary()
    shutil.rmtree(d)
    return {
        "records": n,
        "open_s": t_open,
        "replay_s": t_replay,
        "replay_records_per_s": n / t_replay,
        "check_s": t_check,
        "file_mb": size / 2**20,
    }


def _latencies(
    log: AppendLog, records: list[list[Any]], until: Callable[[], bool]
) -> list[tuple[float, float]]:
    """Append 1,000 records every 2 ms until ``until()``: (start, latency ms)."""
    out: list[tuple[float, float]] = []
    deadline = time.monotonic() + 120
    i = 0
    while not until() and time.monotonic() < deadline:
        batch = records[i % len(records) : i % len(records) + 1000]
        t0 = time.perf_counter()
        log.append(batch)
        out.append((t0, (time.perf_counter() - t0) * 1000))
        i += 1000
        time.sleep(0.002)
    return out


def _summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms) or [0.0]
    return {
        "n": len(ms),
        "p50_ms": ms[len(ms) // 2],
        "p99_ms": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "max_ms": ms[-1],
    }


def bench_stall(
    root: Path, log_records: int, live: int, policy: FsyncPolicy
) -> dict[str, Any]:
    d = root / f"stall-{policy}"
    records = make_records(log_records)
    state = make_records(live)
    with AppendLog(d, fsync=policy) as log:
        for i in range(0, log_records, 1000):
            log.append(records[i : i + 1000])
        log.sync()
        upto = log.last_seq
        stop = time.monotonic() + 1.0
        before = _latencies(log, records, lambda: time.monotonic() > stop)
        result: dict[str, Any] = {}

        def work() -> None:
            result["t0"] = time.perf_counter()
            result["r"] = log.snapshot_and_compact(state, upto)

        worker = threading.Thread(target=work)
        worker.start()
        during = _latencies(log, records, lambda: not worker.is_alive())
        worker.join(timeout=300)
        r = result["r"]
    shutil.rmtree(d)
    snapshot_end = result["t0"] + r.snapshot_seconds
    return {
        "policy": policy,
        "log_records": log_records,
        "live_records": live,
        "append_before": _summary([ms for _, ms in before]),
        "append_during_snapshot": _summary(
            [ms for t, ms in during if t < snapshot_end]
        ),
        "append_during_delete": _summary([ms for t, ms in during if t >= snapshot_end]),
        "snapshot_s": r.snapshot_seconds,
        "delete_s": r.delete_seconds,
        "deleted": r.log_records_deleted,
        "lock_holds": r.lock_holds,
        "max_lock_hold_ms": r.max_lock_hold_ms,
        "median_lock_hold_ms": r.median_lock_hold_ms,
        "switch_interval_ms": sys.getswitchinterval() * 1000,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--replay", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stall-log", type=int, default=1_000_000)
    ap.add_argument("--stall-live", type=int, default=200_000)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--switch-interval-ms",
        type=float,
        default=None,
        help="sys.setswitchinterval for the stall test (default: Python's 5 ms)",
    )
    args = ap.parse_args()
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    root = Path(tempfile.mkdtemp(prefix="gf-persist-", dir=args.dir))
    results: dict[str, Any] = {}
    try:
        records = make_records(args.records)
        print(f"append {args.records} records, median of {args.repeat} (records/s)")
        for steady in (False, True):
            label = "reused pages" if steady else "fresh file"
            res = bench_append(root, records, args.repeat, steady)
            results[f"append ({label})"] = res
            for batch in (1000, 100):
                no = res[f"no/batch{batch}"]
                cells = "  ".join(
                    f"{p}={res[f'{p}/batch{batch}']:>9,.0f}" for p in POLICIES
                )
                ratio = res[f"always/batch{batch}"] / no
                print(f"  {label:12} batch {batch:>5}: {cells}  always/no={ratio:.0%}")
        rep = bench_replay(root, args.replay)
        results["replay"] = rep
        print(
            f"replay {rep['records']:,} records ({rep['file_mb']:.0f} MB): open "
            f"{rep['open_s']:.3f} s, replay {rep['replay_s']:.2f} s "
            f"({rep['replay_records_per_s']:,.0f}/s); check {rep['check_s']:.2f} s"
        )
        for policy in ("always", "no"):
            st = bench_stall(root, args.stall_log, args.stall_live, policy)
            results[f"stall {policy}"] = st
            print(
                f"compaction under {policy}: snapshot of {st['live_records']:,} in "
                f"{st['snapshot_s']:.2f} s, {st['deleted']:,} log records deleted in "
                f"{st['delete_s']:.2f} s over {st['lock_holds']} lock holds, longest "
                f"hold {st['max_lock_hold_ms']:.2f} ms (median "
                f"{st['median_lock_hold_ms']:.2f})"
            )
            for key in ("before", "during_snapshot", "during_delete"):
                x = st[f"append_{key}"]
                print(
                    f"  append of 1,000 {key.replace('_', ' '):16}: n={x['n']:<4} "
                    f"p50 {x['p50_ms']:.2f}  p99 {x['p99_ms']:.2f}  "
                    f"max {x['max_ms']:.2f} ms"
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
