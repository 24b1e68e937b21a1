"""The WebSocket endpoint: Tornado routes the upgrade, websockets' sans-I/O protocol frames.

:class:`SocketUpgrade` (a bare request delegate, like an action call) refuses what must be
refused (shutdown or connection cap 503, authorization 401, origin 403, bad handshake
400/405/426), lets websockets' :class:`~websockets.server.ServerProtocol` check the handshake
and negotiate permessage-deflate, then hands the connection's transport, with the ``101``
response, to a :class:`SocketPump`. The pump is an asyncio protocol shaped like websockets' own
``data_received``: feed the sans-I/O object, take its events, write ``data_to_send()``, arm a
close timer when it expects one. Frames, masking (in C), the closing handshake and
compression are websockets'; the closing state is the protocol object's ``state``.

One exception, measured (bench/PROFILE.md, "WebSocket round trip"): a whole, final, masked text
or binary frame that arrives while the protocol is open, between frames, without an extension,
is read by the pump itself (:func:`frame_bounds`, websockets' C ``apply_mask``): websockets'
parser costs three times as much per small frame. Everything else, and every frame that is not
plainly valid (bad UTF-8, too large, unmasked), goes to the protocol, in order, which answers it
as it always did.

What the pump keeps of its own, because the benchmarks credit it: no future, task or coroutine
per frame unless a verb really waits, and a broadcast framed once (:meth:`SocketRegistry.frame_of`)
and written to every member. Everything written to a socket, pongs included, counts in
``maxBufferedBytes``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
import time
from collections.abc import Iterator
from typing import Any

import tornado.httputil
from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

from squall import Squall, codec
from squall.connections import Connection
from squall.errors import ServerShuttingDown, Unauthorized
from squall.logs import log_socket_close, log_socket_open
from squall.origins import origin_allowed

from .base import BareRequest, HandlerOptions

log = logging.getLogger("squall.websocket")

#: websockets' own log lines (each open and close at INFO, frames at DEBUG): Squall logs what
#: matters about a socket itself, so these start at WARNING; lower the level to see frames.
wire_log = logging.getLogger("squall.websocket.wire")
wire_log.setLevel(logging.WARNING)

#: ``connection middleware`` refused the connection (PROTOCOL.md §6): the client does not retry.
CLOSE_REFUSED = 4001
#: The server is going away; clients reconnect (to another server, if there is one).
CLOSE_GOING_AWAY = 1001
#: A client that stopped reading while its outbound queue grew past ``maxBufferedBytes``.
CLOSE_POLICY = 1008
#: How long a closing peer has to answer our close frame before the TCP connection is dropped.
CLOSE_GRACE = 5.0
#: Received bytes are fed to the protocol in slices of this size, so that a burst of tiny
#: frames never holds more than a few thousand frame objects at once.
FEED_SIZE = 65536

_OPEN = State.OPEN
#: The first header byte of a frame the pump reads itself: FIN, no RSV bit, text or binary.
_WHOLE_TEXT, _WHOLE_BINARY = 0x81, 0x82
_WHOLE_DATA = (_WHOLE_TEXT, _WHOLE_BINARY)


class SocketEndpoint(tornado.httputil.HTTPServerConnectionDelegate):
    """The socket's path in the router: one :class:`SocketUpgrade` per upgrade request."""

    def __init__(self, options: HandlerOptions, sockets: SocketRegistry) -> None:
        self.options = options
        self.sockets = sockets

    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        return SocketUpgrade(self, request_conn)


