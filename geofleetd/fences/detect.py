"""Pure fence detection: what one update means for one fence.

``classify(old_in, new_in, crossed, had_old, command)`` returns the primary event
kind, following Tile38's rules:

| old inside | new inside | result                                   |
|------------|------------|------------------------------------------|
| yes        | yes        | ``inside``                               |
| yes        | no         | ``exit`` (then ``outside``)              |
| no         | yes        | ``enter`` (then ``inside``); FSET: ``inside``  |
| no         | no         | ``cross`` if old->new meets the fence, else ``outside`` |

(FSET never yields ``cross``: the object did not move.)

``expand(primary)`` gives the events actually sent, in order: ``enter`` is followed
by ``inside`` and ``exit``/``cross`` by ``outside``; a fence's DETECT list filters
each of them.
"""

from __future__ import annotations

ALL_DETECT = frozenset({"inside", "outside", "enter", "exit", "cross"})


def classify(
    old_in: bool, new_in: bool, crossed: bool, had_old: bool, command: str
) -> str:
    if old_in and new_in:
        return "inside"
    if old_in:
        return "exit"
    if new_in:
        return "inside" if command == "fset" else "enter"
    if crossed and had_old and command != "fset":
        return "cross"
    return "outside"


def expand(primary: str, detect: frozenset[str] | None) -> list[str]:
    allowed = ALL_DETECT if detect is None else detect
    kinds = [primary]
    if primary == "enter":
        kinds.append("inside")
    elif primary in ("exit", "cross"):
        kinds.append("outside")
    return [k for k in kinds if k in allowed]
