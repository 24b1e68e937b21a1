"""Actions over HTTP: ``/api/<action>`` and ``/api?action=<action>`` (PROTOCOL.md §1, §3).

Params come from the query string, then a form body, then a JSON object body (later sources
win). The reply is the action's fields plus ``serverInformation`` and ``requesterInformation``;
a failed action adds ``error`` and gets the status of PROTOCOL.md §3.

This is a bare :class:`tornado.httputil.HTTPMessageDelegate`, not a ``RequestHandler``: an
action call needs none of a handler's machinery (per-request object graph, header policy,
ETag hashing of every reply, cookie jar), and skipping it is most of the cost of a small reply.
:func:`build_router` sends ``/api`` requests here and everything else to the Tornado
application (one ``tornado.routing.RuleRouter``).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import time
from typing import Any
from urllib.parse import parse_qsl

import tornado.escape
import tornado.httputil
import tornado.routing
import tornado.web

from squall import codec
from squall.connections import Connection
from squall.errors import UnencodableReply, http_status_of
from squall.logs import log_request

from .base import HandlerOptions, request_fingerprint

log = logging.getLogger("squall.http")

_JSON = "application/json; charset=utf-8"


class ApiServer(tornado.httputil.HTTPServerConnectionDelegate):
    """The target of the action path in the router: one :class:`ApiRequest` per request."""

    def __init__(self, options: HandlerOptions) -> None:
        self.options = options
        self.prefix_length = len(options.api_path) + 1  # "/api/"

    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        return ApiRequest(self, request_conn)


def build_router(
    options: HandlerOptions, application: tornado.web.Application
) -> tornado.routing.RuleRouter:
    """The server's delegate: ``/<urlPathForActions>`` (with ``/...`` or ``?...`` after it) to
    the lean :class:`ApiServer`, everything else (upgrade, static files) to ``application``."""
    api = re.escape(options.api_path)
    return tornado.routing.RuleRouter(
        [
            tornado.routing.Rule(
                tornado.routing.PathMatches(rf"{api}(?:/.*)?"), ApiServer(options)
            ),
            tornado.routing.Rule(tornado.routing.AnyMatches(), application),
        ]
    )


class ApiRequest(tornado.httputil.HTTPMessageDelegate):
    """One HTTP action call: a connection of type ``web`` that lives for one request."""

    def __init__(self, server: ApiServer, request_conn: Any) -> None:
        self.server = server
        self.options = server.options
        self.app = server.options.app
        self.request_conn = request_conn
        self.started = time.monotonic()
        self.method = ""
        self.path = ""
        self.query = ""
        self.headers: tornado.httputil.HTTPHeaders | None = None
        self.body: list[bytes] = []
        self.remote_ip = ""
        self.remote_port = 0

    def headers_received(self, start_line: Any, headers: tornado.httputil.HTTPHeaders) -> None:
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

    def finish(self) -> None:
        if self.method == "OPTIONS":  # CORS preflight: the configured headers say it all
            self._respond(204, b"", None)
            return
        task = asyncio.ensure_future(self._run())
        task.add_done_callback(_log_crash)

    async def _run(self) -> None:
        fingerprint, new_cookie = request_fingerprint(self.options, self.headers)
        params, problem = self._params()
        if problem is not None:
            self._respond(400, codec.dumps({"error": problem}), new_cookie)
            return
        name = self.path[self.server.prefix_length :]
        if name:
            params["action"] = tornado.escape.url_unescape(name)
        received = dict(params)
        connection = Connection("web", self.remote_ip, self.remote_port, fingerprint=fingerprint)
        connections = self.app.connections
        connections.add(connection)
        try:
            result = await self.app.processor.process(connection, params)
        finally:
            connections.remove(connection)
        reply = result.response
        reply["serverInformation"] = {
            "serverName": self.app.name,
            "apiVersion": self.options.api_version,
            "requestDuration": int((time.monotonic() - self.started) * 1000),
            "currentTime": int(time.time() * 1000),
        }
        reply["requesterInformation"] = {
            "id": connection.id,
            "fingerprint": fingerprint,
            "remoteIP": connection.remote_ip,
            "receivedParams": received,
        }
        status = 200 if result.error is None else http_status_of(result.error)
        try:
            body = codec.dumps(reply)
        except (TypeError, ValueError, RecursionError) as exc:
            log.error("the reply of %s could not be encoded as JSON: %s", params.get("action"), exc)
            text = UnencodableReply(type(exc).__name__).render(self.app.messages)
            status, body = 500, codec.dumps({"error": text})
        self._respond(status, body, new_cookie)

    def _params(self) -> tuple[dict[str, Any], str | None]:
        """Query, form and JSON params merged, or the reason a JSON body was refused."""
        params: dict[str, Any] = dict(parse_qsl(self.query, keep_blank_values=True))
        if not self.body:
            return params, None
        body = b"".join(self.body)
        content_type = self.headers.get("Content-Type", "")  # type: ignore[union-attr]
        if "json" in content_type.lower():
            try:
                decoded = codec.loads(body)
            except codec.DecodeError as exc:
                return params, f"invalid JSON body: {exc}"
            if not isinstance(decoded, dict):
                return params, "a JSON body must be an object of params"
            params.update(decoded)
            return params, None
        arguments: dict[str, list[bytes]] = {}
        try:
            tornado.httputil.parse_body_arguments(content_type, body, arguments, {})
        except tornado.httputil.HTTPInputError as exc:
            return params, f"unreadable body: {exc}"
        for key, values in arguments.items():
            params[key] = values[-1].decode("utf-8", "replace")
        return params, None

    def _respond(self, status: int, body: bytes, new_cookie: str | None) -> None:
        if self.request_conn is None:
            return  # the client went away; the reply is dropped
        headers = tornado.httputil.HTTPHeaders(self.options.headers)
        headers["Date"] = _http_date()
        if status != 204:
            headers["Content-Type"] = _JSON
            headers["Content-Length"] = str(len(body))
        if new_cookie is not None:
            headers["Set-Cookie"] = new_cookie
        reason = tornado.httputil.responses.get(status, "Unknown")
        start = tornado.httputil.ResponseStartLine("HTTP/1.1", status, reason)
        if self.method == "HEAD":
            body = b""
        self.request_conn.write_headers(start, headers, body)
        self.request_conn.finish()
        self.app.stats.http_answered(status)
        log_request(self.method, self.path, status, time.monotonic() - self.started, self.remote_ip)


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The ``Date`` header, formatted once a second rather than once a reply."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("HTTP action request failed", exc_info=task.exception())
