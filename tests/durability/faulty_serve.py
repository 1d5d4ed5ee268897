"""``geofleetd serve`` whose log append fails on demand (fault injection).

Run as ``python -m tests.durability.faulty_serve FAULT_FILE serve --dir D ...``:
every ``AppendLog.append`` first looks for ``FAULT_FILE``; while it exists, the
append raises ``lmdb.PanicError`` (the kind of LMDB failure the server can't
answer with ``-OOM``) without touching the log. Everything else is the real
server started through the real command line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import lmdb

from geofleetd import cli
from geofleetd.persistence.log import AppendLog, ExtraOp


def main(argv: list[str]) -> int:
    fault_file = argv[0]
    real_append = AppendLog.append

    def append(
        self: AppendLog, records: Sequence[Any], extra: Sequence[ExtraOp] = ()
    ) -> int:
        if os.path.exists(fault_file):
            raise lmdb.PanicError("injected LMDB failure")
        return real_append(self, records, extra)

    AppendLog.append = append  # type: ignore[method-assign]
    return cli.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
