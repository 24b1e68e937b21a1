"""The WebSocket endpoint: Tornado answers the upgrade, then a lean pump carries the frames.

:class:`SocketHandler` is an ordinary Tornado handler: it refuses what must be refused
(connection cap 503, authorization 401, origin 403, bad handshake 400/426), then writes the
``101 Switching Protocols`` itself and hands the socket to a :class:`SocketPump`. The pump is an
asyncio protocol, the shape of the websockets library: bytes arrive (``data_received``), the
sans-I/O :class:`~squall.wsframes.FrameParser` turns them into messages, the sans-I/O
:class:`~squall.protocol.SocketProtocol` turns messages into replies, and the pump writes them.
No future, task or coroutine is created per frame unless a verb really waits.

Why not Tornado's ``WebSocketHandler`` after the handshake: its frame loop awaits several
futures per frame, frames every message per recipient, and keeps the whole request handler
alive per connection; the pump does less of each (see bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import inspect
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import tornado.iostream
import tornado.web

from squall import Squall, codec
from squall.connections import Connection
from squall.errors import ServerShuttingDown, Unauthorized
from squall.fingerprints import choose
from squall.wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Deflate,
    FrameError,
    FrameParser,
    accept_key,
    close_payload,
    encode,
    parse_close,
)

from .base import SquallMixin, cookie_header

log = logging.getLogger("squall.websocket")

#: ``connection middleware`` refused the connection (PROTOCOL.md §6): the client does not retry.
CLOSE_REFUSED = 4001
#: The server is going away; clients reconnect (to another server, if there is one).
CLOSE_GOING_AWAY = 1001
#: A client that stopped reading while its outbound queue grew past ``maxBufferedBytes``.
CLOSE_POLICY = 1008
#: How long a closing peer has to answer our close frame before the TCP connection is dropped.
CLOSE_GRACE = 5.0


class SocketHandler(SquallMixin, tornado.web.RequestHandler):
    """The upgrade request of one WebSocket client."""

    def initialize(  # type: ignore[override]
        self,
        app: Squall,
        sockets: SocketRegistry,
        authorize: Callable[[Any], Any] | None,
    ) -> None:
        SquallMixin.initialize(self, app)
        self.sockets = sockets
        self.authorize = authorize
        self._holds_place = False

    async def prepare(self) -> None:
        """Refuse early, cheapest first: shutdown (503), origin (403), connection cap (503),
        authorization (401)."""
        if not self.sockets.accepting:
            # an upgrade on a keep-alive connection opened before SIGTERM (PROTOCOL.md §6)
            self._refuse(503, ServerShuttingDown().render(self.app.messages))
            return
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.check_origin(origin):
            self.set_status(403)
            self.finish("origin not allowed")
            return
        cap = self.settings["squall_max_connections"]
        if cap is not None and self.sockets.count_with_pending() >= cap:
            self._refuse(503, "the server has too many connections")
            return
        if self.authorize is not None:
            unauthorized = Unauthorized().render(self.app.messages)
            try:
                verdict = self.authorize(self.request)
                if inspect.isawaitable(verdict):
                    verdict = await verdict
            except Exception as exc:
                self._refuse(401, str(exc) or unauthorized)
                return
            if not verdict:
                self._refuse(401, unauthorized)
                return
        # Hold a place under maxConnections until the socket is adopted or the request ends,
        # so a burst of upgrades cannot all pass the check before any of them is counted.
        self.sockets.pending += 1
        self._holds_place = True

    def on_finish(self) -> None:
        """The upgrade was answered with an error: give back its place."""
        self._release_place()

    def _release_place(self) -> None:
        if self._holds_place:
            self._holds_place = False
            self.sockets.pending -= 1

    def _refuse(self, status: int, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(codec.dumps({"error": text}))

    def check_origin(self, origin: str) -> bool:
        """``servers.websocket.server.origins``: ``"*"`` or a list of allowed ``Origin`` values.

        A refused origin gets 403 at the upgrade: the most likely cause of a 403 there.
        """
        allowed = self.settings["squall_origins"]
        return allowed == "*" or origin in allowed

    async def get(self) -> None:
        headers = self.request.headers
        if headers.get("Upgrade", "").lower() != "websocket" or "upgrade" not in [
            part.strip().lower() for part in headers.get("Connection", "").split(",")
        ]:
            self.set_status(400)
            self.finish("this endpoint speaks WebSocket only: send an Upgrade request")
            return
        key = headers.get("Sec-WebSocket-Key")
        if headers.get("Sec-WebSocket-Version") != "13" or not key:
            self.set_status(426)
            self.set_header("Sec-WebSocket-Version", "13")
            self.finish("WebSocket version 13 with a Sec-WebSocket-Key is required")
            return
        if not _is_websocket_key(key):
            self.set_status(400)
            self.finish("Sec-WebSocket-Key must be the base64 encoding of 16 bytes")
            return
        cookie_key = self.settings["squall_cookie"]["key"]
        # the raw bytes: a value that is not UTF-8 is ignored like any other invalid one,
        # where get_query_argument would answer 400
        query = self.request.query_arguments.get("sessionID")
        fingerprint, needs_cookie = choose(
            self.get_cookie(cookie_key), query[-1].decode("latin-1") if query else None
        )
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept_key(key)}",
        ]
        deflate = None
        if self.settings["squall_compression"]:
            negotiated = Deflate.negotiate(headers.get("Sec-WebSocket-Extensions"))
            if negotiated is not None:
                deflate, extension = negotiated
                lines.append(f"Sec-WebSocket-Extensions: {extension}")
        if needs_cookie:
            # the page's later requests then share the socket's fingerprint (PROTOCOL.md §4)
            options = self.settings["squall_cookie"]
            lines.append("Set-Cookie: " + cookie_header(cookie_key, fingerprint, options))
        handshake = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

        connection = Connection(
            "webSocket",
            self.request.remote_ip or "",
            self.remote_port,
            fingerprint=fingerprint,
        )
        stream = self.detach()
        try:
            await self.sockets.adopt(stream, connection, handshake, deflate)
        finally:
            self._release_place()  # counted among the open sockets from now on


def _is_websocket_key(key: str) -> bool:
    """Whether ``key`` is a valid ``Sec-WebSocket-Key``: base64 of 16 bytes (RFC 6455 §4.1)."""
    try:
        return len(base64.b64decode(key.encode("ascii"), validate=True)) == 16
    except (UnicodeEncodeError, binascii.Error):
        return False


class SocketPump(asyncio.Protocol):
    """One WebSocket after the handshake: frames in, replies out; the connection's transport."""

    def __init__(
        self,
        app: Squall,
        registry: SocketRegistry,
        connection: Connection,
        handshake: bytes,
        deflate: Deflate | None,
    ) -> None:
        self.app = app
        self.registry = registry
        self.connection = connection
        self.handshake = handshake
        self.deflate = deflate
        self.parser = FrameParser(registry.max_message_size, deflate)
        self.transport: Any = None
        self.last_seen = time.monotonic()
        self.closing = False
        self.failed = False
        self.ready = False  # the welcome is out: frames before it wait in the backlog
        self._backlog: list[Any] = []
        self._close_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        connection.transport = self

    # -- asyncio protocol ----------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.handshake)
        self.handshake = b""
        self.registry.add(self)
        task = asyncio.ensure_future(self._open())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self) -> None:
        connection = self.connection
        try:
            await self.app.open_connection(connection)
        except Exception as exc:
            log.info("connection %s refused by middleware: %s", connection.id, exc)
            self.close(CLOSE_REFUSED, str(exc) or "refused")
            return
        if connection.closed:
            return
        connection.send({"context": "api", "welcome": self.registry.welcome})
        self.ready = True
        backlog, self._backlog = self._backlog, []
        self._handle(backlog)

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        if self.failed:
            return
        try:
            events = self.parser.feed(data)
        except FrameError as error:
            self._fail(error)
            return
        if self.ready or self.closing:  # a closing socket only looks for the close frame
            self._handle(events)
        else:
            self._backlog.extend(events)

    def _handle(self, events: list[Any]) -> None:
        for event in events:
            if self.closing and event.opcode != OP_CLOSE:
                continue
            opcode = event.opcode
            if opcode == OP_TEXT:
                self._message(event.text)
            elif opcode == OP_BINARY:
                self._message(event.data)
            elif opcode == OP_PING:
                self._write(encode(OP_PONG, event.data))
            elif opcode == OP_CLOSE:
                self._peer_closed(event.data)
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self._close_timer is not None:
            self._close_timer.cancel()
        self.registry.discard(self)
        self.app.close_connection(self.connection)

    # -- frames in -------------------------------------------------------------------------------

    def _message(self, message: str | bytes) -> None:
        connection = self.connection
        if connection.closed:
            return
        protocol = self.app.protocol
        reply = protocol.receive(connection, message)
        if reply is None:
            return
        if isinstance(reply, dict):
            connection.send_encoded(protocol.encode(reply))
            return
        task = asyncio.ensure_future(self._reply_when_done(reply))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reply_when_done(self, pending: Any) -> None:
        try:
            reply = await pending
        except Exception:
            log.exception("verb failed unexpectedly on connection %s", self.connection.id)
            return
        if reply is not None:
            self.connection.send_encoded(self.app.protocol.encode(reply))

    def _fail(self, error: FrameError) -> None:
        """The peer broke the protocol: close with its code, then drop the link (RFC 6455 7.1.7)."""
        log.info("closing %s with %d: %s", self.connection.id, error.code, error.reason)
        self.failed = self.closing = True
        self._write(encode(OP_CLOSE, close_payload(error.code, error.reason)))
        # Half-close and keep reading (and discarding): closing outright while the peer is
        # still sending makes the kernel answer with a reset that can destroy our close frame
        # before the peer reads it.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        else:
            self.transport.close()
        self._close_timer = asyncio.get_running_loop().call_later(CLOSE_GRACE, self.abort)

    def _peer_closed(self, payload: bytes) -> None:
        """The client sent a close frame: answer it (RFC 6455 §5.5.1) and drop the TCP link."""
        if not self.closing:
            try:
                code, _ = parse_close(payload)
            except FrameError as error:
                self._fail(error)
                return
            self.closing = True
            echo = b"" if code == 1005 else payload[:2]
            self._write(encode(OP_CLOSE, echo))
        self.transport.close()

    # -- the connection's transport (squall.connections.Transport) ------------------------------

    def write_frame(self, payload: bytes) -> None:
        """Queue one text frame; the frame of a broadcast is built once for all members."""
        if self.closing:
            return
        if self.deflate is not None:
            frame = encode(OP_TEXT, self.deflate.deflate(payload), rsv1=True)
        else:
            frame = self.registry.frame_of(payload)
        self._write(frame)

    def close(self, code: int, reason: str) -> None:
        """Send a close frame; the peer has :data:`CLOSE_GRACE` seconds to answer it."""
        if self.closing or self.transport is None:
            return
        self.closing = True
        self._write(encode(OP_CLOSE, close_payload(code, reason)))
        loop = asyncio.get_running_loop()
        self._close_timer = loop.call_later(CLOSE_GRACE, self.abort)

    def abort(self) -> None:
        """Drop the TCP connection at once (a peer that stopped answering)."""
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def ping(self) -> None:
        if not self.closing:
            self._write(encode(OP_PING, b""))

    def _write(self, frame: bytes) -> None:
        """Write a frame; every frame (pongs included) counts in ``maxBufferedBytes``."""
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(frame)
        if (
            not self.closing
            and transport.get_write_buffer_size() > self.registry.max_buffered_bytes
        ):
            self._drop_slow_reader()

    def _drop_slow_reader(self) -> None:
        log.warning(
            "closing %s: it stopped reading and %d bytes wait for it",
            self.connection.id,
            self.transport.get_write_buffer_size(),
        )
        self.app.close_connection(self.connection)
        self.close(CLOSE_POLICY, "outbound buffer full: the client is not reading")


