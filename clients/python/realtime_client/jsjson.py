"""JSON text exactly as JavaScript's JSON.stringify writes it.

A JSON connection's delta applies to the server's JSON.stringify of the previous data, so the
SDK must rebuild those bytes from what it decoded: numbers are where Python differs (1.0 is `1`,
1e-7 is `1e-7`, 1e21 is `1e+21`).
"""

from __future__ import annotations

import math
from json import encoder
from typing import Any, Callable

__all__ = ["js_json", "js_number"]

# JSON.stringify's string escaping (quotes, backslash, control characters; the rest as it is).
encode_basestring: Callable[[str], str] = encoder.encode_basestring  # type: ignore[attr-defined]


def js_number(x: float | int) -> str:
    """Number.prototype.toString for a finite number (JSON.stringify writes `null` otherwise)."""
    if isinstance(x, int):
        if abs(x) < 2**53:
            return str(x)
        x = float(x)  # a JavaScript number holds only the nearest double
    if not math.isfinite(x):
        return "null"
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    text = repr(abs(x))  # the shortest digits that round-trip, as JavaScript picks them
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    # value = 0.digits x 10^n
    n = len(whole) + (int(exponent) if exponent else 0) - (len(whole + fraction) - len((whole + fraction).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    exp = ("+" if e >= 0 else "-") + str(abs(e))
    if k == 1:
        return sign + digits + "e" + exp
    return sign + digits[0] + "." + digits[1:] + "e" + exp


def js_json(value: Any) -> str:
    """JSON.stringify(value) for data decoded from JSON or MessagePack."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return encode_basestring(value)
    if isinstance(value, (int, float)):
        return js_number(value)
    if isinstance(value, dict):
        return "{" + ",".join(encode_basestring(str(k)) + ":" + js_json(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(js_json(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
