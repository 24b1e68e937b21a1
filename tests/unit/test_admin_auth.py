"""Who may see the admin page: the token, or a login cookie that proves it was known."""

from __future__ import annotations

import pytest

from squall.admin import AdminAuth, bearer_token

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer s3cret", "s3cret"),
        ("bearer  s3cret ", "s3cret"),
        ("Basic czNjcmV0", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header, token):
    assert bearer_token(header) == token


def test_the_token_and_only_it_matches():
    auth = AdminAuth("s3cret")
    assert auth.token_matches("s3cret")
    assert not auth.token_matches("s3cre")
    assert not auth.token_matches("s3cret ")
    assert not auth.token_matches(None)


def test_a_cookie_is_valid_until_it_expires():
    auth = AdminAuth("s3cret", lifetime=60)
    cookie = auth.issue(now=NOW)
    assert "s3cret" not in cookie
    assert auth.cookie_valid(cookie, now=NOW + 59)
    assert not auth.cookie_valid(cookie, now=NOW + 60)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-1] + ("0" if c[-1] != "0" else "1"),  # signature changed
        lambda c: str(int(c.split(".")[0]) + 3600) + "." + c.split(".")[1],  # expiry pushed
        lambda c: c.split(".")[0],  # no signature
        lambda c: "",
        lambda c: "soon." + c.split(".")[1],
    ],
)
def test_a_tampered_cookie_is_refused(tamper):
    auth = AdminAuth("s3cret", lifetime=60)
    assert not auth.cookie_valid(tamper(auth.issue(now=NOW)), now=NOW)


def test_another_token_refuses_the_cookies_of_the_old_one():
    cookie = AdminAuth("old").issue()
    assert not AdminAuth("new").cookie_valid(cookie)


def test_allows_cookie_or_bearer():
    auth = AdminAuth("s3cret")
    assert auth.allows(auth.issue(), None)
    assert auth.allows(None, "Bearer s3cret")
    assert not auth.allows(None, "Bearer nope")
    assert not auth.allows("garbage", None)
    assert not auth.allows(None, None)