class SocketUpgrade(BareRequest):
    """The upgrade request of one WebSocket client: refused (with the reason), or handed over.

    A :class:`~handlers.base.BareRequest`, like an action call: a ``RequestHandler`` per
    upgrade (its object graph, header policy, ``Date`` formatting, coroutines) was a fifth of
    the server's CPU per connect. Refusals carry ``servers.web.httpHeaders`` like every answer.
    """

    def __init__(self, endpoint: SocketEndpoint, request_conn: Any) -> None:
        super().__init__(endpoint.options, request_conn)
        self.sockets = endpoint.sockets
        self.start_line: tornado.httputil.RequestStartLine | None = None
        self._holds_place = False

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> None:
        super().headers_received(start_line, headers)
        self.start_line = start_line  # type: ignore[assignment]

    def data_received(self, chunk: bytes) -> None:
        """An upgrade has no body: whatever came is not read."""

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self._release_place()

    def finish(self) -> None:
        if self.method != "GET":
            self._refuse_text(405, "this endpoint speaks WebSocket only: send an Upgrade request")
            return
        if not self._admitted():
            return
        if self.options.authorize is None:
            self._take_place_and_upgrade()
            return
        task = self.loop.create_task(self._authorize_then_upgrade())
        task.add_done_callback(_log_crash)

    def _admitted(self) -> bool:
        """Refuse early, cheapest first: shutdown (503), origin (403), connection cap (503)."""
        if not self.sockets.accepting:
            # an upgrade on a keep-alive connection opened before SIGTERM (PROTOCOL.md §6)
            self._refuse(503, ServerShuttingDown().render(self.app.messages))
            return False
        origin = self.headers.get("Origin")
        if origin is not None and not self.check_origin(origin):
            self._refuse_text(403, "origin not allowed")
            return False
        cap = self.options.max_connections
        if cap is not None and self.sockets.count_with_pending() >= cap:
            self._refuse(503, "the server has too many connections")
            return False
        return True

    def check_origin(self, origin: str) -> bool:
        """``servers.websocket.server.origins``: ``"*"``, a list of allowed ``Origin`` values,
        or null for the page's own host (:func:`squall.origins.origin_allowed`).

        A refused origin gets 403 at the upgrade: the most likely cause of a 403 there.
        """
        return origin_allowed(origin, self.headers.get("Host"), self.options.origins)

    async def _authorize_then_upgrade(self) -> None:
        """``servers.websocket.server.authorization``, called with Tornado's
        ``HTTPServerRequest`` (PROTOCOL.md §6): falsy or raising is 401."""
        assert self.options.authorize is not None and self.start_line is not None
        request = tornado.httputil.HTTPServerRequest(
            connection=self.request_conn, start_line=self.start_line, headers=self.headers
        )
        unauthorized = Unauthorized().render(self.app.messages)
        try:
            verdict = self.options.authorize(request)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except Exception as exc:
            self._refuse(401, str(exc) or unauthorized)
            return
        if not verdict:
            self._refuse(401, unauthorized)
        elif self.request_conn is not None:  # still there after an authorization that waited
            self._take_place_and_upgrade()

    def _take_place_and_upgrade(self) -> None:
        """``maxConnectionsPerAddress`` (503), then hold a place under both bounds until the
        socket is adopted or refused, so a burst of upgrades cannot all pass the checks before
        any of them is counted."""
        if not self.app.addresses.admit(self.remote_ip):
            self._refuse(503, "too many connections from your address")
            return
        self.sockets.pending += 1
        self._holds_place = True
        self._upgrade()

    def _upgrade(self) -> None:
        headers = self.headers
        if headers.get("Upgrade", "").lower() != "websocket" or "upgrade" not in [
            part.strip().lower() for part in headers.get("Connection", "").split(",")
        ]:
            self._refuse_text(400, "this endpoint speaks WebSocket only: send an Upgrade request")
            return
        if headers.get("Sec-WebSocket-Version") != "13" or not headers.get("Sec-WebSocket-Key"):
            self._refuse_text(
                426,
                "WebSocket version 13 with a Sec-WebSocket-Key is required",
                {"Sec-WebSocket-Version": "13"},
            )
            return
        # One protocol object checks the handshake and then frames the connection: it starts
        # OPEN because Tornado's seams, not websockets, read the request (its parser would
        # otherwise wait for one), and ``accept`` only reads the request's headers.
        protocol = ServerProtocol(
            extensions=[ServerPerMessageDeflateFactory()] if self.options.compression else None,
            state=State.OPEN,
            max_size=self.sockets.max_message_size,
            logger=wire_log,
        )
        response = protocol.accept(Request(self.path, Headers(headers.get_all())))
        if response.status_code != 101:  # a bad key or extension offer: websockets says why
            self._refuse_text(response.status_code, response.body.decode("utf-8", "replace"))
            return
        if self.new_cookie is not None:
            # the page's later requests then share the socket's fingerprint (PROTOCOL.md §4)
            response.headers["Set-Cookie"] = self.new_cookie
        connection = Connection(
            "webSocket", self.remote_ip, self.remote_port, self.fingerprint, loop=self.loop
        )
        pump = SocketPump(self.app, self.sockets, connection, protocol, response.serialize())
        http = self.request_conn.detach()
        self.request_conn = None
        http.switch_protocols(pump)
        self._release_place()  # counted among the open sockets from now on

    def session_query(self) -> str | None:
        """The upgrade's ``?sessionID=``, as raw bytes decoded one to one: a value that is not
        UTF-8 is then ignored like any other invalid one (PROTOCOL.md §4)."""
        query = tornado.httputil.parse_qs_bytes(self.query).get("sessionID")
        return query[-1].decode("latin-1") if query else None

    def _refuse(self, status: int, text: str) -> None:
        self._release_place()
        self.respond(status, codec.dumps({"error": text}))

    def _refuse_text(self, status: int, text: str, extra: dict[str, str] | None = None) -> None:
        self._release_place()
        self.respond(status, text.encode(), "text/plain; charset=utf-8", extra)

    def _release_place(self) -> None:
        if self._holds_place:
            self._holds_place = False
            self.sockets.pending -= 1
            self.app.addresses.release(self.remote_ip)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("socket upgrade failed", exc_info=task.exception())


