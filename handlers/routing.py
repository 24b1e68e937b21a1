"""The server's delegate: its two hot paths by comparing strings, everything else through Tornado.

Tornado's ``RuleRouter`` builds an ``HTTPServerRequest`` for every request only to match its
path against regular expressions: a tenth of the CPU of an action call. Action calls
(``/<urlPathForActions>`` and below it) and socket upgrades (their exact paths) are told apart
here with string comparisons and go straight to their bare delegates (``handlers/api.py``,
``handlers/websocket.py``); any other request goes to the Tornado ``Application`` (static files,
pages, health), routed by Tornado as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tornado.httputil

__all__ = ["ServerRouter"]

Delegate = tornado.httputil.HTTPServerConnectionDelegate


class ServerRouter(Delegate):
    """``api`` for ``api_path`` and the paths under it (when there is one: HTTP actions may be
    off), ``sockets[path]`` for an upgrade path, ``application`` for the rest."""

    def __init__(
        self,
        api_path: str,
        api: Delegate | None,
        sockets: Mapping[str, Delegate],
        application: Delegate,
    ) -> None:
        self.api_path = api_path
        self.api_prefix = api_path + "/"
        self.api = api
        self.sockets = dict(sockets)
        self.application = application

    def target(self, path: str) -> Delegate:
        """The delegate for a request path (without its query string)."""
        if self.api is not None and (path == self.api_path or path.startswith(self.api_prefix)):
            return self.api
        return self.sockets.get(path, self.application)

    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        return _Routed(self, server_conn, request_conn)

    def on_close(self, server_conn: object) -> None:
        self.application.on_close(server_conn)


class _Routed(tornado.httputil.HTTPMessageDelegate):
    """One request: its target is known once its start line is."""

    def __init__(
        self,
        router: ServerRouter,
        server_conn: object,
        request_conn: tornado.httputil.HTTPConnection,
    ) -> None:
        self.router = router
        self.server_conn = server_conn
        self.request_conn = request_conn
        self.delegate: tornado.httputil.HTTPMessageDelegate | None = None

    def headers_received(self, start_line: Any, headers: tornado.httputil.HTTPHeaders) -> Any:
        """Pick the target by the request's path, then hand it the request."""
        target = self.router.target(start_line.path.partition("?")[0])
        self.delegate = target.start_request(self.server_conn, self.request_conn)
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        assert self.delegate is not None
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        assert self.delegate is not None
        self.delegate.finish()

    def on_connection_close(self) -> None:
        if self.delegate is not None:
            self.delegate.on_connection_close()
