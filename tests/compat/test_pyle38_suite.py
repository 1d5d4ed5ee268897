"""pyle38's own test suite, run against geofleetd.

pyle38 (the Tile38 client on PyPI) ships its tests in its sdist. This test fetches
that sdist with pip at test time (nothing of pyle38 is kept in this repository),
starts geofleetd on 127.0.0.1:9851, where pyle38's tests look for Tile38, and runs
the suite in a subprocess, then reads its JUnit report.

Left out are only the follower tests: those that take pyle38's
``tile38_with_follower`` fixture and then talk to the follower, which needs a
replicating Tile38 follower on port 9852 (geofleetd has no replication). Tests that
take that fixture but only use the leader run. If port 9851 is taken (another
server on a developer's machine), the suite is pointed at a free port through
``TILE38_LEADER_URI``, the variable pyle38's conftest reads.

Needs PyPI (pip download) and pytest-asyncio, which pyle38's tests use.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

from tests.conftest import start_server

TILE38_PORT = 9851


def _fetch_sdist(dest: Path) -> Path:
    """Download and unpack the sdist of the installed pyle38; return its folder."""
    wanted = version("pyle38")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-binary",
        ":all:",
        "--no-deps",
        "--disable-pip-version-check",
        "-d",
        str(dest),
        f"pyle38=={wanted}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip download failed:\n{done.stderr[-2000:]}"
    archives = sorted(dest.glob("pyle38-*.tar.gz"))
    assert archives, f"no sdist in {list(dest.iterdir())}"
    with tarfile.open(archives[0]) as tar:
        tar.extractall(dest, filter="data")
    root = dest / f"pyle38-{wanted}"
    assert (root / "tests" / "conftest.py").is_file(), "sdist has no tests"
    return root


def _follower_tests(tests_dir: Path) -> list[str]:
    """Node ids of tests that need a replicating follower.

    A test needs one when it takes the ``tile38_with_follower`` fixture and calls
    ``.follower()`` on the client.
    """
    found: list[str] = []
    for path in sorted(tests_dir.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if not isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
                continue
            params = {a.arg for a in node.args.args}
            calls_follower = any(
                isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute)
                and n.func.attr == "follower"
                for n in ast.walk(node)
            )
            if "tile38_with_follower" in params and calls_follower:
                found.append(f"tests/{path.name}::{node.name}")
    return found


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_pyle38_suite_passes_against_geofleetd(tmp_path: Path) -> None:
    root = _fetch_sdist(tmp_path / "sdist")
    follower_tests = _follower_tests(root / "tests")
    # the ones that need a replicating follower in pyle38 0.16
    assert "tests/test_command_server.py::test_command_server" in follower_tests

    port = 0 if _port_taken(TILE38_PORT) else TILE38_PORT
    srv = start_server(tmp_path / "data", extra=["--fsync", "no"], port=port)
    try:
        report = tmp_path / "pyle38-junit.xml"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TILE38_")}
        env["TILE38_LEADER_URI"] = f"redis://127.0.0.1:{srv.port}"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            "tests",
        ]
        for node in follower_tests:
            cmd += ["--deselect", node]
        done = subprocess.run(
            cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600
        )
    finally:
        srv.stop()

    assert report.is_file(), f"pyle38's suite did not run:\n{done.stdout[-3000:]}"
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    failed = int(suite.get("failures", "0")) + int(suite.get("errors", "0"))
    ran = int(suite.get("tests", "0"))
    failing = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert failed == 0, f"{summary}\nfailing: {failing}\n{done.stdout[-6000:]}"
    assert int(suite.get("skipped", "0")) == 0, summary
    assert ran > 100, summary
    assert done.returncode == 0, summary