class StreamTransport:
    """The few asyncio-transport methods a :class:`SocketPump` uses, over a Tornado IOStream.

    Used for TLS connections, whose encryption state lives in Tornado's ``SSLIOStream`` and
    cannot move to an asyncio transport.
    """

    def __init__(self, stream: tornado.iostream.IOStream, pump: SocketPump) -> None:
        self.stream = stream
        self.pump = pump
        self._last_write: Any = None
        self._reader = asyncio.ensure_future(self._read_forever())

    async def _read_forever(self) -> None:
        try:
            while True:
                self.pump.data_received(await self.stream.read_bytes(65536, partial=True))
        except tornado.iostream.StreamClosedError:
            self.pump.connection_lost(None)

    def write(self, data: bytes) -> None:
        with contextlib.suppress(tornado.iostream.StreamClosedError):
            self._last_write = self.stream.write(data)

    def get_write_buffer_size(self) -> int:
        # Tornado has no public equivalent; its buffer object knows its length.
        return len(self.stream._write_buffer)

    def is_closing(self) -> bool:
        return self.stream.closed()

    def can_write_eof(self) -> bool:
        return False

    def close(self) -> None:
        """Close once what was written has gone out."""
        if self._last_write is None or self._last_write.done():
            self.stream.close()
        else:
            self._last_write.add_done_callback(lambda _: self.stream.close())

    def abort(self) -> None:
        self.stream.close()


