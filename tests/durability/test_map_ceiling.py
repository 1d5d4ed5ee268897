"""A small ``--map-size-max``: writes hit the ceiling as ``-OOM``, nothing worse.

The same 100 ids are rewritten round after round (each SET carries a generation
field and 1 KB of padding) until the server answers ``-OOM``. Then: the server is
still up, reads work, every id holds the generation of its last acknowledged
write (a failed batch is not applied, also when the round is sent again), and a
restart brings back exactly the acknowledged state. ``AOFSHRINK`` then frees
log space and writes succeed again.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import RawClient, start_server
from tests.durability.helpers import is_error, pipeline, restart, wait_for

MAP_SIZE_MAX = 4 * 2**20
IDS = 100
PAD = "x" * 1000
MAX_ROUNDS = 1000


def round_cmds(gen: int) -> list[list[str]]:
    return [
        [
            "SET",
            "fleet",
            f"v{i}",
            "FIELD",
            "gen",
            str(gen),
            "FIELD",
            "pad",
            PAD,
            "POINT",
            "40.5",
            f"{-74 + i / 1000:.3f}",
        ]
        for i in range(IDS)
    ]


def generations(client: RawClient) -> dict[str, int]:
    """id -> its gen field, read back with GET ... WITHFIELDS."""
    replies = pipeline(
        client, [["GET", "fleet", f"v{i}", "WITHFIELDS", "POINT"] for i in range(IDS)]
    )
    out: dict[str, int] = {}
    for i, reply in enumerate(replies):
        assert not is_error(reply), reply
        _point, fields = reply
        values = dict(zip(fields[::2], fields[1::2], strict=True))
        assert values["pad"] == PAD
        out[f"v{i}"] = int(values["gen"])
    return out


def test_writes_at_the_map_ceiling_fail_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    extra = ["--map-size-max", str(MAP_SIZE_MAX)]
    srv = start_server(data_dir, extra)
    acked: dict[str, int] = {}
    errors: list[str] = []
    try:
        client = srv.raw()
        for gen in range(1, MAX_ROUNDS + 1):
            replies = pipeline(client, round_cmds(gen))
            for i, reply in enumerate(replies):
                if reply == "OK":
                    acked[f"v{i}"] = gen
                else:
                    assert is_error(reply), reply
                    errors.append(str(reply))
            if errors:
                break
        assert errors, f"no -OOM after {MAX_ROUNDS} rounds under a 4 MiB ceiling"
        assert all(e.startswith("OOM ") for e in errors), errors[:3]
        assert len(acked) == IDS and min(acked.values()) >= 2

        # still up, reads work, failed writes were not applied
        assert client.call("PING") == "PONG"
        assert client.call("SCAN", "fleet", "COUNT") == IDS
        assert generations(client) == acked
        # the same round again: whatever is refused keeps its previous value
        for i, reply in enumerate(pipeline(client, round_cmds(MAX_ROUNDS + 1))):
            if reply == "OK":
                acked[f"v{i}"] = MAX_ROUNDS + 1
            else:
                assert is_error(reply) and str(reply).startswith("OOM "), reply
        assert generations(client) == acked
        assert client.call("GET", "fleet", "v0", "POINT") == ["40.5", "-74"]
        client.close()
    finally:
        assert srv.stop() == 0
    assert srv.proc.returncode == 0

    second = restart(data_dir, extra)
    try:
        client = second.raw()
        assert client.call("SCAN", "fleet", "COUNT") == IDS
        assert generations(client) == acked
        # compaction can still run at the ceiling, and frees room for writes
        assert client.call("AOFSHRINK") == "OK"
        assert wait_for(lambda: " compacted " in second.log_text(), 30)
        deadline = time.monotonic() + 10
        reply = None
        while time.monotonic() < deadline:
            reply = pipeline(client, round_cmds(1_000_000))
            if reply == ["OK"] * IDS:
                break
            time.sleep(0.1)
        assert reply == ["OK"] * IDS, reply
        assert set(generations(client).values()) == {1_000_000}
        client.close()
    finally:
        assert second.stop() == 0
