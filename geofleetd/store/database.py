"""The whole in-memory state: collections by key, expiry schedule, undo journal.

``Database`` owns every collection. Expiry keeps a heap of (expire_at, key, id);
``due(now)`` pops entries whose time has come and still matches the object's
current expiry, so the server can delete them through the normal write path.

The undo journal lets the server take back a whole batch when its log commit fails
(map ceiling or full disk): each write records how to restore what it replaced, and
``rollback`` replays those entries in reverse.

Limits: single-threaded; only the event loop thread touches it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

from geofleetd.store.collection import Captured, Collection

Undo = tuple[Any, ...]


class Database:
    __slots__ = ("cell_deg", "cols", "heap", "journal", "journaling")

    def __init__(self, cell_deg: float = 0.01) -> None:
        self.cell_deg = cell_deg
        self.cols: dict[str, Collection] = {}
        self.heap: list[tuple[float, str, str]] = []
        self.journal: list[Undo] = []
        self.journaling = True

    def get(self, key: str) -> Collection | None:
        return self.cols.get(key)

    def get_or_create(self, key: str) -> Collection:
        col = self.cols.get(key)
        if col is None:
            col = self.cols[key] = Collection(self.cell_deg)
            if self.journaling:
                self.journal.append(("newkey", key))
        return col

    def drop_if_empty(self, key: str, col: Collection) -> None:
        """Tile38 removes a key with its last object."""
        if len(col) == 0 and self.cols.get(key) is col:
            del self.cols[key]
            if self.journaling:
                self.journal.append(("delkey", key, col))

    def note_cols(self) -> None:
        """Journal the key map before a DROP, RENAME or FLUSHDB."""
        if self.journaling:
            self.journal.append(("cols", dict(self.cols)))

    # -- expiry ----------------------------------------------------------------

    def set_expire(self, col: Collection, key: str, oid: str, at: float | None) -> None:
        if at is None:
            col.expires.pop(oid, None)
        else:
            col.expires[oid] = at
            heapq.heappush(self.heap, (at, key, oid))

    def due(self, now: float, limit: int = 10000) -> list[tuple[str, str]]:
        """Pop up to ``limit`` (key, id) pairs whose expiry time has passed."""
        out: list[tuple[str, str]] = []
        heap = self.heap
        while heap and heap[0][0] <= now and len(out) < limit:
            at, key, oid = heapq.heappop(heap)
            col = self.cols.get(key)
            if col is not None and col.expires.get(oid) == at:
                out.append((key, oid))
        return out

    def rebuild_heap(self) -> None:
        self.heap = [
            (at, key, oid)
            for key, col in self.cols.items()
            for oid, at in col.expires.items()
        ]
        heapq.heapify(self.heap)

    # -- undo journal ------------------------------------------------------------

    def note_object(
        self, key: str, col: Collection, oid: str, cap: Captured | None
    ) -> None:
        if self.journaling:
            self.journal.append(("obj", key, col, oid, cap))

    def note(self, entry: Undo) -> None:
        if self.journaling:
            self.journal.append(entry)

    def commit_journal(self) -> None:
        self.journal.clear()

    def rollback(self, on_entry: Callable[[Undo], None] | None = None) -> None:
        """Undo every journaled write, newest first."""
        journal, self.journal = self.journal, []
        for entry in reversed(journal):
            kind = entry[0]
            if kind == "obj":
                _, key, col, oid, cap = entry
                col.restore(oid, cap)
                if cap is not None and cap[2] is not None:
                    heapq.heappush(self.heap, (cap[2], key, oid))
            elif kind == "pt":
                _, key, col, oid, old, z, exp = entry
                if old is None:
                    col.delete(oid)
                else:
                    col.points.set(oid, old[0], old[1])
                    if z is not None:
                        col.z[oid] = z
                    if exp is not None:
                        col.expires[oid] = exp
                        heapq.heappush(self.heap, (exp, key, oid))
            elif kind == "newkey":
                col = self.cols.get(entry[1])
                if col is not None and len(col) == 0:
                    del self.cols[entry[1]]
            elif kind == "delkey":
                self.cols[entry[1]] = entry[2]
            elif kind == "cols":
                self.cols = entry[1]
                self.rebuild_heap()
            elif on_entry is not None:
                on_entry(entry)
