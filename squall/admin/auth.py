"""Who may see the admin page: whoever presents ``servers.web.admin.token``.

A browser logs in once with the token (a form) and gets a cookie that proves it knew the token
without holding it: ``<expiry>.<HMAC-SHA256(token, expiry)>``, HttpOnly, SameSite=Strict,
scoped to the admin path. Any worker checks it alone (no session store); changing the token
logs every browser out. A script may send ``Authorization: Bearer <token>`` instead.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["COOKIE", "AdminAuth", "bearer_token"]

#: The admin cookie's name.
COOKIE = "squallAdmin"


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class AdminAuth:
    """Checks tokens and issues and checks the login cookie.

    Args:
        token: ``servers.web.admin.token``.
        lifetime: how long a login lasts, in seconds (12 hours).
    """

    def __init__(self, token: str, lifetime: int = 12 * 3600) -> None:
        self._key = token.encode()
        self.lifetime = lifetime

    def token_matches(self, candidate: str | None) -> bool:
        """Constant-time comparison, so the answer's timing tells nothing of the token."""
        return candidate is not None and hmac.compare_digest(candidate.encode(), self._key)

    def issue(self, now: float | None = None) -> str:
        """A cookie value valid for :attr:`lifetime` seconds from ``now``."""
        expiry = str(int((time.time() if now is None else now) + self.lifetime))
        return f"{expiry}.{self._sign(expiry)}"

    def cookie_valid(self, value: str | None, now: float | None = None) -> bool:
        if not value:
            return False
        expiry, _, signature = value.partition(".")
        if not expiry.isdigit() or not hmac.compare_digest(signature, self._sign(expiry)):
            return False
        return int(expiry) > (time.time() if now is None else now)

    def allows(self, cookie: str | None, authorization: str | None) -> bool:
        """A request with a valid login cookie or the token as a Bearer header."""
        return self.cookie_valid(cookie) or self.token_matches(bearer_token(authorization))

    def _sign(self, expiry: str) -> str:
        return hmac.new(self._key, b"squall-admin " + expiry.encode(), hashlib.sha256).hexdigest()
