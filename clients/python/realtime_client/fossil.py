"""Fossil delta decoding (the format of the Fossil SCM; npm `fossil-delta`), in pure Python.

A delta is a header `<size>\\n`, then commands `<n>@<offset>,` (copy from the source),
`<n>:<bytes>` (insert) and a final `<checksum>;`, integers in Fossil's base-64 digits. Every count
is checked against the declared size and the inputs before any work, so a hostile delta costs at
most its own length plus `max_size` bytes of output.
"""

from __future__ import annotations

import re
import struct

__all__ = ["DeltaError", "apply_delta", "checksum", "target_size"]


class DeltaError(ValueError):
    """A delta that cannot be applied: malformed, too large, or its checksum does not match."""


# Fossil's base-64 digits (fossil-delta reads a byte's low 7 bits; a delta it writes never has the 8th).
_DIGITS = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
_VALUE = {c: i for i, c in enumerate(_DIGITS)}
# The header: the result's size, then a newline.
_HEADER = re.compile(rb"([0-9A-Za-z_~]*)\n")
# One command: a copy `count@offset,` (the comma may be missing at the very end), an insert
# `count:` (its bytes follow), the checksum `count;`, or the end of the delta.
_COMMAND = re.compile(rb"([0-9A-Za-z_~]*)(?:@([0-9A-Za-z_~]*)(,?)|([:;]|$))")
_NL = ord("\n")
# Decoded integers and checksum layouts seen before: deltas repeat the same few (bounded: a
# hostile stream of new ones only stops them being kept).
_INTS: dict[bytes, int] = {}
_WORDS: dict[int, struct.Struct] = {}
_KEEP = 65_536


def _int(digits: bytes) -> int:
    """A base-64 integer, 32-bit as fossil-delta wraps it."""
    value = _INTS.get(digits)
    if value is None:
        value = 0
        for c in digits:
            value = ((value << 6) + _VALUE[c]) & 0xFFFFFFFF
        # Counts and offsets repeat; a checksum (six digits) almost never does, so it is not kept.
        if len(digits) <= 3 and len(_INTS) < _KEEP:
            _INTS[digits] = value
    return value


def checksum(data: bytes | bytearray | memoryview) -> int:
    """Fossil's 32-bit checksum: the sum of the big-endian 32-bit words, the tail bytes high first."""
    n = len(data)
    words = n >> 2
    total = 0
    if words:
        layout = _WORDS.get(words)
        if layout is None:
            layout = struct.Struct(f">{words}I")
            if len(_WORDS) < 4096:
                _WORDS[words] = layout
        total = sum(layout.unpack_from(data))
    tail = n & 3
    if tail:
        total += int.from_bytes(bytes(data[words * 4 :]) + b"\0" * (4 - tail), "big")
    return total & 0xFFFFFFFF


def target_size(delta: bytes) -> int:
    """The size the delta declares for its result."""
    m = _HEADER.match(delta)
    if m is None:
        raise DeltaError("size integer not terminated by '\\n'")
    return _int(m.group(1))


def apply_delta(source: bytes | bytearray, delta: bytes, max_size: int = 16 * 1024 * 1024) -> bytes:
    """The target the delta makes of source, checksum verified; DeltaError otherwise.

    The declared size is checked against max_size before anything is built."""
    limit = target_size(delta)
    if limit > max_size:
        raise DeltaError(f"declared size {limit} exceeds the limit of {max_size} bytes")
    # The hot path of every delta event: integers come from the cache inline (a call each costs).
    match = _COMMAND.match
    ints = _INTS
    pos = delta.index(_NL) + 1
    end = len(delta)
    source_length = len(source)
    out = bytearray()
    total = 0
    while pos < end:
        m = match(delta, pos)
        if m is None:
            raise DeltaError("unknown delta operator")
        digits, offset_digits, separator, op = m.groups()
        count = ints.get(digits)
        if count is None:
            count = _int(digits)
        pos = m.end()
        if offset_digits is not None:
            if separator != b"," and pos < end:
                raise DeltaError("copy command not terminated by ','")
            offset = ints.get(offset_digits)
            if offset is None:
                offset = _int(offset_digits)
            total += count
            if total > limit:
                raise DeltaError("copy exceeds output file size")
            if offset + count > source_length:
                raise DeltaError("copy extends past end of input")
            out += source[offset : offset + count]
        elif op == b":":
            total += count
            if total > limit:
                raise DeltaError("insert command gives an output larger than predicted")
            if pos + count > end:
                raise DeltaError("insert count exceeds size of delta")
            out += delta[pos : pos + count]
            pos += count
        elif op == b";":
            if count != checksum(out):
                raise DeltaError("bad checksum")
            if total != limit:
                raise DeltaError("generated size does not match predicted size")
            return bytes(out)
        else:
            break
    raise DeltaError("unterminated delta")
