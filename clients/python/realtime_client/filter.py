"""Subscription filters (docs/PROTOCOL.md "Filters"), the server's grammar and meaning exactly.

    netBps >= 10 and symbol in ["BTC-USDT", "ETH-USDT"] and not buy.exchange == "kraken"

The SDK parses a filter before sending it (a bad one fails here with the server's message and
position), and applies it to events another subscription of the same connection brings.
Positions count UTF-16 code units, as the server's do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, NoReturn, Union

from .jsjson import js_json

__all__ = ["FILTER_LIMITS", "Filter", "FilterError", "parse_filter"]

FILTER_LIMITS = {"length": 1024, "comparisons": 32, "values": 100, "depth": 16}

Value = Union[float, int, str, bool, None]


class FilterError(ValueError):
    """A filter that does not parse; the server would answer it with bad_request and this message."""

    code = "bad_request"


@dataclass(frozen=True)
class Filter:
    """A parsed filter: `key` is its canonical text (the server's ack `filter`), `test` its predicate."""

    key: str
    test: Callable[[Any], bool]


_TOKEN = re.compile(
    r'(-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)'
    r'|("(?:[^"\\\n\r\u2028\u2029]|\\[^\n\r\u2028\u2029])*")'
    r"|([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r"|(==|!=|<=|>=|<|>|\(|\)|\[|\]|,)"
)
_WORDS = frozenset(["and", "or", "not", "in", "true", "false", "null"])
_OPS = frozenset(["==", "!=", "<", "<=", ">", ">="])
_SPACE = " \t\n\r"


class _Token:
    __slots__ = ("kind", "text", "value", "at")

    def __init__(self, kind: str, text: str, at: int, value: Value = None) -> None:
        self.kind = kind
        self.text = text
        self.value = value
        self.at = at


def _fail(text: str, message: str, at: int) -> NoReturn:
    utf16 = len(text[:at].encode("utf-16-le", "surrogatepass")) // 2
    raise FilterError(f"filter: {message} at position {utf16}")


def _js_string(raw: str, text: str, at: int) -> str:
    # JSON.parse accepts what json.loads does here, except a lone surrogate escape, which both keep.
    try:
        value = json.loads(raw)
    except ValueError:
        _fail(text, "bad string", at)
    return str(value)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    n = len(text)
    while True:
        while at < n and text[at] in _SPACE:
            at += 1
        if at >= n:
            break
        m = _TOKEN.match(text, at)
        if m is None:
            _fail(text, f'unexpected character "{text[at]}"', at)
        number, string, name, punct = m.groups()
        if number is not None:
            tokens.append(_Token("number", number, at, float(number)))
        elif string is not None:
            tokens.append(_Token("string", string, at, _js_string(string, text, at)))
        elif name is not None:
            tokens.append(_Token("name", name, at))
        else:
            tokens.append(_Token("punct", punct, at))
        at = m.end()
    tokens.append(_Token("end", "the end", n))
    return tokens


# A parsed node: ("and"|"or", left, right), ("not", operand), ("cmp", path, op, value), ("in", path, values)
Node = tuple[Any, ...]


class _Parser:
    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.comparisons = 0

    def fail(self, message: str, at: int) -> NoReturn:
        _fail(self.text, message, at)

    def parse(self) -> Node:
        node = self.or_(0)
        t = self.tokens[self.i]
        if t.kind != "end":
            self.fail(f'unexpected "{t.text}"', t.at)
        return node

    def next(self) -> _Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def word(self, w: str) -> bool:
        t = self.tokens[self.i]
        if t.kind == "name" and t.text == w:
            self.i += 1
            return True
        return False

    def or_(self, depth: int) -> Node:
        left = self.and_(depth)
        while self.word("or"):
            left = ("or", left, self.and_(depth))
        return left

    def and_(self, depth: int) -> Node:
        left = self.not_(depth)
        while self.word("and"):
            left = ("and", left, self.not_(depth))
        return left

    def not_(self, depth: int) -> Node:
        if depth > FILTER_LIMITS["depth"]:
            self.fail(f"nested deeper than {FILTER_LIMITS['depth']}", self.tokens[self.i].at)
        if self.word("not"):
            return ("not", self.not_(depth + 1))
        t = self.tokens[self.i]
        if t.kind == "punct" and t.text == "(":
            self.i += 1
            inner = self.or_(depth + 1)
            close = self.next()
            if close.kind != "punct" or close.text != ")":
                self.fail(f'expected ")", found "{close.text}"', close.at)
            return inner
        return self.comparison()

    def comparison(self) -> Node:
        field = self.next()
        if field.kind != "name" or field.text in _WORDS:
            self.fail(f'expected a field name, found "{field.text}"', field.at)
        self.comparisons += 1
        if self.comparisons > FILTER_LIMITS["comparisons"]:
            self.fail(f"more than {FILTER_LIMITS['comparisons']} comparisons", field.at)
        path = tuple(field.text.split("."))
        if self.word("in"):
            opening = self.next()
            if opening.kind != "punct" or opening.text != "[":
                self.fail(f'expected "[", found "{opening.text}"', opening.at)
            values = [self.value()]
            while True:
                t = self.next()
                if t.kind == "punct" and t.text == "]":
                    break
                if t.kind != "punct" or t.text != ",":
                    self.fail(f'expected "," or "]", found "{t.text}"', t.at)
                if len(values) >= FILTER_LIMITS["values"]:
                    self.fail(f"more than {FILTER_LIMITS['values']} values in a list", t.at)
                values.append(self.value())
            return ("in", path, tuple(values))
        op = self.next()
        if op.kind != "punct" or op.text not in _OPS:
            self.fail(f'expected a comparison or "in", found "{op.text}"', op.at)
        return ("cmp", path, op.text, self.value())

    def value(self) -> Value:
        t = self.next()
        if t.kind in ("number", "string"):
            return t.value
        if t.kind == "name" and t.text in ("true", "false"):
            return t.text == "true"
        if t.kind == "name" and t.text == "null":
            return None
        self.fail(f'expected a number, a "string", true, false or null, found "{t.text}"', t.at)


_MISSING = object()


def _field(data: Any, path: tuple[str, ...]) -> Any:
    """The field at path, the data's own properties only (an array's own `length` too, as in JS)."""
    v = data
    for key in path:
        if isinstance(v, dict):
            if key not in v:
                return _MISSING
            v = v[key]
        elif isinstance(v, list) and key == "length":
            v = len(v)
        else:
            return _MISSING
    return v


def _kind(v: Any) -> str:
    """The JavaScript type of a decoded value, for exact (===) comparison."""
    if v is None:
        return "null"
    if v is True or v is False:
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "object"


def _equal(a: Any, b: Value) -> bool:
    kind = _kind(a)
    # Objects and arrays are never === a literal; a missing field equals nothing.
    return a is not _MISSING and kind != "object" and kind == _kind(b) and a == b


def _compile(node: Node) -> Callable[[Any], bool]:
    kind = node[0]
    if kind == "and":
        left, right = _compile(node[1]), _compile(node[2])
        return lambda d: left(d) and right(d)
    if kind == "or":
        left, right = _compile(node[1]), _compile(node[2])
        return lambda d: left(d) or right(d)
    if kind == "not":
        operand = _compile(node[1])
        return lambda d: not operand(d)
    if kind == "in":
        path, values = node[1], node[2]
        return lambda d: any(_equal(_field(d, path), v) for v in values)
    path, op, value = node[1], node[2], node[3]
    if op == "==":
        return lambda d: _equal(_field(d, path), value)
    if op == "!=":
        return lambda d: not _equal(_field(d, path), value)
    value_kind = _kind(value)

    def ordered(x: Any) -> bool:
        # Orderings hold between two numbers or two strings; anything else is false.
        return x is not _MISSING and _kind(x) == value_kind and value_kind in ("number", "string")

    if op == "<":
        return lambda d: ordered(x := _field(d, path)) and x < value
    if op == "<=":
        return lambda d: ordered(x := _field(d, path)) and x <= value
    if op == ">":
        return lambda d: ordered(x := _field(d, path)) and x > value
    return lambda d: ordered(x := _field(d, path)) and x >= value


def _canonical(node: Node) -> str:
    kind = node[0]
    if kind in ("and", "or"):
        return f"({_canonical(node[1])} {kind} {_canonical(node[2])})"
    if kind == "not":
        return f"not {_canonical(node[1])}"
    if kind == "in":
        return f"{'.'.join(node[1])} in [{','.join(js_json(v) for v in node[2])}]"
    return f"{'.'.join(node[1])} {node[2]} {js_json(node[3])}"


def parse_filter(text: Any) -> Filter:
    """Parses a subscribe's filter; raises FilterError naming the position of the first error."""
    if not isinstance(text, str):
        raise FilterError("filter: a string expression")
    if len(text.encode("utf-16-le", "surrogatepass")) // 2 > FILTER_LIMITS["length"]:
        raise FilterError(f"filter: longer than {FILTER_LIMITS['length']} characters")
    if text.strip() == "":
        raise FilterError("filter: empty")
    node = _Parser(text, _tokenize(text)).parse()
    return Filter(_canonical(node), _compile(node))
