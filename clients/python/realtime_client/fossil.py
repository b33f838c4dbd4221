"""Fossil delta decoding (the format of the Fossil SCM; npm `fossil-delta`), in pure Python.

A delta is a header `<size>\\n`, then commands `<n>@<offset>,` (copy from the source),
`<n>:<bytes>` (insert) and a final `<checksum>;`, integers in Fossil's base-64 digits. Every count
is checked against the declared size and the inputs before any work, so a hostile delta costs at
most its own length plus `max_size` bytes of output.
"""

from __future__ import annotations

import struct

__all__ = ["DeltaError", "apply_delta", "checksum", "target_size"]


class DeltaError(ValueError):
    """A delta that cannot be applied: malformed, too large, or its checksum does not match."""


# Fossil's digit values, indexed by byte & 0x7f (as fossil-delta reads them); -1 ends an integer.
_DIGITS = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
_VALUE = [-1] * 256
for _i, _c in enumerate(_DIGITS):
    _VALUE[_c] = _i
    _VALUE[_c | 0x80] = _i
_AT, _COLON, _SEMI, _COMMA, _NL = 0x40, 0x3A, 0x3B, 0x2C, 0x0A


def _int(delta: bytes, pos: int) -> tuple[int, int]:
    """The base-64 integer at pos (32-bit, as fossil-delta wraps it) and the position after it."""
    value = 0
    end = len(delta)
    while pos < end:
        digit = _VALUE[delta[pos]]
        if digit < 0:
            break
        value = ((value << 6) + digit) & 0xFFFFFFFF
        pos += 1
    return value, pos


def checksum(data: bytes | bytearray | memoryview) -> int:
    """Fossil's 32-bit checksum: the sum of the big-endian 32-bit words, the tail bytes high first."""
    n = len(data)
    words = n >> 2
    total = sum(struct.unpack_from(f">{words}I", data)) if words else 0
    tail = n & 3
    if tail:
        rest = bytes(data[words * 4 :]) + b"\0" * (4 - tail)
        total += struct.unpack(">I", rest)[0]
    return total & 0xFFFFFFFF


def target_size(delta: bytes) -> int:
    """The size the delta declares for its result."""
    size, pos = _int(delta, 0)
    if pos >= len(delta) or delta[pos] != _NL:
        raise DeltaError("size integer not terminated by '\\n'")
    return size


def apply_delta(source: bytes | bytearray, delta: bytes, max_size: int = 16 * 1024 * 1024) -> bytes:
    """The target the delta makes of source, checksum verified; DeltaError otherwise.

    The declared size is checked against max_size before anything is built."""
    limit = target_size(delta)
    if limit > max_size:
        raise DeltaError(f"declared size {limit} exceeds the limit of {max_size} bytes")
    pos = delta.index(_NL) + 1
    end = len(delta)
    source_length = len(source)
    out = bytearray()
    total = 0
    while pos < end:
        count, pos = _int(delta, pos)
        if pos >= end:
            break
        op = delta[pos]
        pos += 1
        if op == _AT:
            offset, pos = _int(delta, pos)
            if pos < end:
                if delta[pos] != _COMMA:
                    raise DeltaError("copy command not terminated by ','")
                pos += 1
            total += count
            if total > limit:
                raise DeltaError("copy exceeds output file size")
            if offset + count > source_length:
                raise DeltaError("copy extends past end of input")
            out += source[offset : offset + count]
        elif op == _COLON:
            total += count
            if total > limit:
                raise DeltaError("insert command gives an output larger than predicted")
            if pos + count > end:
                raise DeltaError("insert count exceeds size of delta")
            out += delta[pos : pos + count]
            pos += count
        elif op == _SEMI:
            if count != checksum(out):
                raise DeltaError("bad checksum")
            if total != limit:
                raise DeltaError("generated size does not match predicted size")
            return bytes(out)
        else:
            raise DeltaError("unknown delta operator")
    raise DeltaError("unterminated delta")
