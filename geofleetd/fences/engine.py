"""Fence engine: live fences, channels and their events.

TODO(#4): geofences, channels and roaming fences are not built yet; this engine
watches nothing, so writes produce no events and FENCE queries are refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from geofleetd.errors import GeofleetError

if TYPE_CHECKING:
    from geofleetd.commands.base import Ctx
    from geofleetd.server.app import Server
    from geofleetd.server.connection import ClientConn


class FenceEngine:
    def __init__(self, server: Server) -> None:
        self.server = server

    def watching(self, key: str) -> bool:
        return False

    def key_has_channels(self, key: str) -> bool:
        return False

    def start_stream(self, conn: ClientConn, query: Any) -> None:
        raise GeofleetError("live fences are not supported yet")

    def forget(self, conn: ClientConn) -> None:
        return None

    def evaluate(self, ctx: Ctx) -> None:
        return None

    def commit(self) -> None:
        return None

    def undo(self, entry: tuple[Any, ...]) -> None:
        return None

    def apply_record(self, rec: list[Any]) -> None:
        return None

    def rebuild_membership(self) -> None:
        return None

    def state_records(self) -> list[list[Any]]:
        return []

    def tick(self, now: float) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {}
