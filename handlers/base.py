"""What every Squall handler shares: one options object, the fingerprint, configured headers.

:class:`HandlerOptions` is built once, in ``server.py``, from the config; every handler gets
it (``initialize(options=...)``) and reads nothing else of the config. The fingerprint cookie
(PROTOCOL.md §4) links a browser's page requests and its socket: every response to a request
without a valid cookie sets one, so the socket the page opens next carries the same value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tornado.httputil

from squall import Squall
from squall.config import Config
from squall.fingerprints import choose

__all__ = ["CookieOptions", "HandlerOptions", "SquallMixin", "request_fingerprint"]


@dataclass(frozen=True)
class CookieOptions:
    """The fingerprint cookie's name and flags (``servers.web.fingerprint``)."""

    key: str
    httponly: bool
    secure: bool
    samesite: str | None
    max_age: int | None  # seconds; None: a session cookie

    def header(self, value: str) -> str:
        """The ``Set-Cookie`` value for ``value`` (always a checked fingerprint), in the order
        PROTOCOL.md §4 shows: ``sessionID=<id>; Path=/; HttpOnly; SameSite=Lax``."""
        parts = [f"{self.key}={value}", "Path=/"]
        if self.max_age:
            parts.append(f"Max-Age={self.max_age}")
        if self.secure:
            parts.append("Secure")
        if self.httponly:
            parts.append("HttpOnly")
        if self.samesite:
            parts.append(f"SameSite={self.samesite}")
        return "; ".join(parts)


@dataclass(frozen=True)
class HandlerOptions:
    """Everything the handlers need to know, read from the config once."""

    app: Squall
    api_path: str  # "/api": actions at /api/<name> and /api?action=<name>
    api_version: Any
    headers: dict[str, str]  # servers.web.httpHeaders, on every response
    cookie: CookieOptions
    file_cache_seconds: int
    origins: Any  # "*" or a list of allowed Origin values
    max_connections: int | None
    compression: bool
    authorize: Callable[[Any], Any] | None

    @classmethod
    def from_config(
        cls, app: Squall, config: Config, authorize: Callable[[Any], Any] | None
    ) -> HandlerOptions:
        web = config["servers"]["web"]
        server = config["servers"]["websocket"]["server"]
        cookie = web["fingerprint"]
        return cls(
            app=app,
            api_path="/" + web["urlPathForActions"].strip("/"),
            api_version=config.get("general.apiVersion"),
            headers=dict(web["httpHeaders"]),
            cookie=CookieOptions(
                key=cookie["cookieKey"],
                httponly=cookie["httpOnly"],
                secure=web["secure"],
                samesite=cookie["sameSite"],
                max_age=cookie["maxAge"] // 1000 if cookie["maxAge"] else None,
            ),
            file_cache_seconds=web["flatFileCacheDuration"] // 1000,
            origins=server["origins"],
            max_connections=server["maxConnections"],
            compression=server["compression"],
            authorize=authorize,
        )


def request_fingerprint(
    options: HandlerOptions, headers: tornado.httputil.HTTPHeaders, query: str | None = None
) -> tuple[str, str | None]:
    """A request's fingerprint (PROTOCOL.md §4) and the ``Set-Cookie`` value to answer with
    (None when the request carried a valid cookie).

    The cookie wins, then ``query`` (the ``?sessionID=`` of an upgrade), then a new random
    one; a value that is not 1 to 128 characters of ``[A-Za-z0-9_-]`` counts as absent.
    """
    cookie = None
    if "Cookie" in headers:
        cookie = tornado.httputil.parse_cookie(headers["Cookie"]).get(options.cookie.key)
    fingerprint, needs_cookie = choose(cookie, query)
    return fingerprint, options.cookie.header(fingerprint) if needs_cookie else None


class SquallMixin:
    """Shared by the static and WebSocket handlers (both ``RequestHandler`` subclasses)."""

    squall: HandlerOptions | None = None  # not ``options``: that is the HTTP method's handler
    request: Any
    _fingerprint: str | None = None
    _cookie_header: str | None = None

    def initialize(self, options: HandlerOptions) -> None:
        self.squall = options
        self.set_default_headers()  # Tornado's first clear() ran before initialize()

    @property
    def app(self) -> Squall:
        assert self.squall is not None
        return self.squall.app

    def set_default_headers(self) -> None:
        if self.squall is not None:
            for name, value in self.squall.headers.items():
                self.set_header(name, value)  # type: ignore[attr-defined]

    @property
    def fingerprint(self) -> str:
        """The request's fingerprint; a new one (and its Set-Cookie) without a valid cookie."""
        if self._fingerprint is None:
            assert self.squall is not None
            self._fingerprint, self._cookie_header = request_fingerprint(
                self.squall, self.request.headers
            )
            if self._cookie_header is not None:
                self.add_header("Set-Cookie", self._cookie_header)  # type: ignore[attr-defined]
        return self._fingerprint

    def clear(self) -> None:
        """Keep the fingerprint cookie when an error page replaces the response."""
        super().clear()  # type: ignore[misc]
        if self._cookie_header is not None:
            self.add_header("Set-Cookie", self._cookie_header)  # type: ignore[attr-defined]
