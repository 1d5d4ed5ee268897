"""detect.classify and detect.expand, exhaustively.

classify: every old state (inside, outside, absent) x new state (inside, outside) x
whether the path crossed x command (set, fset), against a table written out by hand.
expand: every primary kind against every DETECT list (all 31 non-empty subsets and
none), against Tile38's own procedure re-stated here: a kind not in DETECT turns
enter into inside and exit or cross into outside, else nothing is sent; then enter
is followed by inside and exit/cross by outside when DETECT allows them.
"""

from __future__ import annotations

import itertools

import pytest

from geofleetd.fences.detect import ALL_DETECT, classify, expand

# (old, new, crossed, command) -> primary kind
TABLE = {
    ("in", "in", False, "set"): "inside",
    ("in", "in", True, "set"): "inside",
    ("in", "out", False, "set"): "exit",
    ("in", "out", True, "set"): "exit",
    ("out", "in", False, "set"): "enter",
    ("out", "in", True, "set"): "enter",
    ("out", "out", False, "set"): "outside",
    ("out", "out", True, "set"): "cross",
    ("absent", "in", False, "set"): "enter",
    ("absent", "in", True, "set"): "enter",
    ("absent", "out", False, "set"): "outside",
    ("absent", "out", True, "set"): "outside",  # no old position: nothing to cross
    ("in", "in", False, "fset"): "inside",
    ("in", "in", True, "fset"): "inside",
    ("in", "out", False, "fset"): "exit",
    ("in", "out", True, "fset"): "exit",
    ("out", "in", False, "fset"): "inside",  # FSET never enters
    ("out", "in", True, "fset"): "inside",
    ("out", "out", False, "fset"): "outside",
    ("out", "out", True, "fset"): "outside",  # FSET never crosses
    ("absent", "in", False, "fset"): "inside",
    ("absent", "in", True, "fset"): "inside",
    ("absent", "out", False, "fset"): "outside",
    ("absent", "out", True, "fset"): "outside",
}

KINDS = ["inside", "outside", "enter", "exit", "cross"]


def test_table_covers_every_combination() -> None:
    combos = set(
        itertools.product(
            ["in", "out", "absent"], ["in", "out"], [False, True], ["set", "fset"]
        )
    )
    assert set(TABLE) == combos
    assert len(TABLE) == 24


@pytest.mark.parametrize(("combo", "primary"), sorted(TABLE.items()))
def test_classify(combo: tuple[str, str, bool, str], primary: str) -> None:
    old, new, crossed, command = combo
    got = classify(old == "in", new == "in", crossed, old != "absent", command)
    assert got == primary


def tile38_messages(primary: str, detect: frozenset[str] | None) -> list[str]:
    """Tile38's fenceMatch, from the detect loop to the message list."""
    kind = primary
    while detect is not None and kind not in detect:
        if kind == "enter":
            kind = "inside"
        elif kind in ("exit", "cross"):
            kind = "outside"
        else:
            return []
    out = [kind]
    if kind == "enter" and (detect is None or "inside" in detect):
        out.append("inside")
    if kind in ("exit", "cross") and (detect is None or "outside" in detect):
        out.append("outside")
    return out


FILTERS: list[frozenset[str] | None] = [None] + [
    frozenset(c) for n in range(1, 6) for c in itertools.combinations(KINDS, n)
]


@pytest.mark.parametrize("primary", KINDS)
def test_expand_against_every_detect_list(primary: str) -> None:
    assert len(FILTERS) == 32
    for detect in FILTERS:
        assert expand(primary, detect) == tile38_messages(primary, detect), detect


def test_expand_examples_users_rely_on() -> None:
    assert frozenset(KINDS) == ALL_DETECT
    assert expand("enter", None) == ["enter", "inside"]
    assert expand("exit", None) == ["exit", "outside"]
    assert expand("cross", None) == ["cross", "outside"]
    assert expand("enter", frozenset({"enter", "exit"})) == ["enter"]
    assert expand("inside", frozenset({"enter", "exit"})) == []
    assert expand("outside", frozenset({"enter", "exit"})) == []
    assert expand("enter", frozenset({"inside"})) == ["inside"]
    assert expand("cross", frozenset({"outside"})) == ["outside"]
    assert expand("cross", frozenset({"exit"})) == []
