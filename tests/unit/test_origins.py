"""The Origin check of the upgrade (PROTOCOL.md §6): the page's own host by
default, as Tornado's ``check_origin``; a list; ``"*"`` only where written."""

from __future__ import annotations

import pytest

from squall.origins import origin_allowed


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://chat.example.com", "chat.example.com"),
        ("https://chat.example.com", "chat.example.com"),
        ("http://127.0.0.1:8080", "127.0.0.1:8080"),
        ("http://Chat.Example.com:8080", "chat.example.com:8080"),
        ("http://[::1]:8080", "[::1]:8080"),
    ],
)
def test_own_host_is_allowed_by_default(origin, host):
    assert origin_allowed(origin, host, None)


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://evil.example", "chat.example.com"),
        ("http://chat.example.com:8081", "chat.example.com:8080"),  # another port, another site
        ("http://chat.example.com.evil.example", "chat.example.com"),
        ("http://evil.example/chat.example.com", "chat.example.com"),
        ("null", "chat.example.com"),  # sandboxed frames and file:// pages
        ("", "chat.example.com"),
        ("http://chat.example.com", None),
        ("http://chat.example.com", ""),
        ("http://[::1", "[::1"),  # not a URL
    ],
)
def test_other_origins_are_refused_by_default(origin, host):
    assert not origin_allowed(origin, host, None)


def test_star_allows_any_origin():
    assert origin_allowed("http://evil.example", "chat.example.com", "*")
    assert origin_allowed("null", None, "*")


def test_a_list_allows_exactly_its_origins():
    allowed = ["https://chat.example.com", "https://admin.example.com"]

    assert origin_allowed("https://admin.example.com", "api.example.com", allowed)
    assert not origin_allowed("http://chat.example.com", "chat.example.com", allowed)
    assert not origin_allowed("https://chat.example", "chat.example", allowed)  # no substrings
    assert not origin_allowed("https://chat.example.com", "chat.example.com", [])
