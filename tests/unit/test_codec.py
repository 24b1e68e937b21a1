"""JSON in and out: compact UTF-8, the same wire text on both paths, always valid JSON."""

from __future__ import annotations

import datetime
import json

import pytest

from squall import codec

from .conftest import strict_json


def test_dumps_is_compact_utf8():
    assert codec.dumps({"a": [1, 2], "b": "é🚀"}) == '{"a":[1,2],"b":"é🚀"}'.encode()


def test_dumps_sets_and_tuples_become_lists():
    assert json.loads(codec.dumps({"s": {3}, "t": (1, 2)})) == {"s": [3], "t": [1, 2]}


class Opaque:
    def __str__(self) -> str:
        return "opaque!"


def test_dumps_other_objects_become_strings():
    moment = datetime.datetime(2024, 1, 2, 3, 4, 5)

    assert json.loads(codec.dumps({"x": Opaque()})) == {"x": "opaque!"}
    assert json.loads(codec.dumps({"when": moment})) == {"when": "2024-01-02T03:04:05"}


def test_dumps_integer_keys_become_strings():
    assert codec.dumps({1: "a"}) == b'{"1":"a"}'


def test_dumps_integers_beyond_64_bits():
    assert codec.dumps({"big": 2**70}) == b'{"big":1180591620717411303424}'


@pytest.mark.parametrize(
    "value",
    [
        {"inf": float("inf")},
        {"nan": float("nan")},
        {"inf": float("inf"), "big": 2**70},
        {"nan": float("nan"), "big": 2**70},
        [float("-inf"), 10**30],
    ],
)
def test_dumps_always_writes_valid_json(value):
    """A browser's JSON.parse refuses NaN and Infinity, whichever encoder wrote the frame."""
    strict_json(codec.dumps(value))


def test_dumps_same_text_for_non_finite_floats_with_and_without_big_integers():
    alone = json.loads(codec.dumps({"x": float("inf")}))
    with_big = strict_json(codec.dumps({"x": float("inf"), "big": 2**70}))

    assert with_big["x"] == alone["x"]


def test_loads_text_and_bytes():
    assert codec.loads('{"a": 1}') == {"a": 1}
    assert codec.loads(b'{"a": "\xc3\xa9"}') == {"a": "é"}


def test_loads_integers_beyond_64_bits():
    """Exact with the stdlib, the nearest double with orjson (what a browser reads too)."""
    (value,) = codec.loads("[18446744073709551617]")

    assert value in (18446744073709551617, float(18446744073709551617))


def test_loads_out_of_range_float_is_infinite():
    assert codec.loads("[1e400]") == [float("inf")]


@pytest.mark.parametrize("text", ["{", "", "nope", "[1,]", '{"a" 1}', "{'a': 1}"])
def test_loads_invalid_json_raises_decode_error(text):
    with pytest.raises(codec.DecodeError):
        codec.loads(text)


def test_loads_deep_nesting_raises_decode_error():
    with pytest.raises(codec.DecodeError):
        codec.loads("[" * 100_000 + "]" * 100_000)


def test_loads_integer_with_too_many_digits_raises_decode_error():
    with pytest.raises(codec.DecodeError):
        codec.loads("1" * 5000)


def test_decode_error_is_a_value_error():
    assert issubclass(codec.DecodeError, ValueError)
