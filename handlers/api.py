"""Actions over HTTP: ``/api/<action>`` and ``/api?action=<action>`` (PROTOCOL.md §1, §3).

Params come from the query string, then a form body, then a JSON object body (later sources
win). The reply is the action's fields plus ``serverInformation`` and ``requesterInformation``;
a failed action adds ``error`` and gets the status of PROTOCOL.md §3.

An action call is a :class:`~handlers.base.BareRequest`, not a ``RequestHandler`` (why: that
class's docstring); :class:`~handlers.routing.ServerRouter` sends the action path here.
"""

from __future__ import annotations

import asyncio
import logging
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

from .base import BareRequest, HandlerOptions

log = logging.getLogger("squall.http")


class ApiServer(tornado.httputil.HTTPServerConnectionDelegate):
    """The target of the action path in the router: one :class:`ApiRequest` per request."""

    def __init__(self, options: HandlerOptions) -> None:
        self.options = options
        self.prefix_length = len(options.api_path) + 1  # "/api/"

    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        return ApiRequest(self, request_conn)


class ApiRequest(BareRequest):
    """One HTTP action call: a connection of type ``web`` that lives for one request."""

    def __init__(self, server: ApiServer, request_conn: Any) -> None:
        super().__init__(server.options, request_conn)
        self.server = server

    def finish(self) -> None:
        if self.method == "OPTIONS":  # CORS preflight: the configured headers say it all
            self.respond(204, b"")
            return
        task = self.loop.create_task(self._run())
        task.add_done_callback(_log_crash)

    async def _run(self) -> None:
        fingerprint = self.fingerprint
        params, problem = self._params()
        if problem is not None:
            self.respond(400, codec.dumps({"error": problem}))
            return
        name = self.path[self.server.prefix_length :]
        if name:
            params["action"] = tornado.escape.url_unescape(name)
        received = dict(params)
        connection = Connection(
            "web", self.remote_ip, self.remote_port, fingerprint=fingerprint, loop=self.loop
        )
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
        self.respond(status, body)

    def _params(self) -> tuple[dict[str, Any], str | None]:
        """Query, form and JSON params merged, or the reason a JSON body was refused."""
        params: dict[str, Any] = dict(parse_qsl(self.query, keep_blank_values=True))
        if not self.body:
            return params, None
        body = b"".join(self.body)
        content_type = self.headers.get("Content-Type", "")
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


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("HTTP action request failed", exc_info=task.exception())
