"""An idle server keeps one pending handle per periodic timer (it once kept every
expired handle in a list that grew by 20 a second and was rescanned each time)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from geofleetd.config import Config
from geofleetd.server.app import Server


def test_periodic_timers_do_not_accumulate(tmp_path: Path) -> None:
    async def run() -> tuple[int, int]:
        server = Server(Config(port=0, dir=str(tmp_path / "d")))
        await server.start()
        for _ in range(100):
            if not server.loading:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.3)  # > 20 expiry sweeps and one per-second tick
        pending = sum(1 for t in server._timers.values() if not t.cancelled())
        count = len(server._timers)
        await server.stop()
        return count, pending

    count, pending = asyncio.run(run())
    assert count == 2
    assert pending == 2
