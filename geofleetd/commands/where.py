"""Field filters of the search commands: WHERE, WHEREIN and WHERE expressions.

Three forms, as Tile38 accepts them:

- ``WHERE field min max``: inclusive numeric range; ``(10`` makes a bound
  exclusive; ``-inf`` / ``+inf`` leave a side open. A missing field counts as 0.
- ``WHERE field op value`` and ``WHERE "expr"``: an expression over fields with
  ``== != < <= > >= =~`` (regular expression match), ``&& || !`` and parentheses,
  numbers and quoted strings. ``properties.x`` reads a GeoJSON Feature's properties.
- ``WHEREIN field count v1 .. vn``: the field equals one of the values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from geofleetd.errors import GeofleetError

Getter = Callable[[str], Any]  # field path -> value or None
Pred = Callable[[Getter], bool]

_OPS = ("==", "!=", "<=", ">=", "=~", "<", ">")
_TOKEN = re.compile(
    r"\s*(?:(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<op>==|!=|<=|>=|=~|&&|\|\||[<>!()])"
    r"|(?P<name>[A-Za-z_][\w.\-]*))"
)


def _bound(text: str) -> tuple[float, bool]:
    """Parse one range bound; return (value, exclusive)."""
    excl = text.startswith("(")
    body = text[1:] if excl else text
    low = body.lower()
    if low in ("-inf", "+inf", "inf"):
        return (-math.inf if low == "-inf" else math.inf), excl
    try:
        return float(body), excl
    except ValueError:
        raise GeofleetError(f"invalid argument '{text}'") from None


def _num(v: Any) -> float:
    if v is None:
        return 0.0
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, int | float):
        return float(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def range_pred(name: str, lo_text: str, hi_text: str) -> Pred:
    lo, lo_ex = _bound(lo_text)
    hi, hi_ex = _bound(hi_text)

    def pred(get: Getter) -> bool:
        v = _num(get(name))
        if v != v:  # text that is not a number is in no numeric range
            return False
        if v < lo or (lo_ex and v == lo):
            return False
        return not (v > hi or (hi_ex and v == hi))

    return pred


def wherein_pred(name: str, values: list[str]) -> Pred:
    nums = set()
    strs = set(values)
    for v in values:
        try:
            nums.add(float(v))
        except ValueError:
            pass

    def pred(get: Getter) -> bool:
        v = get(name)
        if v is None:
            v = 0.0
        if isinstance(v, str):
            return v in strs
        return _num(v) in nums

    return pred


@dataclass
class _Parser:
    toks: list[tuple[str, str]]
    pos: int = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise GeofleetError("invalid where expression: unexpected end")
        self.pos += 1
        return tok


def _tokenize(text: str) -> list[tuple[str, str]]:
    toks: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise GeofleetError(f"invalid where expression '{text}'")
        kind = m.lastgroup
        assert kind is not None
        toks.append((kind, m.group(kind)))
        pos = m.end()
    return toks


def expr_pred(text: str) -> Pred:
    p = _Parser(_tokenize(text))
    fn = _or(p)
    if p.peek() is not None:
        raise GeofleetError(f"invalid where expression '{text}'")
    return lambda get: bool(fn(get))


def _or(p: _Parser) -> Callable[[Getter], Any]:
    left = _and(p)
    while p.peek() == ("op", "||"):
        p.take()
        right = _and(p)
        left = (lambda a, b: lambda g: bool(a(g)) or bool(b(g)))(left, right)
    return left


def _and(p: _Parser) -> Callable[[Getter], Any]:
    left = _not(p)
    while p.peek() == ("op", "&&"):
        p.take()
        right = _not(p)
        left = (lambda a, b: lambda g: bool(a(g)) and bool(b(g)))(left, right)
    return left


def _not(p: _Parser) -> Callable[[Getter], Any]:
    if p.peek() == ("op", "!"):
        p.take()
        inner = _not(p)
        return lambda g: not inner(g)
    return _cmp(p)


def _cmp(p: _Parser) -> Callable[[Getter], Any]:
    left = _atom(p)
    tok = p.peek()
    if tok is not None and tok[0] == "op" and tok[1] in _OPS:
        p.take()
        right = _atom(p)
        return _compare(tok[1], left, right)
    return left


def _compare(
    op: str, a: Callable[[Getter], Any], b: Callable[[Getter], Any]
) -> Callable[[Getter], Any]:
    def fn(g: Getter) -> bool:
        x, y = a(g), b(g)
        if op == "=~":
            try:
                return re.search(str(y), "" if x is None else str(x)) is not None
            except re.error:
                return False
        if isinstance(x, str) and isinstance(y, str):
            xs, ys = x, y
            return {
                "==": xs == ys,
                "!=": xs != ys,
                "<": xs < ys,
                "<=": xs <= ys,
                ">": xs > ys,
                ">=": xs >= ys,
            }[op]
        xn, yn = _num(x), _num(y)
        return {
            "==": xn == yn,
            "!=": xn != yn,
            "<": xn < yn,
            "<=": xn <= yn,
            ">": xn > yn,
            ">=": xn >= yn,
        }[op]

    return fn


def _atom(p: _Parser) -> Callable[[Getter], Any]:
    kind, text = p.take()
    if kind == "num":
        v = float(text)
        return lambda g: v
    if kind == "str":
        s = re.sub(r"\\(.)", r"\1", text[1:-1])
        return lambda g: s
    if kind == "name":
        if text in ("true", "false"):
            b = text == "true"
            return lambda g: b
        return lambda g: g(text)
    if (kind, text) == ("op", "("):
        inner = _or(p)
        if p.take() != ("op", ")"):
            raise GeofleetError("invalid where expression: missing ')'")
        return inner
    raise GeofleetError(f"invalid where expression near '{text}'")


def parse_where(args: list[str], i: int) -> tuple[Pred, int]:
    """Parse the arguments after WHERE at ``args[i]``; return (predicate, next)."""
    n = len(args)
    if i >= n:
        raise GeofleetError("wrong number of arguments")
    first = args[i]
    if any(op in first for op in ("==", "!=", "<", ">", "=~", "&&", "||", "(", " ")):
        return expr_pred(first), i + 1
    if i + 2 < n and args[i + 1] in _OPS:
        return expr_pred(f"{first} {args[i + 1]} {_quote(args[i + 2])}"), i + 3
    if i + 2 >= n:
        raise GeofleetError("wrong number of arguments")
    return range_pred(first, args[i + 1], args[i + 2]), i + 3


def _quote(v: str) -> str:
    try:
        float(v)
        return v
    except ValueError:
        if v[:1] in ("'", '"'):
            return v
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