def close_code(protocol: Protocol) -> int:
    """The code a socket closed with: the one of whichever side started the closing handshake,
    or 1006 when no close frame went either way (RFC 6455 7.1.5)."""
    sent, received = protocol.close_sent, protocol.close_rcvd
    if received is not None and (sent is None or protocol.close_rcvd_then_sent):
        return received.code
    if sent is not None:
        return sent.code
    return 1006


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame (RFC 6455 5.2): what a server sends without compression.

    The header is two to ten bytes and nothing else applies to it (no mask, no extension, no
    fragment), so it is written here: websockets' ``Frame.serialize`` checks and builds the
    general case and costs about five times as much, on every reply.
    """
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", 0x81, 126, length) + payload
    return struct.pack("!BBQ", 0x81, 127, length) + payload


def frame_bounds(data: bytes, pos: int) -> tuple[int, int] | None:
    """Where the payload of the frame starting at ``data[pos]`` starts and ends (RFC 6455 5.2),
    or None while its header is not all in ``data``; the end may lie beyond ``data``."""
    length = len(data)
    if length - pos < 2:
        return None
    second = data[pos + 1]
    size = second & 0x7F
    start = pos + 2
    if size == 126:
        start += 2
        size = int.from_bytes(data[pos + 2 : start])
    elif size == 127:
        start += 8
        size = int.from_bytes(data[pos + 2 : start])
    if second & 0x80:  # the masking key
        start += 4
    if start > length:
        return None
    return start, start + size


def _close_reason(reason: str) -> str:
    """``reason`` cut to fit a close frame (125 bytes, the code's two included)."""
    return reason.encode("utf-8")[:123].decode("utf-8", "ignore")


class SocketPump(asyncio.Protocol):
    """One WebSocket after the handshake: frames in, replies out; the connection's transport."""

    def __init__(
        self,
        app: Squall,
        registry: SocketRegistry,
        connection: Connection,
        protocol: Protocol,
        handshake: bytes = b"",
    ) -> None:
        self.app = app
        self.registry = registry
        self.connection = connection
        self.protocol = protocol
        # The 101 response, written with the first bytes the socket sends (the welcome, when
        # the connection middleware need not wait), so a connect costs one send() less.
        self._handshake = handshake
        self.deflate = bool(protocol.extensions)  # each frame is compressed for its socket
        # Whole small frames are read here unless an extension rewrites them, or the wire log
        # is at DEBUG (websockets then logs every frame it parses).
        self.reads_frames = not protocol.extensions and not protocol.debug
        self.max_frame = registry.max_message_size
        # Where the protocol stands in the stream: the bytes it still needs to end the frame it
        # is in (0: between frames), or the start of a frame whose header a read cut.
        self._owed = 0
        self._cut_header = b""
        self.transport: Any = None
        # the connection's loop, kept: asyncio.get_running_loop() is a system call on 3.11
        self.loop = connection.loop or asyncio.get_running_loop()
        self.last_seen = time.monotonic()
        self.ready = False  # the welcome is out: messages before it wait in the backlog
        self._backlog: list[str | bytes] = []
        # One growing buffer, not a list of fragments: a million 1-byte (or empty) fragments
        # cost about the message's size, not a million objects.
        self._fragments: bytearray | None = None
        self._fragments_text = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.opened_at = 0.0
        connection.transport = self

    @property
    def open(self) -> bool:
        return self.protocol.state is _OPEN

    # -- asyncio protocol ----------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.registry.add(self)
        self.opened_at = time.monotonic()
        connection = self.connection
        self.app.stats.socket_connects += 1
        log_socket_open(connection.id, connection.remote_ip, connection.remote_port)
        task = self.loop.create_task(self._open())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # after the task's first step: a connection middleware that waits delays the welcome,
        # never the 101
        self.loop.call_soon(self._write_handshake)

    async def _open(self) -> None:
        connection = self.connection
        try:
            await self.app.lifecycle.open(connection)
        except Exception as exc:
            log.info("connection %s refused by middleware: %s", connection.id, exc)
            self.close(CLOSE_REFUSED, str(exc) or "refused")
            return
        if connection.closed:
            return
        connection.send_encoded(self.registry.welcome)
        self.ready = True
        backlog, self._backlog = self._backlog, []
        for message in backlog:
            self._message(message)

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        if self.reads_frames and self.protocol.state is _OPEN:
            self._read_frames(data)
        else:
            self._feed(data)

    def _read_frames(self, data: bytes) -> None:
        """Take each whole, final, masked data frame within ``maxMessageSize`` whose text is
        UTF-8 while the protocol is open and between frames; hand it every other byte, in order.

        The frame headers of what the protocol gets are followed too (``_owed``,
        ``_cut_header``): the pump reads a frame itself only where the protocol would start one.
        """
        fed = pos = 0  # data[:fed] is taken or with the protocol; a frame starts at pos
        if self._cut_header:  # that frame is the protocol's: fed > pos keeps it there
            fed = len(self._cut_header)
            data = self._cut_header + data
            self._cut_header = b""
        else:
            pos = self._owed
        end = len(data)
        while pos < end:
            bounds = frame_bounds(data, pos)
            if bounds is None:
                self._cut_header = data[pos:]
                break
            start, stop = bounds
            first = data[pos]
            if (
                pos >= fed
                and first in _WHOLE_DATA
                and data[pos + 1] & 0x80
                and stop <= end
                and stop - start <= self.max_frame
            ):
                if fed < pos:  # the protocol's bytes come first: they may close or fragment
                    self._feed(data[fed:pos])
                    fed = pos
                if self.protocol.state is not _OPEN:
                    break
                if self._fragments is None and self._take(
                    apply_mask(data[start:stop], data[start - 4 : start]), first == _WHOLE_TEXT
                ):
                    fed = stop
            pos = stop
        self._owed = max(pos - end, 0)
        if fed < end:
            self._feed(data[fed:])

    def _take(self, payload: bytes, text: bool) -> bool:
        """A whole message read by the pump; False leaves text that is not UTF-8 to the
        protocol's path, which closes with 1007 naming the position."""
        message: str | bytes = payload
        if text:
            try:
                message = payload.decode("utf-8")
            except UnicodeDecodeError:
                return False
        self._deliver(message)
        return True

    def _feed(self, data: bytes) -> None:
        """Bytes for websockets' protocol: frames, answers to control frames, failures."""
        protocol = self.protocol
        for start in range(0, len(data), FEED_SIZE):
            protocol.receive_data(data[start : start + FEED_SIZE])
            events = protocol.events_received()
            self._flush()  # pongs, and the close frame of a failure
            if events:
                self._handle(events)
        if protocol.close_expected():
            self._arm_close_timer()

    def _handle(self, frames: list[Frame]) -> None:
        """Reassemble messages (RFC 6455 5.4); control frames were answered by the protocol."""
        for frame in frames:
            opcode = frame.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if frame.fin:
                    self._received(frame.data, opcode is Opcode.TEXT)
                else:
                    self._fragments = bytearray(frame.data)
                    self._fragments_text = opcode is Opcode.TEXT
            elif opcode is Opcode.CONT:
                fragments = self._fragments
                assert fragments is not None  # the protocol refuses a stray continuation
                fragments += frame.data
                if frame.fin:
                    self._fragments = None
                    self._received(bytes(fragments), self._fragments_text)
            elif opcode is Opcode.CLOSE:
                # the peer is gone for the application now, not when its TCP close arrives
                self.app.lifecycle.close(self.connection)

    def _received(self, data: bytes, text: bool) -> None:
        if self.protocol.state is not _OPEN:  # not the property: this runs once per frame
            return  # closing: only the peer's close frame matters now
        message: str | bytes = data
        if text:
            try:
                message = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                self._fail(1007, f"invalid UTF-8 at position {exc.start}")
                return
        self._deliver(message)

    def _deliver(self, message: str | bytes) -> None:
        if self.ready:
            self._message(message)
        else:
            self._backlog.append(message)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        self.registry.discard(self)
        self.app.lifecycle.close(self.connection)
        code = close_code(self.protocol)
        connection = self.connection
        self.app.stats.socket_closed(code)
        log_socket_close(
            connection.id,
            connection.remote_ip,
            connection.remote_port,
            code,
            time.monotonic() - self.opened_at,
        )

    # -- frames in -------------------------------------------------------------------------------

    def _message(self, message: str | bytes) -> None:
        connection = self.connection
        if connection.closed:
            return
        self.app.stats.frames_in += 1
        protocol = self.app.protocol
        reply = protocol.receive(connection, message)
        if reply is None:
            return
        if isinstance(reply, dict):
            connection.send_encoded(protocol.encode(reply))
            return
        task = self.loop.create_task(self._reply_when_done(reply))
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

    def _fail(self, code: int, reason: str) -> None:
        """The peer broke the protocol: close with ``code``, then drop the link (RFC 6455 7.1.7)."""
        log.info("closing %s with %d: %s", self.connection.id, code, reason)
        self.protocol.fail(code, reason)
        self._flush()
        self._arm_close_timer()

    # -- the connection's transport (squall.connections.Transport) ------------------------------

    def write_frame(self, payload: bytes) -> None:
        """Queue one text frame; without compression, a broadcast's frame is built once."""
        if self.protocol.state is not _OPEN:  # not the property: this runs once per delivery
            return
        self.app.stats.frames_out += 1
        if self.deflate:
            self.protocol.send_text(payload)
            self._flush()
        else:
            self._write(self.registry.frame_of(payload))

    def close(self, code: int, reason: str) -> None:
        """Send a close frame; the peer has :data:`CLOSE_GRACE` seconds to answer it."""
        if not self.open or self.transport is None:
            return
        self.protocol.send_close(code, _close_reason(reason))
        self._flush()
        self._arm_close_timer()

    def abort(self) -> None:
        """Drop the TCP connection at once (a peer that stopped answering)."""
        if self.transport is not None:
            self.transport.abort()

    def ping(self) -> None:
        if self.open:
            self.protocol.send_ping(b"")
            self._flush()

    def _flush(self) -> None:
        """Write what the protocol has to send; ``b""`` means half-close (its EOF)."""
        for data in self.protocol.data_to_send():
            if data:
                self._write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()
            else:  # TLS cannot half-close: close once the close frame is out
                self.transport.close()

    def _write(self, data: bytes) -> None:
        """Write bytes; everything written (pongs included) counts in ``maxBufferedBytes``."""
        transport = self.transport
        if transport.is_closing():
            return
        if self._handshake:
            data, self._handshake = self._handshake + data, b""
        transport.write(data)
        if transport.get_write_buffer_size() > self.registry.max_buffered_bytes and self.open:
            self._drop_slow_reader()

    def _write_handshake(self) -> None:
        if self._handshake:
            self._write(b"")

    def _arm_close_timer(self) -> None:
        if self._close_timer is None:
            self._close_timer = self.loop.call_later(CLOSE_GRACE, self.abort)

    def _drop_slow_reader(self) -> None:
        self.app.stats.slow_readers += 1
        log.warning(
            "closing %s: it stopped reading and %d bytes wait for it",
            self.connection.id,
            self.transport.get_write_buffer_size(),
        )
        self.app.lifecycle.close(self.connection)
        self.close(CLOSE_POLICY, "outbound buffer full: the client is not reading")


class SocketRegistry:
    """The open sockets of this server, and what they share.

    - Two timers for all sockets, not one per socket: every ``pingInterval`` each socket is
      pinged; every :attr:`sweep_interval` (a tenth of ``timeout``, at most a second) those
      silent for longer than ``timeout`` (no frame, no pong) are dropped, so a dead peer is
      gone ``timeout`` after its last word, not at the ping after that (PROTOCOL.md §6).
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
        self.sweep_interval = min(self.timeout / 10, 1.0)
        self.max_message_size = max_message_size
        self.max_buffered_bytes = max_buffered_bytes
        #: the welcome frame's JSON, encoded once for every socket (PROTOCOL.md §2.5)
        self.welcome = codec.dumps({"context": "api", "welcome": welcome})
        self._pumps: set[SocketPump] = set()
        self.pending = 0  # upgrades admitted but not yet adopted
        self.accepting = True  # False from the stop signal on: no new socket is welcomed
        self._ping_timer: asyncio.TimerHandle | None = None
        self._sweep_timer: asyncio.TimerHandle | None = None
        self._empty = asyncio.Event()
        self._empty.set()
        self._cached_payload: bytes | None = None
        self._cached_frame = b""

    def frame_of(self, payload: bytes) -> bytes:
        """The unmasked, uncompressed text frame of ``payload``, built once per broadcast (a
        broadcast hands every member the same ``payload`` object)."""
        if payload is not self._cached_payload:
            self._cached_payload = payload
            self._cached_frame = text_frame(payload)
        return self._cached_frame

    def add(self, pump: SocketPump) -> None:
        self._pumps.add(pump)
        self.app.addresses.add(pump.connection.remote_ip)
        self._empty.clear()

    def discard(self, pump: SocketPump) -> None:
        if pump in self._pumps:
            self._pumps.discard(pump)
            self.app.addresses.release(pump.connection.remote_ip)
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
        self._ping_timer = loop.call_later(self.ping_interval, self._ping_all)
        self._sweep_timer = loop.call_later(self.sweep_interval, self._sweep)

    def stop_accepting(self) -> None:
        """Refuse every upgrade from now on (503), also on HTTP connections already open."""
        self.accepting = False

    def stop(self) -> None:
        self.stop_accepting()
        for timer in (self._ping_timer, self._sweep_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._sweep_timer = None

    def _ping_all(self) -> None:
        for pump in list(self._pumps):
            pump.ping()
        self._ping_timer = asyncio.get_running_loop().call_later(self.ping_interval, self._ping_all)

    def _sweep(self) -> None:
        now = time.monotonic()
        for pump in list(self._pumps):
            silent = now - pump.last_seen
            if silent > self.timeout:
                log.info("dropping %s: silent for %.0f s", pump.connection.id, silent)
                pump.abort()
        self._sweep_timer = asyncio.get_running_loop().call_later(self.sweep_interval, self._sweep)
