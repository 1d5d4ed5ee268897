"""OUTPUT switching and the JSON shape of errors, as Tile38 1.37.0 answered."""

from __future__ import annotations

from tests.compat.helpers import call_error, jcall, same_json
from tests.conftest import RawClient


def test_output_reports_and_switches_the_mode(c: RawClient) -> None:
    assert c.call("OUTPUT") == "resp"
    same_json(jcall(c, "OUTPUT", "json"), {"ok": True})
    # Tile38 1.37.0 answers this with its elapsed value unquoted, which is not
    # valid JSON; geofleetd gives the same members as well-formed JSON.
    same_json(jcall(c, "OUTPUT"), {"ok": True, "output": "json"})
    assert c.call("OUTPUT", "resp") == "OK"
    assert c.call("OUTPUT") == "resp"


def test_output_argument_errors(c: RawClient) -> None:
    assert (
        call_error(c, "OUTPUT", "json", "yaml")
        == "ERR wrong number of arguments for 'output' command"
    )
    assert call_error(c, "OUTPUT", "yaml") == "ERR invalid argument 'yaml'"
    assert c.call("OUTPUT") == "resp"


def test_errors_in_json_mode(c: RawClient) -> None:
    jcall(c, "OUTPUT", "json")
    same_json(jcall(c, "GET", "nokey", "x"), {"ok": False, "err": "key not found"})
    # JSON mode words a wrong argument count differently from RESP mode
    same_json(
        jcall(c, "GET", "nokey"), {"ok": False, "err": "invalid number of arguments"}
    )
    same_json(
        jcall(c, "NOSUCHCOMMAND"),
        {"ok": False, "err": "unknown command 'NOSUCHCOMMAND'"},
    )
    same_json(jcall(c, "PING"), {"ok": True, "ping": "pong"})
