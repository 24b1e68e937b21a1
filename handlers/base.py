"""What every Squall handler does to an HTTP response: configured headers and the fingerprint.

The fingerprint cookie (PROTOCOL.md §4) links a browser's page requests and its socket: every
response to a request that lacks the cookie sets one, so the socket the page opens next carries
the same value and gets the same ``connection.fingerprint``.
"""

from __future__ import annotations

from typing import Any

from squall import Squall
from squall.fingerprints import choose


def cookie_header(key: str, value: str, options: dict[str, Any]) -> str:
    """The ``Set-Cookie`` value of the fingerprint cookie, with the configured flags, in the
    order PROTOCOL.md §4 shows (``sessionID=<id>; Path=/; HttpOnly; SameSite=Lax``).

    ``value`` is always a checked fingerprint (:mod:`squall.fingerprints`), never raw input.
    """
    parts = [f"{key}={value}", "Path=/"]
    if options["max_age"]:
        parts.append(f"Max-Age={options['max_age']}")
    if options["secure"]:
        parts.append("Secure")
    if options["httponly"]:
        parts.append("HttpOnly")
    if options["samesite"]:
        parts.append(f"SameSite={options['samesite']}")
    return "; ".join(parts)


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
        """The cookie's value; a new one (and its Set-Cookie) when the request had no valid one."""
        if self._fingerprint is None:
            options = self.application.settings["squall_cookie"]  # type: ignore[attr-defined]
            cookie = self.get_cookie(options["key"])  # type: ignore[attr-defined]
            self._fingerprint, needs_cookie = choose(cookie)
            if needs_cookie:
                self._set_fingerprint_cookie(options["key"], self._fingerprint, options)
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
