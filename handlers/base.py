"""What every Squall handler does to an HTTP response: configured headers and the fingerprint.

The fingerprint cookie (PROTOCOL.md §4) links a browser's page requests and its socket: every
response to a request that lacks the cookie sets one, so the socket the page opens next carries
the same value and gets the same ``connection.fingerprint``.
"""

from __future__ import annotations

import http.cookies
from typing import Any

from squall import Squall
from squall.connections import new_id


def cookie_header(key: str, value: str, options: dict[str, Any]) -> str:
    """The ``Set-Cookie`` value of the fingerprint cookie, with the configured flags."""
    morsel: http.cookies.Morsel[str] = http.cookies.Morsel()
    morsel.set(key, value, value)
    morsel["path"] = "/"
    if options["httponly"]:
        morsel["httponly"] = True
    if options["secure"]:
        morsel["secure"] = True
    if options["samesite"]:
        morsel["samesite"] = options["samesite"]
    if options["max_age"]:
        morsel["max-age"] = options["max_age"]
    return morsel.OutputString()


class SquallMixin:
    """Shared by the API, static and WebSocket handlers (all ``RequestHandler`` subclasses)."""

    app: Squall
    request: Any
    _fingerprint: str | None = None
    _cookie_header: str | None = None

    def initialize(self, app: Squall) -> None:
        self.app = app

    def set_default_headers(self) -> None:
        headers = self.application.settings["squall_headers"]  # type: ignore[attr-defined]
        for name, value in headers.items():
            self.set_header(name, value)  # type: ignore[attr-defined]

    @property
    def fingerprint(self) -> str:
        """The cookie's value; a new one (and its Set-Cookie) when the request had none."""
        if self._fingerprint is None:
            settings = self.application.settings  # type: ignore[attr-defined]
            key = settings["squall_cookie"]["key"]
            found = self.get_cookie(key)  # type: ignore[attr-defined]
            if found:
                self._fingerprint = found
            else:
                self._fingerprint = new_id()
                self._set_fingerprint_cookie(key, self._fingerprint, settings["squall_cookie"])
        return self._fingerprint

    def _set_fingerprint_cookie(self, key: str, value: str, options: dict[str, Any]) -> None:
        self._cookie_header = cookie_header(key, value, options)
        self.add_header("Set-Cookie", self._cookie_header)  # type: ignore[attr-defined]

    def clear(self) -> None:
        """Keep the fingerprint cookie when an error page replaces the response."""
        super().clear()  # type: ignore[misc]
        if self._cookie_header is not None:
            self.add_header("Set-Cookie", self._cookie_header)  # type: ignore[attr-defined]

    @property
    def remote_port(self) -> int:
        address = getattr(self.request.connection.context, "address", None)
        return address[1] if isinstance(address, tuple) and len(address) > 1 else 0
