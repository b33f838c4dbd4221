"""The SDK's Fossil decoder, filter parser and JSON writer against what the server's own code
produced for the same inputs (tests/fixtures/vectors.json, made by make-vectors.ts)."""

import json
import pathlib

import msgpack
import pytest

from realtime_client.filter import FilterError, parse_filter
from realtime_client.fossil import DeltaError, apply_delta, checksum
from realtime_client.jsjson import js_json

VECTORS = json.loads((pathlib.Path(__file__).parent / "fixtures" / "vectors.json").read_text())


@pytest.mark.parametrize("case", VECTORS["fossil"], ids=lambda c: f"{len(c['source']) // 2}->{len(c['target']) // 2}")
def test_fossil_delta_applies_as_fossil_delta_made_it(case):
    source, target, delta = (bytes.fromhex(case[k]) for k in ("source", "target", "delta"))
    assert apply_delta(source, delta) == target


@pytest.mark.parametrize("case", VECTORS["strings"], ids=lambda c: c["target"][:12])
def test_string_delta_applies_to_utf8(case):
    out = apply_delta(case["source"].encode(), case["delta"].encode())
    assert out.decode() == case["target"]


def test_a_changed_byte_fails_the_checksum():
    case = VECTORS["fossil"][-1]
    source, delta = bytes.fromhex(case["source"]), bytearray.fromhex(case["delta"])
    # The checksum covers the result: corrupt a copied byte of the source instead of the delta.
    broken = bytearray(source)
    broken[3] ^= 0xFF
    with pytest.raises(DeltaError, match="bad checksum"):
        apply_delta(bytes(broken), bytes(delta))


def test_checksum_of_tails():
    assert checksum(b"") == 0
    assert checksum(b"\x01") == 0x01000000
    assert checksum(b"\x00\x00\x00\x01\x02\x03") == 0x00000001 + 0x02030000


@pytest.mark.parametrize(
    "delta, message",
    [
        (b"", "size integer"),
        (b"5", "size integer"),
        (b"3\n3:ab", "insert count exceeds"),
        (b"3\n4:abcd0;", "larger than predicted"),
        (b"3\n3@0,0;", "past end of input"),
        (b"3\n3@0;", "not terminated by ','"),
        (b"3\n3:abc", "unterminated"),
        (b"3\n3:abc3?", "unknown delta operator"),
        (b"2\n2:ab0;", "bad checksum"),
        # A declared size past the limit is refused before anything is built.
        (b"~~~~~\n1:a0;", "exceeds the limit"),
    ],
)
def test_bad_deltas_are_refused(delta, message):
    with pytest.raises(DeltaError, match=message):
        apply_delta(b"xy", delta, max_size=1 << 20)


@pytest.mark.parametrize("case", VECTORS["filters"], ids=lambda c: c["text"][:40])
def test_filters_parse_and_judge_as_the_server_does(case):
    if "error" in case:
        with pytest.raises(FilterError) as err:
            parse_filter(case["text"])
        assert str(err.value) == case["error"]
        return
    f = parse_filter(case["text"])
    assert f.key == case["key"]
    assert [f.test(d) for d in VECTORS["data"]] == case["results"]


def test_filter_of_a_non_string():
    with pytest.raises(FilterError, match="a string expression"):
        parse_filter(3)


def test_js_json_writes_what_json_stringify_wrote():
    for case in VECTORS["json"]["numbers"] + VECTORS["json"]["data"]:
        assert js_json(case["value"]) == case["text"]
    # Decoded from MessagePack, an integral float is still the number JavaScript wrote as an integer.
    assert js_json(msgpack.unpackb(msgpack.packb({"a": 2.0, "b": [1e21, 1e-7]}))) == '{"a":2,"b":[1e+21,1e-7]}'
