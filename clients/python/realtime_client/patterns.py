"""Topic patterns (docs/PROTOCOL.md): `*` is exactly one token, `>` one or more trailing tokens."""

from __future__ import annotations

import re

_WILDCARD = re.compile(r"(^|\.)[*>](\.|$)")


def is_pattern(topic: str) -> bool:
    """Does the topic hold a wildcard token?"""
    return _WILDCARD.search(topic) is not None


def matches(pattern: str, topic: str) -> bool:
    """Does a concrete topic match a pattern (or equal it)?"""
    if pattern == topic:
        return True
    p = pattern.split(".")
    t = topic.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(t) > i
        if i >= len(t) or (token != "*" and token != t[i]):
            return False
    return len(p) == len(t)
