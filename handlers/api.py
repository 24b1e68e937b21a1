"""Actions over HTTP: ``/api/<action>`` and ``/api?action=<action>`` (PROTOCOL.md §1, §3).

Params come from the query string, then a form body, then a JSON object body (later sources win).
The reply is the action's fields plus ``serverInformation`` and ``requesterInformation``; a
failed action keeps its fields and adds ``error``, with the status of PROTOCOL.md §3.
"""

from __future__ import annotations

import time
from typing import Any

from squall import codec
from squall.connections import Connection
from squall.errors import http_status_of

from .base import SquallHandler


class ApiHandler(SquallHandler):
    """Runs one action per request, each request being a connection of type ``web``."""

    async def get(self, name: str | None = None) -> None:
        started = time.monotonic()
        params = self._params()
        if params is None:
            return
        if name:
            params["action"] = name
        received = dict(params)
        connection = Connection(
            "web", self.request.remote_ip or "", self.remote_port, fingerprint=self.fingerprint
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
            "apiVersion": self.app.config.get("general.apiVersion"),
            "requestDuration": int((time.monotonic() - started) * 1000),
            "currentTime": int(time.time() * 1000),
        }
        reply["requesterInformation"] = {
            "id": connection.id,
            "fingerprint": connection.fingerprint,
            "remoteIP": connection.remote_ip,
            "receivedParams": received,
        }
        if result.error is not None:
            self.set_status(http_status_of(result.error))
        self._write_json(reply)

    post = put = delete = get

    def options(self, name: str | None = None) -> None:
        """CORS preflight: the configured headers are all a browser needs."""
        self.set_status(204)
        self.finish()

    def _params(self) -> dict[str, Any] | None:
        """Query, form and JSON params merged; None after answering 400 for a bad JSON body."""
        params: dict[str, Any] = {}
        for source in (self.request.query_arguments, self.request.body_arguments):
            for key, values in source.items():
                params[key] = values[-1].decode("utf-8", "replace")
        content_type = self.request.headers.get("Content-Type", "")
        if self.request.body and "json" in content_type.lower():
            try:
                body = codec.loads(self.request.body)
            except codec.DecodeError as exc:
                self._reject(f"invalid JSON body: {exc}")
                return None
            if not isinstance(body, dict):
                self._reject("a JSON body must be an object of params")
                return None
            params.update(body)
        return params

    def _reject(self, text: str) -> None:
        self.set_status(400)
        self._write_json({"error": text})

    def _write_json(self, reply: dict[str, Any]) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(codec.dumps(reply))
