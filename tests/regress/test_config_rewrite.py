"""CONFIG REWRITE keeps the operator's file: comments, layout and start-up keys."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.conftest import ROOT, start_server


def test_rewrite_changes_only_changed_values(tmp_path: Path) -> None:
    conf = tmp_path / "geofleetd.toml"
    original = (ROOT / "conf" / "geofleetd.example.toml").read_text()
    conf.write_text(original)
    srv = start_server(tmp_path / "d", ["--config", str(conf)])
    try:
        r = srv.client()
        assert r.execute_command("CONFIG", "SET", "fsync", "no") == "OK"
        assert r.execute_command("CONFIG", "SET", "compact_ratio", "8") == "OK"
        assert r.execute_command("CONFIG", "REWRITE") == "OK"
    finally:
        srv.stop()
    text = conf.read_text()
    old_lines = original.splitlines()
    new_lines = text.splitlines()
    assert len(new_lines) == len(old_lines)
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert [b.split("#")[0].strip() for _, b in changed] == [
        'fsync = "no"',
        "compact_ratio = 8.0",
    ]
    for a, b in changed:  # each rewritten line keeps its comment
        assert a.split("#", 1)[1] == b.split("#", 1)[1]
    data = tomllib.loads(text)["server"]
    assert data["port"] == 9851  # the command-line --port 0 is not written
    assert data["dir"] == "./data"
    assert data["fsync"] == "no"
