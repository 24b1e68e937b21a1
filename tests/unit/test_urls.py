"""URLs shown in status and logs carry no credentials (squall/urls.py)."""

from __future__ import annotations

import pytest

from squall.urls import redact_url


@pytest.mark.parametrize(
    "url, shown",
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("redis://app:s3cret@cache/1", "redis://app:***@cache/1"),
        ("rediss://app:s3cr@t@cache:6380", "rediss://app:***@cache:6380"),
        ("redis://s3cret@cache", "redis://***@cache"),
        ("unix://:s3cret@/run/redis.sock?db=2", "unix://:***@/run/redis.sock?db=2"),
        ("redis://cache/0?password=s3cret&db=1", "redis://cache/0?password=***&db=1"),
        ("redis://cache/0?db=1&auth_token=s3cret", "redis://cache/0?db=1&auth_token=***"),
        # a password that was not percent-encoded is hidden whole, not cut at its / or ?
        ("redis://:pa/ss?w@cache:6379", "redis://:***@cache:6379"),
        ("cache:6379", "cache:6379"),
    ],
)
def test_redact_url_hides_passwords(url, shown):
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url)