class SocketRegistry:
    """The open sockets of this server, and what they share.

    - One heartbeat timer for all sockets: each ``pingInterval`` every socket is pinged and
      those silent for longer than ``timeout`` are dropped (O(1) timers, not one per socket).
    - The frame cache: a broadcast hands the same payload object to every member; its frame is
      built once (:meth:`frame_of`).
    """

    def __init__(
        self,
        app: Squall,
        ping_interval_ms: int,
        timeout_ms: int,
        max_message_size: int,
        max_buffered_bytes: int,
        welcome: str,
    ) -> None:
        self.app = app
        self.ping_interval = ping_interval_ms / 1000
        self.timeout = timeout_ms / 1000
        self.max_message_size = max_message_size
        self.max_buffered_bytes = max_buffered_bytes
        self.welcome = welcome
        self._pumps: set[SocketPump] = set()
        self.pending = 0  # upgrades admitted but not yet adopted
        self.accepting = True  # False from the stop signal on: no new socket is welcomed
        self._timer: asyncio.TimerHandle | None = None
        self._empty = asyncio.Event()
        self._empty.set()
        self._cached_payload: bytes | None = None
        self._cached_frame = b""

    async def adopt(
        self,
        stream: tornado.iostream.IOStream,
        connection: Connection,
        handshake: bytes,
        deflate: Deflate | None,
    ) -> None:
        """Take a detached Tornado stream over: plain TCP moves to an asyncio transport."""
        pump = SocketPump(self.app, self, connection, handshake, deflate)
        if isinstance(stream, tornado.iostream.SSLIOStream):
            pump.connection_made(StreamTransport(stream, pump))
            return
        # Bytes a client sent along with its handshake (it should wait for the 101, not all
        # do) are already in Tornado's read buffer: they are handed to the pump, not lost.
        early = bytes(getattr(stream, "_read_buffer", b""))
        # The socket is duplicated and Tornado's copy closed; the duplicate goes to asyncio.
        sock = stream.socket.dup()
        stream.close()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: pump, sock=sock)
        except OSError:
            sock.close()
            return
        if early:
            pump.data_received(early)

    def frame_of(self, payload: bytes) -> bytes:
        if payload is not self._cached_payload:
            self._cached_payload = payload
            self._cached_frame = encode(OP_TEXT, payload)
        return self._cached_frame

    def add(self, pump: SocketPump) -> None:
        self._pumps.add(pump)
        self._empty.clear()

    def discard(self, pump: SocketPump) -> None:
        self._pumps.discard(pump)
        if not self._pumps:
            self._empty.set()

    def __len__(self) -> int:
        return len(self._pumps)

    def count_with_pending(self) -> int:
        """Open sockets plus upgrades on their way: what ``maxConnections`` bounds."""
        return len(self._pumps) + self.pending

    def __iter__(self) -> Iterator[SocketPump]:
        return iter(list(self._pumps))

    async def wait_empty(self, timeout: float) -> bool:
        """Wait until every socket has closed; False if some are still open after ``timeout``."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.ping_interval, self._beat)

    def stop_accepting(self) -> None:
        """Refuse every upgrade from now on (503), also on HTTP connections already open."""
        self.accepting = False

    def stop(self) -> None:
        self.stop_accepting()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _beat(self) -> None:
        now = time.monotonic()
        for pump in list(self._pumps):
            silent = now - pump.last_seen
            if silent > self.timeout:
                log.info("dropping %s: silent for %.0f s", pump.connection.id, silent)
                pump.abort()
            else:
                pump.ping()
        self.start()
