"""``geofleetd serve`` with faults injected on demand, for the durability tests.

Run as ``python -m tests.durability.faulty_serve FAULT_FILE serve --dir D ...``.
Every ``AppendLog.append`` first looks for ``FAULT_FILE``; while it exists, the
append fails without touching the log:

- if the file holds ``full``: with ``StorageFullError`` (what a full map or disk
  raises; the server answers ``-OOM`` and keeps running);
- otherwise: with ``lmdb.PanicError`` (an LMDB failure the server can't answer).

With ``GEOFLEETD_TEST_SNAPSHOT_DELAY=S`` in the environment, a compaction's
snapshot writer sleeps S seconds before it reads the records it was given, which
opens a wide window for the event loop to run while a compaction is pending.

Everything else is the real server started through the real command line.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import lmdb

from geofleetd import cli
from geofleetd.errors import StorageFullError
from geofleetd.persistence import log as log_module
from geofleetd.persistence.log import AppendLog, ExtraOp


def main(argv: list[str]) -> int:
    fault_file = argv[0]
    real_append = AppendLog.append

    def append(
        self: AppendLog, records: Sequence[Any], extra: Sequence[ExtraOp] = ()
    ) -> int:
        if os.path.exists(fault_file):
            with open(fault_file) as fh:
                kind = fh.read().strip()
            if kind == "full":
                raise StorageFullError("injected: the log is full", "OOM")
            raise lmdb.PanicError("injected LMDB failure")
        return real_append(self, records, extra)

    AppendLog.append = append  # type: ignore[method-assign]

    delay = float(os.environ.get("GEOFLEETD_TEST_SNAPSHOT_DELAY", "0"))
    if delay > 0:
        real_write_snapshot = log_module.__dict__["write_snapshot"]

        def write_snapshot(*args: Any, **kwargs: Any) -> Any:
            time.sleep(delay)
            return real_write_snapshot(*args, **kwargs)

        log_module.__dict__["write_snapshot"] = write_snapshot

    return cli.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
