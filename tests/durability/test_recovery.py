"""Restart on a large log: ``-LOADING`` while replaying, one ``ready`` line, all data.

200,000 SETs over 100,000 ids (each id written twice, the second time to its final
place) go into the log; after a restart the server must answer data commands with
``-LOADING`` until the replay is done, then serve every object at its last
position, and log exactly one ``ready records_replayed=200000 seconds=S`` line.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.conftest import RawClient, start_server
from tests.durability.helpers import (
    is_error,
    pipeline,
    pipeline_chunked,
    restart,
    rotate_log,
    run_server_once,
)

IDS = 100_000
RECORDS = 2 * IDS


def position(i: int, final: bool) -> tuple[str, str]:
    lat = 40.5 + (i % 1000) / 2500 + (0.0001 if final else 0.0)
    lon = -74.2 + (i // 1000) / 250
    return f"{lat:.6f}", f"{lon:.6f}"


def test_loading_then_ready_after_replaying_200k_records(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    srv = start_server(data_dir)
    client = srv.raw()
    for final in (False, True):
        cmds = [
            ["SET", "fleet", f"v{i}", "POINT", *position(i, final)] for i in range(IDS)
        ]
        replies = pipeline_chunked(client, cmds, 5000)
        assert replies == ["OK"] * IDS
    client.close()
    assert srv.stop() == 0

    rotate_log(data_dir)
    again = start_server(data_dir, wait_ready=False)
    try:
        probe = RawClient(again.port, timeout=30)
        loading = 0
        ready_reply = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reply = probe.call("GET", "fleet", "v0", "POINT")
            if is_error(reply):
                assert str(reply).startswith("LOADING"), reply
                loading += 1
                time.sleep(0.005)
                continue
            ready_reply = reply
            break
        assert loading >= 1, "no -LOADING reply while 200k records were replayed"
        assert ready_reply == list(position(0, True)) or ready_reply == [
            str(float(x)) for x in position(0, True)
        ]
        assert probe.call("PING") == "PONG"
        assert probe.call("SCAN", "fleet", "COUNT") == IDS
        sample = list(range(0, IDS, 997))
        got = pipeline(probe, [["GET", "fleet", f"v{i}", "POINT"] for i in sample])
        for i, reply in zip(sample, got, strict=True):
            assert [float(x) for x in reply] == [float(x) for x in position(i, True)]
        probe.close()
    finally:
        assert again.stop() == 0
    text = again.log_text()
    ready = re.findall(r"ready records_replayed=(\d+) seconds=([0-9.]+)", text)
    assert len(ready) == 1, text
    assert int(ready[0][0]) == RECORDS
    assert 0 < float(ready[0][1]) < 60


def test_second_server_on_the_same_directory_refuses_to_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    srv = start_server(data_dir)
    try:
        client = srv.raw()
        assert client.call("SET", "fleet", "a", "POINT", "1", "2") == "OK"
        code, out = run_server_once(data_dir)
        assert code != 0, out
        assert "in use by another geofleetd process" in out
        # the first one is unharmed and keeps its data
        assert client.call("GET", "fleet", "a", "POINT") == ["1", "2"]
        assert client.call("SET", "fleet", "b", "POINT", "3", "4") == "OK"
        client.close()
    finally:
        assert srv.stop() == 0
    again = restart(data_dir)
    try:
        client = again.raw()
        assert client.call("SCAN", "fleet", "COUNT") == 2
        client.close()
    finally:
        assert again.stop() == 0
