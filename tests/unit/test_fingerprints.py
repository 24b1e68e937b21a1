"""Fingerprints (PROTOCOL.md §4): what a client may send, and what the server makes."""

from __future__ import annotations

import pytest

from squall.fingerprints import MAX_LENGTH, choose, new_fingerprint, valid_fingerprint

VALID = ["a", "Z", "0", "-", "_", "My_Session-42", "x" * MAX_LENGTH]
INVALID = [
    "",
    "x" * (MAX_LENGTH + 1),
    "abc\r\nX-Injected: yes",
    "x; Domain=evil.example",
    "a b",
    "caf\u00e9",
    "\u2603",
    "a=b",
    "a,b",
    '"quoted"',
    "abc\n",
    None,
    42,
    b"bytes",
]


@pytest.mark.parametrize("value", VALID)
def test_valid_fingerprint_takes_short_tokens(value):
    assert valid_fingerprint(value) == value


@pytest.mark.parametrize("value", INVALID)
def test_valid_fingerprint_refuses_everything_else(value):
    assert valid_fingerprint(value) is None


def test_new_fingerprints_are_valid_and_differ():
    made = {new_fingerprint() for _ in range(1000)}
    assert len(made) == 1000
    assert all(valid_fingerprint(value) == value and len(value) == 32 for value in made)


def test_choose_takes_the_cookie_first_and_sets_no_cookie():
    assert choose("cookie-fp", "query-fp") == ("cookie-fp", False)


def test_choose_takes_the_query_without_a_valid_cookie_and_sets_the_cookie():
    assert choose(None, "query-fp") == ("query-fp", True)
    assert choose("bad value", "query-fp") == ("query-fp", True)


@pytest.mark.parametrize("cookie, query", [(None, None), ("", ""), ("a b", "x\r\ny"), (None, "")])
def test_choose_makes_a_new_one_when_nothing_valid_was_sent(cookie, query):
    fingerprint, needs_cookie = choose(cookie, query)
    assert needs_cookie and valid_fingerprint(fingerprint) == fingerprint
    assert fingerprint not in (cookie, query)
