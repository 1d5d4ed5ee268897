"""Publish/subscribe hub: SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, PUBLISH.

Channels are plain names; patterns are Redis globs. A message is pushed to each
subscriber at once through ``ClientConn.push``, which drops a subscriber whose unsent
output passes ``subscriber_queue_bytes`` (logged as ``subscriber_dropped``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geofleetd.commands.base import WrongArgs
from geofleetd.protocol.resp import encode
from geofleetd.store.collection import glob_match

if TYPE_CHECKING:
    from geofleetd.server.app import Server
    from geofleetd.server.connection import ClientConn


class Hub:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.channels: dict[str, dict[int, ClientConn]] = {}
        self.patterns: dict[str, dict[int, ClientConn]] = {}

    def command(self, conn: ClientConn, args: list[str]) -> object:
        from geofleetd.server.app import _NO_REPLY

        word = args[0].upper()
        st = conn.state
        out = conn.out
        if word in ("SUBSCRIBE", "PSUBSCRIBE"):
            if len(args) < 2:
                raise WrongArgs(word.lower())
            table = self.channels if word == "SUBSCRIBE" else self.patterns
            mine = st.channels if word == "SUBSCRIBE" else st.patterns
            kind = word.lower()
            for name in args[1:]:
                table.setdefault(name, {})[st.id] = conn
                mine.add(name)
                encode([kind, name, len(st.channels) + len(st.patterns)], out)
            return _NO_REPLY
        table = self.channels if word == "UNSUBSCRIBE" else self.patterns
        mine = st.channels if word == "UNSUBSCRIBE" else st.patterns
        kind = word.lower()
        names = args[1:] or sorted(mine)
        if not names:
            encode([kind, None, len(st.channels) + len(st.patterns)], out)
        for name in names:
            subs = table.get(name)
            if subs is not None:
                subs.pop(st.id, None)
                if not subs:
                    del table[name]
            mine.discard(name)
            encode([kind, name, len(st.channels) + len(st.patterns)], out)
        return _NO_REPLY

    def forget(self, conn: ClientConn) -> None:
        st = conn.state
        for name in st.channels:
            subs = self.channels.get(name)
            if subs is not None:
                subs.pop(st.id, None)
                if not subs:
                    del self.channels[name]
        for name in st.patterns:
            subs = self.patterns.get(name)
            if subs is not None:
                subs.pop(st.id, None)
                if not subs:
                    del self.patterns[name]

    def has_subscribers(self, channel: str) -> bool:
        if channel in self.channels:
            return True
        return any(glob_match(p, channel) for p in self.patterns)

    def publish(self, channel: str, message: str) -> int:
        """Push ``message`` to every subscriber of ``channel``; return how many."""
        sent = 0
        subs = self.channels.get(channel)
        if subs:
            buf = bytearray()
            encode(["message", channel, message], buf)
            data = bytes(buf)
            for conn in list(subs.values()):
                if conn.push(data):
                    sent += 1
        for pattern, psubs in list(self.patterns.items()):
            if glob_match(pattern, channel):
                buf = bytearray()
                encode(["pmessage", pattern, channel, message], buf)
                data = bytes(buf)
                for conn in list(psubs.values()):
                    if conn.push(data):
                        sent += 1
        return sent
