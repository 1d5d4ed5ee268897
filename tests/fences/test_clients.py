"""Off-the-shelf clients receive channel events: pyle38's channel API (SETCHAN
through ``setchan(...).nearby(...)``, events read with redis-py's pub/sub, as pyle38's
documentation suggests) and a plain ``redis-cli PSUBSCRIBE '*'``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
from typing import Any

import redis.asyncio as aioredis
from pyle38 import Tile38  # type: ignore[import-untyped]

from tests.conftest import ServerProc
from tests.fences.helpers import GROUP_RE, TIME_RE, command, pipeline


def test_pyle38_channel_api_and_redis_pubsub(server: ServerProc) -> None:
    async def scenario() -> list[dict[str, Any]]:
        tile38 = Tile38(f"redis://127.0.0.1:{server.port}")
        sub = aioredis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
        pubsub = sub.pubsub()
        try:
            made = await (
                tile38.setchan("warehouse")
                .nearby("fleet")
                .detect(["enter", "exit"])
                .point(33.5123, -112.2693, 500)
                .activate()
            )
            assert made.ok
            chans = await tile38.chans("*")
            assert [ch.name for ch in chans.chans] == ["warehouse"]
            await pubsub.subscribe("warehouse")
            first = await pubsub.get_message(timeout=5)
            assert first is not None and first["type"] == "subscribe"
            await tile38.set("fleet", "bus").point(33.5123001, -112.2693001).exec()
            await tile38.set("fleet", "bus").point(33.6, -112.2693001).exec()
            events = []
            for _ in range(2):
                msg = await pubsub.get_message(timeout=5)
                while msg is not None and msg["type"] != "message":
                    msg = await pubsub.get_message(timeout=5)
                assert msg is not None and msg["channel"] == "warehouse"
                events.append(json.loads(msg["data"]))
            return events
        finally:
            await pubsub.aclose()
            await sub.aclose()
            await tile38.quit()

    enter, exit_ = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert {k: enter[k] for k in ("command", "detect", "hook", "key", "id")} == {
        "command": "set",
        "detect": "enter",
        "hook": "warehouse",
        "key": "fleet",
        "id": "bus",
    }
    assert enter["object"] == {
        "type": "Point",
        "coordinates": [-112.2693001, 33.5123001],
    }
    assert exit_["detect"] == "exit" and exit_["group"] == enter["group"]
    assert GROUP_RE.match(enter["group"]) and TIME_RE.match(enter["time"])


def test_redis_cli_psubscribe_receives_events(server: ServerProc) -> None:
    cli = shutil.which("redis-cli")
    assert cli is not None, "redis-cli (Debian redis-tools) is required"
    fence = ["WITHIN", "fleet", "FENCE", "BOUNDS", "0", "0", "10", "10"]
    assert command(server.port, "SETCHAN", "depot", *fence) == 1
    proc = subprocess.Popen(
        [cli, "-h", "127.0.0.1", "-p", str(server.port), "PSUBSCRIBE", "*"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: list[str] = []
    ready = threading.Event()
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append(raw.decode().rstrip("\n"))
            if len(lines) == 3:
                ready.set()
            if len(lines) >= 3 + 16:
                done.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(10), lines
        assert lines[:3] == ["psubscribe", "*", "1"]
        cmds = [
            ("SET", "fleet", "truck", "POINT", "5", "5"),
            ("SET", "fleet", "truck", "POINT", "50", "50"),
        ]
        assert pipeline(server.port, cmds) == ["OK", "OK"]
        assert done.wait(10), lines
        # redis-cli prints each message as: pmessage, pattern, channel, payload
        messages = [lines[i : i + 4] for i in range(3, 19, 4)]
        assert [m[:3] for m in messages] == [["pmessage", "*", "depot"]] * 4
        events = [json.loads(m[3]) for m in messages]
        assert [(e["detect"], e["id"], e["hook"]) for e in events] == [
            ("enter", "truck", "depot"),
            ("inside", "truck", "depot"),
            ("exit", "truck", "depot"),
            ("outside", "truck", "depot"),
        ]
        assert events[0]["object"] == {"type": "Point", "coordinates": [5, 5]}
    finally:
        proc.terminate()
        proc.wait(5)
        reader.join(2)
