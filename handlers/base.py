"""What every Squall handler does to an HTTP response: configured headers and the fingerprint.

The fingerprint cookie (PROTOCOL.md §4) links a browser's page requests and its socket: every
response to a request that lacks the cookie sets one, so the socket the page opens next carries
the same value and gets the same ``connection.fingerprint``.
"""

from __future__ import annotations

from typing import Any

import tornado.web

from squall import Squall
from squall.connections import new_id


class SquallMixin:
    """Shared by the API, static and WebSocket handlers (all ``RequestHandler`` subclasses)."""

    app: Squall
    request: Any
    _fingerprint: str | None = None

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
        self.set_cookie(  # type: ignore[attr-defined]
            key,
            value,
            path="/",
            httponly=options["httponly"],
            samesite=options["samesite"],
            secure=options["secure"],
            max_age=options["max_age"],
        )

    @property
    def remote_port(self) -> int:
        address = getattr(self.request.connection.context, "address", None)
        return address[1] if isinstance(address, tuple) and len(address) > 1 else 0


class SquallHandler(SquallMixin, tornado.web.RequestHandler):
    """A plain HTTP handler of Squall's."""

    def prepare(self) -> None:
        _ = self.fingerprint
