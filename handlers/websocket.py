"""The WebSocket endpoint: a thin pump between Tornado and :class:`squall.protocol.SocketProtocol`.

Per frame: feed it to the protocol, write the reply (or run the verb as a task and write its
reply when it finishes), close when told. Everything the protocol decides is tested without a
socket; what is here is what only a socket has: the upgrade checks (origin, connection cap,
authorization), the outbound buffer bound, the heartbeat and the close codes (PROTOCOL.md §6).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import tornado.iostream
import tornado.web
import tornado.websocket

from squall import Squall, codec
from squall.connections import Connection

from .base import SquallMixin

log = logging.getLogger("squall.websocket")

#: ``connection middleware`` refused the connection (PROTOCOL.md §6): the client does not retry.
CLOSE_REFUSED = 4001
#: The server is going away; clients reconnect (to another server, if there is one).
CLOSE_GOING_AWAY = 1001
#: A client that stopped reading while its outbound queue grew past ``maxBufferedBytes``.
CLOSE_POLICY = 1008


class SocketHandler(SquallMixin, tornado.websocket.WebSocketHandler):
    """One WebSocket client: a :class:`~squall.connections.Connection` of type ``webSocket``.

    The handler is the connection's transport (``write_frame``/``close``).
    """

    def initialize(  # type: ignore[override]
        self,
        app: Squall,
        sockets: SocketRegistry,
        authorize: Callable[[Any], Any] | None,
    ) -> None:
        SquallMixin.initialize(self, app)
        self.sockets = sockets
        self.authorize = authorize
        self.connection: Connection | None = None
        self.last_seen = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the upgrade ---------------------------------------------------------------------------

    def check_origin(self, origin: str) -> bool:
        """``servers.websocket.server.origins``: ``"*"`` or a list of allowed ``Origin`` values.

        A refused origin gets 403: the most likely cause of a 403 at the upgrade.
        """
        allowed = self.settings["squall_origins"]
        return allowed == "*" or origin in allowed

    async def prepare(self) -> None:
        _ = self.fingerprint
        cap = self.settings["squall_max_connections"]
        if cap is not None and len(self.sockets) >= cap:
            self._refuse(503, "the server has too many connections")
            return
        if self.authorize is not None:
            try:
                verdict = self.authorize(self.request)
                if inspect.isawaitable(verdict):
                    verdict = await verdict
            except Exception as exc:
                self._refuse(401, str(exc) or self.app.messages.render("unauthorized", {}))
                return
            if not verdict:
                self._refuse(401, self.app.messages.render("unauthorized", {}))

    def _refuse(self, status: int, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(codec.dumps({"error": text}))

    def get_compression_options(self) -> dict[str, Any] | None:
        return {} if self.settings["squall_compression"] else None

    # -- the connection ------------------------------------------------------------------------

    async def open(self) -> None:
        self.set_nodelay(True)
        stream = self.ws_connection.stream  # type: ignore[union-attr]
        stream.max_write_buffer_size = self.settings["squall_max_buffered_bytes"]
        connection = Connection(
            "webSocket",
            self.request.remote_ip or "",
            self.remote_port,
            fingerprint=self._socket_fingerprint(),
            transport=self,
        )
        self.connection = connection
        self.sockets.add(self)
        try:
            await self.app.open_connection(connection)
        except Exception as exc:
            log.info("connection %s refused by middleware: %s", connection.id, exc)
            self.close(CLOSE_REFUSED, str(exc)[:120] or "refused")
            return
        connection.send({"context": "api", "welcome": self.settings["squall_welcome"]})

    def _socket_fingerprint(self) -> str | None:
        """The cookie, else ``?sessionID=``, else (None) the connection id."""
        key = self.settings["squall_cookie"]["key"]
        return self.get_cookie(key) or self.get_query_argument("sessionID", None) or None

    def on_message(self, message: str | bytes) -> None:
        connection = self.connection
        if connection is None or connection.closed:
            return
        self.last_seen = time.monotonic()
        reply = self.app.protocol.receive(connection, message)
        if reply is None:
            return
        if isinstance(reply, dict):
            connection.send(reply)
            return
        task = asyncio.ensure_future(self._reply_when_done(connection, reply))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reply_when_done(self, connection: Connection, pending: Any) -> None:
        try:
            reply = await pending
        except Exception:
            log.exception("verb failed unexpectedly on connection %s", connection.id)
            return
        if reply is not None:
            connection.send(reply)

    def on_pong(self, data: bytes) -> None:
        self.last_seen = time.monotonic()

    def on_ping(self, data: bytes) -> None:
        self.last_seen = time.monotonic()

    def on_close(self) -> None:
        self.sockets.discard(self)
        if self.connection is not None:
            self.app.close_connection(self.connection)

    # -- the transport -------------------------------------------------------------------------

    def write_frame(self, payload: bytes) -> None:
        """Queue a frame; a peer that lets ``maxBufferedBytes`` pile up is closed with 1008."""
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        try:
            self.write_message(payload)
        except tornado.iostream.StreamBufferFullError:
            self._drop_slow_reader()
        except tornado.websocket.WebSocketClosedError:
            pass

    def _drop_slow_reader(self) -> None:
        connection = self.connection
        log.warning(
            "closing %s: it stopped reading and %d bytes are queued for it",
            connection.id if connection else "?",
            self.settings["squall_max_buffered_bytes"],
        )
        stream = self.ws_connection.stream  # type: ignore[union-attr]
        stream.max_write_buffer_size = None  # room for the close frame
        if connection is not None:
            self.app.close_connection(connection)
        self.close(CLOSE_POLICY, "outbound buffer full: the client is not reading")

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake (a peer that stopped answering)."""
        if self.ws_connection is not None:
            self.ws_connection.stream.close()  # type: ignore[attr-defined]


class SocketRegistry:
    """The open sockets, and the one heartbeat timer for all of them.

    One periodic callback pings every socket each ``pingInterval`` and aborts those silent for
    longer than ``timeout``: O(1) timers whatever the number of clients, instead of Tornado's
    one timer per connection.
    """

    def __init__(self, ping_interval_ms: int, timeout_ms: int) -> None:
        self._sockets: set[SocketHandler] = set()
        self.ping_interval = ping_interval_ms / 1000
        self.timeout = timeout_ms / 1000
        self._timer: asyncio.TimerHandle | None = None
        self._empty = asyncio.Event()
        self._empty.set()

    def add(self, handler: SocketHandler) -> None:
        self._sockets.add(handler)
        self._empty.clear()

    def discard(self, handler: SocketHandler) -> None:
        self._sockets.discard(handler)
        if not self._sockets:
            self._empty.set()

    async def wait_empty(self, timeout: float) -> bool:
        """Wait until every socket has closed; False when some are still open after ``timeout``."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def __len__(self) -> int:
        return len(self._sockets)

    def __iter__(self):
        return iter(list(self._sockets))

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.ping_interval, self._beat)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _beat(self) -> None:
        now = time.monotonic()
        for handler in list(self._sockets):
            if now - handler.last_seen > self.timeout:
                log.info("closing a silent peer (no pong for %.0f s)", now - handler.last_seen)
                handler.abort()
                continue
            try:
                handler.ping()
            except tornado.websocket.WebSocketClosedError:
                self.discard(handler)
        self.start()

    def close_all(self, code: int, reason: str) -> None:
        for handler in list(self._sockets):
            handler.close(code, reason)
