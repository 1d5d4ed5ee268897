"""Fence evaluation cost per update, in process (no sockets, no log).

Sets up 1,000 channels ``SETCHAN fN NEARBY fleet FENCE DETECT enter,exit POINT lat
lon 500`` at uniform random points of the New York box (as bench/run.py's
``fences`` workload), loads 100k vehicles, then applies 200k moves in batches of
the given size, timing only the fence pass of each batch (``FenceEngine.evaluate``)
and dividing by the batch size. Prints p50/p99/max per-update cost and the events
produced. Usage: ``python bench/fence_cost.py [--batch N]``.
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time

from geofleetd.commands.base import Ctx
from geofleetd.commands.fences import cmd_setchan
from geofleetd.commands.objects import cmd_set
from geofleetd.config import Config
from geofleetd.server.app import Server
from geofleetd.server.connection import ClientState

LAT = (40.49, 40.92)
LON = (-74.26, -73.70)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--updates", type=int, default=200_000)
    args = ap.parse_args()
    rnd = random.Random(20201201)
    srv = Server(Config(dir=tempfile.mkdtemp()))
    srv.db.journaling = False

    def ctx() -> Ctx:
        return Ctx(srv.db, srv, ClientState(0, ""), time.time())

    c = ctx()
    for i in range(100_000):
        la, lo = rnd.uniform(*LAT), rnd.uniform(*LON)
        cmd_set(c, ["SET", "fleet", f"v{i}", "POINT", f"{la:.6f}", f"{lo:.6f}"])
    for n in range(1000):
        la, lo = rnd.uniform(*LAT), rnd.uniform(*LON)
        cmd_setchan(
            c,
            [
                "SETCHAN",
                f"f{n}",
                "NEARBY",
                "fleet",
                "FENCE",
                "DETECT",
                "enter,exit",
                "POINT",
                f"{la:.6f}",
                f"{lo:.6f}",
                "500",
            ],
        )
    gc.collect()
    gc.freeze()
    costs: list[float] = []
    for start in range(0, args.updates, args.batch):
        c = ctx()
        for _ in range(min(args.batch, args.updates - start)):
            la, lo = rnd.uniform(*LAT), rnd.uniform(*LON)
            oid = f"v{rnd.randrange(100_000)}"
            cmd_set(c, ["SET", "fleet", oid, "POINT", f"{la:.6f}", f"{lo:.6f}"])
        t = time.perf_counter()
        srv.fences.evaluate(c)
        per = (time.perf_counter() - t) / max(1, len(c.notes))
        costs.extend([per] * len(c.notes))
    costs.sort()
    n = len(costs)
    print(
        f"batch {args.batch}: {n} updates, fence pass per update "
        f"p50 {costs[n // 2] * 1e6:.1f} us, p99 {costs[int(n * 0.99)] * 1e6:.1f} us, "
        f"max {costs[-1] * 1e6:.1f} us; events {srv.fences.events_sent}"
    )


if __name__ == "__main__":
    main()
