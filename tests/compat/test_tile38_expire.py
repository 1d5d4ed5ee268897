"""Expiry: EXPIRE, SET ... EX and TTL, checked against Tile38 1.37.0's replies.

Objects must vanish when their time is up, whether or not anyone reads them.
"""

from __future__ import annotations

import time

from tests.compat.helpers import call_error, jcall, same_json
from tests.conftest import RawClient


def test_expire_checks_its_arguments(c: RawClient) -> None:
    c.call("SET", "mykey", "myid", "STRING", "value")
    assert (
        call_error(c, "EXPIRE", "mykey", "myid")
        == "ERR wrong number of arguments for 'expire' command"
    )
    assert call_error(c, "EXPIRE", "mykey", "myid", "y") == "ERR invalid argument 'y'"


def test_expired_object_is_gone_and_cannot_be_expired_again(c: RawClient) -> None:
    c.call("SET", "mykey", "myid", "STRING", "value")
    assert c.call("EXPIRE", "mykey", "myid", "1") == 1
    time.sleep(0.25)
    assert c.call("GET", "mykey", "myid") == "value"
    time.sleep(1.2)
    assert c.call("GET", "mykey", "myid") is None
    assert c.call("EXPIRE", "mykey", "myid", "1") == 0
    jcall(c, "OUTPUT", "json")
    # the key went with its only object
    same_json(
        jcall(c, "EXPIRE", "mykey", "myid", "1"), {"ok": False, "err": "key not found"}
    )


def test_set_ex_object_leaves_on_time(c: RawClient) -> None:
    assert c.call("SET", "mykey", "a", "EX", "1", "POINT", "33", "-115") == "OK"
    assert c.call("SET", "mykey", "b", "POINT", "33", "-115") == "OK"
    ttl = c.call("TTL", "mykey", "a")
    assert isinstance(ttl, int) and 0 <= ttl <= 1
    assert c.call("SCAN", "mykey", "COUNT") == 2
    time.sleep(1.3)
    assert c.call("SCAN", "mykey", "COUNT") == 1
    assert c.call("GET", "mykey", "a") is None


def test_set_ex_without_an_object_is_a_wrong_argument_count(c: RawClient) -> None:
    assert (
        call_error(c, "SET", "mykey", "c", "EX", "123")
        == "ERR wrong number of arguments for 'set' command"
    )


def test_fractional_ex_removes_the_last_object_and_its_key(c: RawClient) -> None:
    assert c.call("SET", "mykey", "b", "EX", "0.5", "POINT", "33", "-115") == "OK"
    time.sleep(0.9)
    assert c.call("KEYS", "*") == []
