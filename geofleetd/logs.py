"""Logging setup: one line per state change, as ``event key=value ...``.

Per-command detail goes to debug only. ``kv(event, **fields)`` builds the message so
call sites read ``log.info(kv("listening", addr=addr))``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any


def kv(event: str, **fields: Any) -> str:
    parts = [event]
    for k, v in fields.items():
        text = str(v)
        if " " in text or not text:
            text = '"' + text.replace('"', '\\"') + '"'
        parts.append(f"{k}={text}")
    return " ".join(parts)


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger("geofleetd")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
