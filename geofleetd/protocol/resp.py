"""RESP request parsing and reply encoding (sans I/O).

``RequestParser`` turns bytes from a socket into command argument lists. RESP arrays
go through hiredis, fed in 64 KB slices (one multi-megabyte feed degrades hiredis
badly); lines that do not start with ``*`` are inline commands as typed in telnet,
split on whitespace with single and double quotes honoured. A request whose pending
bytes pass the size cap raises ``ProtocolError``: the caller answers it and closes.

``encode`` turns a reply value into RESP2 bytes:

- ``str`` -> bulk string, ``bytes`` -> bulk string,
- ``Simple`` -> simple string (``+OK``), ``int``/``bool`` -> integer,
- ``None`` -> nil bulk, ``list``/``tuple`` -> array, ``ErrorReply`` -> error line.

Limits: an empty line between two RESP arrays is accepted at the start of a read
and in redis-cli's ``--pipe`` trailer; elsewhere inside a read it is a framing error
(hiredis does not report how far it has parsed).

Imports no asyncio and no logging.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import hiredis

from geofleetd.errors import ProtocolError

CHUNK = 64 * 1024
# hiredis allocates an array's list up front: a header claiming 2**31 elements
# would stall the whole server. Redis caps multibulk length the same way.
MAX_ARRAY = 1024 * 1024
_BIG_ARRAY = re.compile(rb"\*(\d{7,})\r")
# redis-cli --pipe ends its stream with an empty line and an ECHO of 20 random
# bytes. An empty line between RESP arrays is legal for Redis but a framing error
# for hiredis, which cannot tell us where it stands inside a chunk.
_PIPE_TRAILER = b"\r\n\r\n*2\r\n$4\r\nECHO\r\n$20\r\n"


class Simple(str):
    """A RESP simple string such as ``OK`` or ``PONG``."""

    __slots__ = ()


class ErrorReply(str):
    """A RESP error line, without the leading ``-``."""

    __slots__ = ()


OK = Simple("OK")
OK_BYTES = b"+OK\r\n"


class RequestParser:
    """Incremental parser: ``feed(data)`` returns every complete command in it."""

    def __init__(self, max_request: int = 32 * 1024 * 1024) -> None:
        self.max_request = max_request
        self._reader = hiredis.Reader(encoding="utf-8", errors="surrogateescape")
        self._resp_pending = 0  # bytes fed to hiredis not yet part of a full command
        # True when hiredis holds no part of an unfinished command. hiredis parses
        # arrays incrementally, so an empty buffer alone does not prove it.
        self._at_boundary = True
        self._inline = b""  # bytes of an unfinished inline line

    def feed(self, data: bytes) -> list[list[str]]:
        out: list[list[str]] = []
        if self._inline or (self._at_boundary and data[:1] != b"*"):
            data = self._inline + data
            self._inline = b""
            data = self._parse_inline(data, out)
            if not data:
                return out
        self._feed_resp(data, out)
        return out

    def _feed_resp(self, data: bytes, out: list[list[str]]) -> None:
        for m in _BIG_ARRAY.finditer(data):
            if int(m.group(1)) > MAX_ARRAY:
                raise ProtocolError("Protocol error: invalid multibulk length")
        if _PIPE_TRAILER in data:
            data = data.replace(_PIPE_TRAILER, _PIPE_TRAILER[2:])
        reader = self._reader
        view = memoryview(data)
        for start in range(0, len(data), CHUNK):
            piece = view[start : start + CHUNK]
            reader.feed(piece)  # type: ignore[arg-type]  # buffer protocol works
            self._resp_pending += len(piece)
            self._at_boundary = False
            while True:
                try:
                    cmd = reader.gets()
                except hiredis.ProtocolError as exc:
                    raise ProtocolError(f"Protocol error: {exc}") from None
                if cmd is False:
                    break
                self._at_boundary = not reader.has_data()
                # leftover bytes of the next request are at most this piece
                self._resp_pending = 0 if self._at_boundary else len(piece)
                if isinstance(cmd, list):
                    if cmd:
                        out.append([_as_str(a) for a in cmd])
                else:
                    raise ProtocolError("Protocol error: expected an array of strings")
            if self._resp_pending > self.max_request:
                raise ProtocolError(
                    f"Protocol error: request larger than {self.max_request} bytes"
                )

    def _parse_inline(self, data: bytes, out: list[list[str]]) -> bytes:
        """Parse inline lines; return the rest of data that must go to hiredis."""
        pos = 0
        while pos < len(data):
            if data[pos : pos + 1] == b"*":
                return data[pos:]
            nl = data.find(b"\n", pos)
            if nl < 0:
                rest = data[pos:]
                if len(rest) > self.max_request:
                    raise ProtocolError(
                        f"Protocol error: request larger than {self.max_request} bytes"
                    )
                self._inline = rest
                return b""
            line = data[pos:nl].rstrip(b"\r")
            pos = nl + 1
            if line.strip():
                out.append(split_inline(line.decode("utf-8", "surrogateescape")))
        return b""


def _as_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, int):
        return str(value)
    raise ProtocolError("Protocol error: expected an array of strings")


def split_inline(line: str) -> list[str]:
    """Split a telnet-style line into arguments, honouring quotes and escapes."""
    args: list[str] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            break
        buf: list[str] = []
        quote = ""
        while i < n:
            ch = line[i]
            if quote:
                if ch == "\\" and quote == '"' and i + 1 < n:
                    nxt = line[i + 1]
                    buf.append({"n": "\n", "r": "\r", "t": "\t"}.get(nxt, nxt))
                    i += 2
                    continue
                if ch == quote:
                    quote = ""
                    i += 1
                    continue
                buf.append(ch)
            elif ch in "\"'":
                quote = ch
            elif ch in " \t":
                break
            else:
                buf.append(ch)
            i += 1
        if quote:
            raise ProtocolError("Protocol error: unbalanced quotes in request")
        args.append("".join(buf))
    return args


def encode(value: object, out: bytearray) -> None:
    """Append the RESP2 encoding of ``value`` to ``out``."""
    if isinstance(value, Simple):
        out += b"+" + value.encode("utf-8", "surrogateescape") + b"\r\n"
    elif isinstance(value, ErrorReply):
        line = value.replace("\r", " ").replace("\n", " ")
        if len(line) > 512:  # never echo a huge argument back in full
            line = line[:509] + "..."
        out += b"-" + line.encode("utf-8", "surrogateescape") + b"\r\n"
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogateescape")
        out += b"$%d\r\n" % len(data) + data + b"\r\n"
    elif value is None:
        out += b"$-1\r\n"
    elif isinstance(value, bool):
        out += b":1\r\n" if value else b":0\r\n"
    elif isinstance(value, int):
        out += b":%d\r\n" % value
    elif isinstance(value, bytes):
        out += b"$%d\r\n" % len(value) + value + b"\r\n"
    elif isinstance(value, list | tuple):
        out += b"*%d\r\n" % len(value)
        for item in value:
            encode(item, out)
    elif isinstance(value, float):
        data = repr(value).encode()
        out += b"$%d\r\n" % len(data) + data + b"\r\n"
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")


def encode_command(args: Sequence[str | bytes]) -> bytes:
    """Encode a command as a RESP array of bulk strings (used by clients and tests)."""
    out = bytearray(b"*%d\r\n" % len(args))
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out += b"$%d\r\n" % len(data) + data + b"\r\n"
    return bytes(out)
