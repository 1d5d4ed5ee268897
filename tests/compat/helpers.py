"""Assertions shared by the Tile38 compatibility tests.

Replies are read with ``RawClient`` (hiredis), so an error reply arrives as a
``hiredis.ReplyError`` value carrying the whole line (``ERR ...``) instead of
raising. JSON replies are compared after dropping Tile38's volatile ``elapsed``;
``same_json`` compares the serialised text, so key order and number spelling
(``33`` rather than ``33.0``) count as well as the values.
"""

from __future__ import annotations

import json
from typing import Any

import hiredis

from tests.conftest import RawClient


def error_of(reply: Any) -> str:
    """The error line of an error reply (fails when the reply is not an error)."""
    assert isinstance(reply, hiredis.ReplyError), f"expected an error, got {reply!r}"
    return str(reply)


def call_error(c: RawClient, *args: str) -> str:
    return error_of(c.call(*args))


def json_reply(reply: Any) -> Any:
    """Parse a JSON-mode reply and drop its ``elapsed`` member (checked present)."""
    assert isinstance(reply, str), f"expected a JSON bulk string, got {reply!r}"
    body = json.loads(reply)
    assert isinstance(body, dict), reply
    elapsed = body.pop("elapsed", None)
    assert isinstance(elapsed, str) and elapsed, f"no elapsed in {reply!r}"
    return body


def jcall(c: RawClient, *args: str) -> Any:
    return json_reply(c.call(*args))


def same_json(actual: Any, expected: Any) -> None:
    """Exact equality, including key order and int-versus-float spelling."""
    assert json.dumps(actual) == json.dumps(expected)


def as_json(reply: Any) -> Any:
    """A bulk string that holds a JSON document (a GeoJSON object, an event)."""
    assert isinstance(reply, str), f"expected JSON text, got {reply!r}"
    return json.loads(reply)


def subset(actual: Any, expected: Any) -> bool:
    """Every key of ``expected`` is in ``actual`` with a matching value.

    Lists must have the same length and match element by element; numbers
    compare by value.
    """
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and subset(actual[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(subset(a, e) for a, e in zip(actual, expected, strict=True))
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(actual) == float(expected)
    return bool(actual == expected)


def assert_subset(actual: Any, expected: Any) -> None:
    assert subset(actual, expected), f"{actual!r} does not contain {expected!r}"


def sorted_page(reply: Any) -> tuple[Any, list[Any]]:
    """``[cursor, ids]`` with the ids sorted: WITHIN/INTERSECTS order is the index's."""
    assert isinstance(reply, list) and len(reply) == 2, reply
    return reply[0], sorted(reply[1])


def read_push(c: RawClient, timeout: float = 2.0) -> Any:
    """The next pushed message on a live fence or subscriber connection."""
    c.sock.settimeout(timeout)
    try:
        return c.read()
    finally:
        c.sock.settimeout(5.0)


def read_event(c: RawClient, timeout: float = 2.0) -> Any:
    """A live-fence event: a bulk string holding one JSON object."""
    return as_json(read_push(c, timeout))


def assert_silent(c: RawClient, wait: float) -> None:
    """Nothing more arrives on ``c`` within ``wait`` seconds."""
    pending = c.reader.gets()
    assert pending is False, f"unexpected message {pending!r}"
    c.sock.settimeout(wait)
    try:
        data = c.sock.recv(1 << 16)
    except TimeoutError:
        return
    finally:
        c.sock.settimeout(5.0)
    raise AssertionError(f"unexpected data {data[:300]!r}")
