"""JSET / JGET / JDEL documents, as Tile38 1.37.0 answered in RESP and JSON mode."""

from __future__ import annotations

from tests.compat.helpers import jcall, same_json
from tests.conftest import RawClient


def test_jset_creates_and_replaces_a_top_level_member(c: RawClient) -> None:
    assert c.call("JSET", "mykey", "myid1", "hello", "world") == "OK"
    assert c.call("JGET", "mykey", "myid1") == '{"hello":"world"}'
    assert c.call("JSET", "mykey", "myid1", "hello", "planet") == "OK"
    assert c.call("JGET", "mykey", "myid1") == '{"hello":"planet"}'


def test_jset_builds_nested_objects_in_insertion_order(c: RawClient) -> None:
    c.call("JSET", "mykey", "myid1", "hello", "planet")
    assert c.call("JSET", "mykey", "myid1", "user.name.last", "tom") == "OK"
    assert c.call("JSET", "mykey", "myid1", "user.name.first", "andrew") == "OK"
    assert (
        c.call("JGET", "mykey", "myid1")
        == '{"hello":"planet","user":{"name":{"last":"tom","first":"andrew"}}}'
    )
    assert c.call("JGET", "mykey", "myid1", "user.name.first") == "andrew"


def test_jdel_removes_a_member_once(c: RawClient) -> None:
    c.call("JSET", "mykey", "myid1", "hello", "planet")
    c.call("JSET", "mykey", "myid1", "user.name.last", "tom")
    c.call("JSET", "mykey", "myid1", "user.name.first", "andrew")
    assert c.call("JDEL", "mykey", "myid1", "user.name.last") == 1
    assert (
        c.call("JGET", "mykey", "myid1")
        == '{"hello":"planet","user":{"name":{"first":"andrew"}}}'
    )
    assert c.call("JDEL", "mykey", "myid1", "user.name.last") == 0
    assert c.call("JDEL", "mykey2", "myid1", "user.name.last") == 0


def test_jget_of_missing_key_or_path_is_nil(c: RawClient) -> None:
    c.call("JSET", "mykey", "myid1", "hello", "planet")
    assert c.call("JGET", "nokey", "x") is None
    assert c.call("JGET", "mykey", "myid1", "nothere") is None


def test_jset_stores_numbers_as_numbers(c: RawClient) -> None:
    assert c.call("JSET", "new", "n", "a.b", "5") == "OK"
    assert c.call("JGET", "new", "n") == '{"a":{"b":5}}'


def test_json_mode_replies(c: RawClient) -> None:
    same_json(jcall(c, "OUTPUT", "json"), {"ok": True})
    same_json(jcall(c, "JSET", "mykey", "myid1", "a", "1"), {"ok": True})
    same_json(jcall(c, "JGET", "mykey", "myid1"), {"ok": True, "value": '{"a":1}'})
    same_json(jcall(c, "JGET", "mykey", "myid1", "a"), {"ok": True, "value": "1"})
    same_json(jcall(c, "JGET", "mykey", "nope"), {"ok": False, "err": "id not found"})
    same_json(jcall(c, "JDEL", "mykey", "myid1", "a"), {"ok": True})
