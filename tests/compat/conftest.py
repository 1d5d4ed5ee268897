"""Fixtures for the Tile38 compatibility tests.

Starting a server per test costs about half a second, which a hundred small tests
cannot afford, so each test module shares one geofleetd process and every test gets
it freshly emptied: ``server`` (overriding the per-test one in tests/conftest.py)
sends FLUSHDB first. Per-connection state (OUTPUT mode, client name, live fences,
subscriptions) starts clean because each test opens its own connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.compat.helpers")

from tests.conftest import RawClient, ServerProc, start_server  # noqa: E402


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    base: Path = tmp_path_factory.mktemp("compat")
    srv = start_server(base / "data", extra=["--fsync", "no"])
    yield srv
    srv.stop()


@pytest.fixture
def server(shared_server: ServerProc) -> ServerProc:
    if shared_server.proc.poll() is not None:
        raise RuntimeError(f"shared server died:\n{shared_server.log_text()[-2000:]}")
    client = shared_server.raw()
    try:
        assert client.call("FLUSHDB") == "OK"
    finally:
        client.close()
    return shared_server


@pytest.fixture
def c(server: ServerProc) -> Iterator[RawClient]:
    """One exact-RESP connection to the emptied shared server."""
    client = server.raw()
    yield client
    client.close()
