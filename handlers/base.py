"""What every Squall handler shares: one options object, the fingerprint, configured headers,
and the bare request delegate of the two hot paths.

:class:`HandlerOptions` is built once, in ``server.py``, from the config; the handlers get it
(or, for the metrics and admin pages, the few values they need) from ``server.py`` and read
nothing else of the config. The fingerprint cookie (PROTOCOL.md §4) links a browser's page
requests and its socket: every response to a request without a valid cookie sets one, so the
socket the page opens next carries the same value (:class:`BareRequest` for actions and
upgrades, :class:`ResponseHeaders` for everything the Tornado application answers).

:class:`BareRequest` is what an action call (``handlers/api.py``) and a socket upgrade
(``handlers/websocket.py``) are: a :class:`tornado.httputil.HTTPMessageDelegate`, not a
``RequestHandler``. Neither needs a handler's machinery (a per-request object graph, header
policy, ETag hashing, the cookie jar), and skipping it is most of the cost of a small request.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tornado.httputil
import tornado.web

from squall import Squall
from squall.config import Config
from squall.fingerprints import choose
from squall.logs import log_request

__all__ = [
    "JSON",
    "BareRequest",
    "CookieOptions",
    "HandlerOptions",
    "ResponseHeaders",
    "request_fingerprint",
]

JSON = "application/json; charset=utf-8"


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
    serve_actions: bool  # servers.web.enabled: HTTP actions (and files) are served
    api_path: str  # "/api": actions at /api/<name> and /api?action=<name>
    api_version: Any
    headers: dict[str, str]  # servers.web.httpHeaders, on every response
    cookie: CookieOptions
    file_cache_seconds: int
    origins: str | list[str] | None  # "*", the allowed Origin values, or None: the page's host
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
            serve_actions=web["enabled"],
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


class ResponseHeaders(tornado.web.OutputTransform):
    """``servers.web.httpHeaders`` and the fingerprint cookie on every response of the Tornado
    application (files, probes, the metrics and admin pages, its 404s and error pages).

    A transform, not a handler base class, because it must reach every response, Tornado's own
    error pages and default 404 included; it runs when the headers go out, after any
    ``clear()``. A header the handler set itself is kept (``Cache-Control`` of a file, the
    admin page's policies); so is a fingerprint cookie the handler already set.
    """

    def __init__(self, options: HandlerOptions, request: tornado.httputil.HTTPServerRequest):
        self.options = options
        self.request = request

    def transform_first_chunk(
        self,
        status_code: int,
        headers: tornado.httputil.HTTPHeaders,
        chunk: bytes,
        finishing: bool,
    ) -> tuple[int, tornado.httputil.HTTPHeaders, bytes]:
        for name, value in self.options.headers.items():
            if name not in headers:
                headers[name] = value
        _, new_cookie = request_fingerprint(self.options, self.request.headers)
        ours = f"{self.options.cookie.key}="
        if new_cookie is not None and not any(
            cookie.startswith(ours) for cookie in headers.get_list("Set-Cookie")
        ):
            headers.add("Set-Cookie", new_cookie)
        return status_code, headers, chunk

    @classmethod
    def for_options(cls, options: HandlerOptions) -> Callable[..., ResponseHeaders]:
        """What ``tornado.web.Application(transforms=[...])`` calls with each request."""
        return functools.partial(cls, options)


class BareRequest(tornado.httputil.HTTPMessageDelegate):
    """One request on a lean path: what it asked, from whom, and :meth:`respond`.

    Subclasses implement ``finish`` (the whole request has arrived). A client that leaves
    before the answer sets ``request_conn`` to None; the answer is then dropped.
    """

    _fingerprint: str | None = None
    _new_cookie: str | None = None

    def __init__(self, options: HandlerOptions, request_conn: Any) -> None:
        self.options = options
        self.app = options.app
        self.request_conn = request_conn
        self.loop: asyncio.AbstractEventLoop = request_conn.loop  # its HTTP11Protocol's
        self.started = time.monotonic()
        self.method = ""
        self.path = ""
        self.query = ""
        self.headers = tornado.httputil.HTTPHeaders()
        self.body: list[bytes] = []
        self.remote_ip = ""
        self.remote_port = 0

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> None:
        assert isinstance(start_line, tornado.httputil.RequestStartLine)
        self.method = start_line.method
        self.path, _, self.query = start_line.path.partition("?")
        self.headers = headers
        context = self.request_conn.context
        self.remote_ip = context.remote_ip
        self.remote_port = context.remote_port

    def data_received(self, chunk: bytes) -> None:
        self.body.append(chunk)

    def on_connection_close(self) -> None:
        self.request_conn = None

    def session_query(self) -> str | None:
        """A ``?sessionID=`` the fingerprint may come from (only an upgrade's: PROTOCOL.md §4)."""
        return None

    @property
    def fingerprint(self) -> str:
        """The request's fingerprint (PROTOCOL.md §4): its cookie's, else a new one, which
        :meth:`respond` then sets as the cookie."""
        if self._fingerprint is None:
            self._fingerprint, self._new_cookie = request_fingerprint(
                self.options, self.headers, self.session_query()
            )
        return self._fingerprint

    @property
    def new_cookie(self) -> str | None:
        """The ``Set-Cookie`` value a response to this request carries, if any."""
        _ = self.fingerprint
        return self._new_cookie

    def respond(
        self,
        status: int,
        body: bytes,
        content_type: str = JSON,
        extra: dict[str, str] | None = None,
    ) -> None:
        """Write the whole response: ``servers.web.httpHeaders``, ``Date``, the body's type
        and length, the fingerprint cookie to a request without one, ``extra``; no body for
        HEAD. Counted and access-logged."""
        if self.request_conn is None:
            return  # the client went away; the answer is dropped
        headers = tornado.httputil.HTTPHeaders(self.options.headers)
        headers["Date"] = http_date()
        if status != 204:
            headers["Content-Type"] = content_type
            headers["Content-Length"] = str(len(body))
        if self.new_cookie is not None:
            headers["Set-Cookie"] = self.new_cookie
        if extra:
            headers.update(extra)
        reason = tornado.httputil.responses.get(status, "Unknown")
        start = tornado.httputil.ResponseStartLine("HTTP/1.1", status, reason)
        self.request_conn.write_headers(start, headers, b"" if self.method == "HEAD" else body)
        self.request_conn.finish()
        self.app.stats.http_answered(status)
        log_request(self.method, self.path, status, time.monotonic() - self.started, self.remote_ip)


_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """The ``Date`` header, formatted once a second rather than once a reply."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]
