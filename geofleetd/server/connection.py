"""One client connection: bytes in, commands to the server's run queue, replies out.

``ClientConn`` is an ``asyncio.Protocol``. ``data_received`` parses every complete
command in the bytes (``RequestParser``) and queues them on the server, which runs
them in its next drain and appends each reply to ``out``; the server then calls
``flush`` once per drain, so a pipelined burst is answered by one ``write``.

Back-pressure: when the transport's send buffer passes its high-water mark the
connection stops reading until the client catches up. Subscribers (SUBSCRIBE or a
live fence) are instead cut off when their unsent events pass the configured bound
(``subscriber_queue_bytes``), so one slow consumer cannot grow server memory.

A framing error or an over-size request is answered with one error line, then the
connection closes; every other error leaves it open.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from geofleetd.errors import ProtocolError
from geofleetd.logs import kv
from geofleetd.protocol.resp import RequestParser

if TYPE_CHECKING:
    from geofleetd.server.app import Server

log = logging.getLogger("geofleetd.conn")
_ids = itertools.count(1)


@dataclass(slots=True)
class ClientState:
    id: int
    addr: str
    json: bool = False
    name: str = ""
    # pub/sub and live fences
    channels: set[str] = field(default_factory=set)
    patterns: set[str] = field(default_factory=set)
    fence: Any = None
    authed: bool = True


class ClientConn(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.parser = RequestParser(server.config.max_request_bytes)
        self.transport: asyncio.Transport | None = None
        self.state = ClientState(next(_ids), "")
        self.out = bytearray()
        self.closed = False
        self.closing = False  # QUIT or protocol error: close after the next flush
        self.paused = False
        self.in_flight = 0  # commands queued but not yet answered

    # -- asyncio callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        peer = transport.get_extra_info("peername")
        self.state.addr = f"{peer[0]}:{peer[1]}" if peer else "?"
        transport.set_write_buffer_limits(high=4 * 1024 * 1024)
        self.server.client_connected(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            cmds = self.parser.feed(data)
        except ProtocolError as exc:
            log.debug(kv("protocol_error", client=self.state.id, cause=exc.message))
            self.out += b"-ERR " + exc.message.encode("utf-8", "replace") + b"\r\n"
            self.closing = True
            self.server.enqueue_flush(self)
            return
        if cmds:
            self.server.enqueue(self, cmds)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.client_disconnected(self)

    def pause_writing(self) -> None:
        if self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self.paused:
            self.paused = False
            self.transport.resume_reading()

    # -- output ------------------------------------------------------------------

    def flush(self) -> None:
        if self.out and not self.closed and self.transport is not None:
            self.transport.write(bytes(self.out))
        self.out.clear()
        if self.closing and not self.closed and self.transport is not None:
            self.transport.close()

    def push(self, data: bytes) -> bool:
        """Send a pushed message now; drop the client if it cannot keep up."""
        if self.closed or self.transport is None:
            return False
        limit = self.server.config.subscriber_queue_bytes
        if self.transport.get_write_buffer_size() + len(data) > limit:
            log.warning(
                kv(
                    "subscriber_dropped",
                    client=self.state.id,
                    addr=self.state.addr,
                    cause="send queue over limit",
                    limit_bytes=limit,
                )
            )
            self.closed = True
            self.transport.abort()
            return False
        self.transport.write(data)
        return True

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
