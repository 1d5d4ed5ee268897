"""Hook definitions: stored, listed, deleted, and kept across a restart."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import start_server


def test_hooks_survive_restart_and_flushdb_removes_them(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "d")
    try:
        r = srv.client()
        assert (
            r.execute_command(
                "SETHOOK",
                "h1",
                "http://127.0.0.1:1/x",
                "META",
                "a",
                "b",
                "NEARBY",
                "fleet",
                "FENCE",
                "POINT",
                "33",
                "-115",
                "500",
            )
            == 1
        )
        assert (
            r.execute_command(
                "SETHOOK",
                "h2",
                "http://127.0.0.1:1/y",
                "WITHIN",
                "fleet",
                "FENCE",
                "BOUNDS",
                "0",
                "0",
                "1",
                "1",
            )
            == 1
        )
        assert r.execute_command("DELHOOK", "h2") == 1
        assert r.execute_command("DELHOOK", "h2") == 0
    finally:
        srv.stop()
    srv = start_server(tmp_path / "d")
    try:
        r = srv.client()
        assert r.execute_command("HOOKS", "*") == [
            [
                "h1",
                "fleet",
                ["http://127.0.0.1:1/x"],
                ["NEARBY", "fleet", "FENCE", "POINT", "33", "-115", "500"],
                ["a", "b"],
            ]
        ]
        assert r.execute_command("FLUSHDB") == "OK"
        assert r.execute_command("HOOKS", "*") == []
        assert r.execute_command("PDELHOOK", "*") == 0
    finally:
        srv.stop()
