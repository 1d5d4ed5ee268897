"""Error values that travel to the client.

A ``GeofleetError`` carries a wire code (the first, upper-case word of a RESP error
line) and a message. The connection layer turns it into ``-CODE message`` in RESP
mode or ``{"ok":false,"err":"message"}`` in JSON mode, and the connection stays open.
Codes once shipped never change; the vocabulary is:

- ``ERR``: bad arguments, missing keys or ids, anything the client did wrong.
- ``LOADING``: the server is still replaying its log; retry shortly.
- ``READONLY``: the server is in read-only mode and refused a write.
- ``OOM``: the log hit its size ceiling or the disk is full; the write was not applied.

Imports nothing from geofleetd.
"""

from __future__ import annotations


class GeofleetError(Exception):
    """An error answered to the client; the connection stays open."""

    code = "ERR"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def resp_line(self) -> str:
        """The error as it appears after ``-`` on the wire."""
        return f"{self.code} {self.message}"


class LoadingError(GeofleetError):
    code = "LOADING"


class ReadOnlyError(GeofleetError):
    code = "READONLY"


class StorageFullError(GeofleetError):
    code = "OOM"


class ProtocolError(GeofleetError):
    """Framing is broken or a request is over the size cap: reply, then close."""


def wrong_args(command: str) -> GeofleetError:
    return GeofleetError(f"wrong number of arguments for '{command.lower()}' command")


def invalid_arg(arg: str) -> GeofleetError:
    return GeofleetError(f"invalid argument '{arg}'")


KEY_NOT_FOUND = "key not found"
ID_NOT_FOUND = "id not found"
