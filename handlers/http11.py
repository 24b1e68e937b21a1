"""HTTP/1.1 on ``httptools`` (llhttp, Node's parser) under Tornado's routing and handlers.

One :class:`HTTP11Protocol` (an asyncio protocol) per connection parses requests with
``httptools`` and drives any :class:`tornado.httputil.HTTPServerConnectionDelegate` (Squall's
router, hence the Tornado ``Application``, its ``RequestHandler``\\ s and ``StaticFileHandler``)
through Tornado's public seams: each request gets an :class:`Exchange`, Tornado's
:class:`~tornado.httputil.HTTPConnection`, and its delegate is fed ``headers_received``,
``data_received`` and ``finish``. Tornado keeps what it does well (routing, handlers, static
files, the loop); the parsing and writing of HTTP/1.1, the hottest code of a small request,
run in C.

What the protocol enforces, whoever handles the request:
- pipelined requests are answered one at a time, in order (reading pauses while one waits);
- the request head is bounded (``maxHeaderSize``: 431), the body too (``maxBodySize``: 413);
  a head is due within ``idleConnectionTimeout`` of the connection going idle, a body within
  the same time after its head (slowloris), and an idle keep-alive connection is closed then;
- what llhttp refuses (conflicting ``Content-Length``/``Transfer-Encoding``, bad chunk sizes,
  NUL or bare CR in headers, obsolete line folding...) gets 400, and any transfer coding but
  ``chunked`` too: the request-smuggling refusals. Every refusal is answered before the
  connection closes (PROTOCOL.md §3), never a silent close;
- ``Expect: 100-continue`` is answered once the handler took the head without answering it
  (a refusal in ``prepare`` never invites the body); a streamed body is fed as the handler
  asks (Tornado's flow control); HEAD responses carry no body; a response without
  ``Content-Length`` is chunked (or ends the connection for HTTP/1.0), and one whose body
  disagrees with its ``Content-Length`` closes the connection, as Tornado's own does.

An upgrade (``Connection: Upgrade``) is routed like any request; a handler that accepts it
calls :meth:`Exchange.detach` and :meth:`HTTP11Protocol.switch_protocols` (at once or later),
and the same transport is handed to another asyncio protocol (the WebSocket pump) with the
bytes that came after the request head. TLS is asyncio's own transport
(``loop.create_server(ssl=...)``).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httptools
import tornado.httputil
import tornado.iostream
import tornado.netutil

from squall import codec

__all__ = ["ConnectionContext", "Exchange", "HTTP11Protocol", "HTTPServer", "ServerParams"]

log = logging.getLogger("squall.http")

#: How long a refused client may go on sending (its bytes are read and dropped) after the
#: refusal was written, so that the kernel does not answer its bytes with a reset that can
#: destroy the refusal before the client reads it.
LINGER = 2.0

_REASONS = tornado.httputil.responses
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerParams:
    """The limits, timeouts and headers every connection of one server shares."""

    max_header_size: int
    max_body_size: int
    idle_timeout: float
    body_timeout: float
    trust_proxy: bool = False
    #: ``servers.web.httpHeaders``, on the refusals the protocol answers itself too (a page
    #: reading a 413 across origins needs the CORS headers as much as any other answer)
    headers: tuple[tuple[str, str], ...] = ()
    #: the ``Set-Cookie`` value a response to this request head must carry (the fingerprint
    #: cookie, PROTOCOL.md §4), for the refusals answered after a head was read (a 413)
    cookie: Callable[[tornado.httputil.HTTPHeaders], str | None] | None = None


class ConnectionContext:
    """What Tornado's ``HTTPServerRequest`` reads from ``connection.context``: the peer's
    address and the scheme; with ``trust_proxy``, as a proxy's ``X-Forwarded-*`` or
    ``X-Real-Ip``/``X-Scheme`` headers say (the same rules as Tornado's ``xheaders``)."""

    __slots__ = ("address", "protocol", "remote_ip")

    def __init__(self, address: Any, protocol: str) -> None:
        self.address = address
        self.remote_ip = address[0] if isinstance(address, tuple) and address else ""
        self.protocol = protocol

    @property
    def remote_port(self) -> int:
        address = self.address
        return address[1] if isinstance(address, tuple) and len(address) > 1 else 0

    def behind_proxy(self, headers: tornado.httputil.HTTPHeaders) -> ConnectionContext:
        """The context one request sees when a trusted proxy forwarded it."""
        context = ConnectionContext(self.address, self.protocol)
        forwarded = headers.get("X-Forwarded-For", self.remote_ip).split(",")[-1].strip()
        ip = headers.get("X-Real-Ip", forwarded)
        if tornado.netutil.is_valid_ip(ip):
            context.remote_ip = ip
        scheme = headers.get("X-Scheme", headers.get("X-Forwarded-Proto", self.protocol))
        scheme = scheme.split(",")[-1].strip()
        if scheme in ("http", "https"):
            context.protocol = scheme
        return context


class _Refusal(Exception):
    """A request the protocol answers itself, with ``status`` and an ``{"error": ...}`` body;
    ``head`` is the request's headers when they were read before it was refused."""

    def __init__(
        self, status: int, message: str, head: tornado.httputil.HTTPHeaders | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.head = head


class _Closing(Exception):
    """Raised from a parser callback once the connection is closing: llhttp parses no more."""


class _Request:
    """One parsed request: its exchange, its delegate once started, and the body chunks the
    delegate has not had yet (it has not started, or asked to wait, as Tornado's delegates may)."""

    __slots__ = ("body", "complete", "delegate", "exchange", "expects_continue", "waiting")

    def __init__(self, exchange: Exchange, expects_continue: bool) -> None:
        self.exchange = exchange
        self.expects_continue = expects_continue
        self.delegate: tornado.httputil.HTTPMessageDelegate | None = None
        self.body: collections.deque[bytes] = collections.deque()
        self.complete = False  # the parser saw the end of the message
        self.waiting = False  # the delegate returned an awaitable that is not done yet


class Exchange(tornado.httputil.HTTPConnection):
    """One request and its response on an :class:`HTTP11Protocol`: Tornado's
    ``HTTPConnection`` interface, plus ``set_close_callback`` and ``detach``, which
    ``RequestHandler`` calls too."""

    def __init__(
        self,
        protocol: HTTP11Protocol,
        context: ConnectionContext,
        start_line: tornado.httputil.RequestStartLine,
        headers: tornado.httputil.HTTPHeaders,
        keep_alive: bool,
        upgrade: bool,
    ) -> None:
        self.protocol = protocol
        self.loop = protocol.loop
        self.context = context
        self.start_line = start_line
        self.request_headers = headers
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.close_callback: Callable[[], None] | None = None
        self._chunked = False
        self._remaining: int | None = None  # body bytes the response still owes its length
        self.headers_written = False
        self.finished = False

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        """Called if the connection closes before the response is finished."""
        self.close_callback = callback

    def write_headers(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> asyncio.Future[None]:
        assert isinstance(start_line, tornado.httputil.ResponseStartLine)
        self.headers_written = True
        request = self.start_line
        status = start_line.code
        has_body = request.method != "HEAD" and status not in (204, 304) and status >= 200
        if has_body and "Content-Length" not in headers and "Transfer-Encoding" not in headers:
            if request.version == "HTTP/1.1":
                self._chunked = True
                headers["Transfer-Encoding"] = "chunked"
            else:
                self.keep_alive = False  # the end of the body is the end of the connection
        if self.upgrade:
            self.keep_alive = False  # an upgrade that was not taken: nothing follows it
        if not self.keep_alive and request.version == "HTTP/1.1":
            headers["Connection"] = "close"
        elif self.keep_alive and request.version == "HTTP/1.0":
            headers["Connection"] = "Keep-Alive"
        if not has_body:
            self._remaining = 0
        elif "Content-Length" in headers:
            self._remaining = int(headers["Content-Length"])
        lines = [f"HTTP/1.1 {status} {start_line.reason}"]
        for name, value in headers.get_all():
            if "\n" in value or "\r" in value:
                raise ValueError(f"illegal characters (CR or LF) in header {name}: {value!r}")
            lines.append(f"{name}: {value}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if chunk:
            head += self._framed(chunk)
        return self.protocol.write(head)

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        return self.protocol.write(self._framed(chunk))

    def _framed(self, chunk: bytes) -> bytes:
        """``chunk`` as the body's framing wants it. More than the declared length (any body
        for HEAD, 204, 304) would be read as the next response: the connection is closed and
        :class:`~tornado.httputil.HTTPOutputError` raised, as Tornado's own connection does."""
        if self._remaining is not None:
            self._remaining -= len(chunk)
            if self._remaining < 0:
                self.protocol.close()
                raise tornado.httputil.HTTPOutputError(
                    "Tried to write more data than Content-Length"
                )
        if self._chunked and chunk:
            return b"%x\r\n%b\r\n" % (len(chunk), chunk)
        return chunk

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self._remaining and not self.protocol.closing:
            # shorter than it said: the client would wait for the rest forever
            self.protocol.close()
            raise tornado.httputil.HTTPOutputError(
                f"Tried to write {self._remaining} bytes less than Content-Length"
            )
        if self._chunked:
            self.protocol.write(b"0\r\n\r\n")
        self.protocol.response_finished(self)

    def detach(self) -> HTTP11Protocol:
        """Take the connection over (an accepted upgrade): no response will follow; call
        :meth:`HTTP11Protocol.switch_protocols` to hand the transport to another protocol."""
        self.finished = True
        return self.protocol


class HTTP11Protocol(asyncio.Protocol):
    """One HTTP/1.1 connection, parsed by ``httptools``; see the module docstring."""

    #: The loop serving the connection (from ``connection_made``): asked once, because
    #: ``asyncio.get_running_loop()`` makes a ``getpid()`` system call on Python 3.11.
    loop: asyncio.AbstractEventLoop

    def __init__(
        self,
        delegate: tornado.httputil.HTTPServerConnectionDelegate,
        params: ServerParams,
        server: HTTPServer | None = None,
    ) -> None:
        self.delegate = delegate
        self.params = params
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.context = ConnectionContext(None, "http")
        self.parser = httptools.HttpRequestParser(self)
        self.active: _Request | None = None
        self.queue: collections.deque[_Request] = collections.deque()
        self.closing = False
        self._parsing: _Request | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0  # bytes received in an unfinished head
        self._milestones = 0  # heads and messages completed, to tell chunks apart
        self._body_size = 0
        self._refusal: _Refusal | None = None
        self._upgrade_rest: bytearray | None = None  # bytes after an upgrade request's head
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False  # writing paused by the transport (flow control)
        self._drained: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._switched = False
        self._switch_to: tuple[asyncio.Protocol, bytes] | None = None  # asked for mid-parse

    # -- asyncio protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        secure = transport.get_extra_info("sslcontext") is not None
        self.context = ConnectionContext(
            transport.get_extra_info("peername"), "https" if secure else "http"
        )
        self.loop = loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._done.set_result(None)
        if self.server is not None:
            self.server.opened(self)
        self._wait_for_head()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # a refused client's bytes, read and dropped until it leaves
        if self._upgrade_rest is not None:
            self._upgrade_rest += data  # after an upgrade request's head: for the next protocol
            return
        milestones = self._milestones
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgrade_rest = bytearray(data[upgrade.args[0] :])
            self._pause_reading()  # nothing more is parsed: the handler decides what follows
            if self._switch_to is not None:  # the handler took the connection at once
                self.switch_protocols(*self._switch_to)
            return
        except httptools.HttpParserError as error:
            if self.closing:
                return  # a callback stopped the parser: the connection is already answered
            refusal = self._refusal or _Refusal(400, f"malformed HTTP request: {error}")
            self._refusal = None
            self._refuse(refusal)
            return
        # A head still incomplete grows by what came (llhttp buffers a header until it ends,
        # so its callbacks cannot see a huge one growing): bounded here, chunk by chunk.
        if self._parsing is not None or milestones != self._milestones:
            self._head_size = 0  # a head or a message ended within this chunk
        else:
            self._head_size += len(data)
            if self._head_size > self.params.max_header_size:
                self._refuse(_head_too_large(self.params.max_header_size))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._cancel_timer()
        if self.server is not None:
            self.server.closed(self)
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(tornado.iostream.StreamClosedError())
            self._drained.exception()  # retrieved: nobody may be waiting for it
        if self._switched:
            return
        request = self.active
        self.active = None
        self.queue.clear()
        if request is not None and not request.exchange.finished:
            callback = request.exchange.close_callback
            if callback is not None:
                callback()
            if request.delegate is not None:
                request.delegate.on_connection_close()
        self.delegate.on_close(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None:
            self._drained.set_result(None)
            self._drained = None

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.closing:
            raise _Closing
        self._milestones += 1
        self._cancel_timer()
        size = len(self._url) + sum(len(n) + len(v) + 4 for n, v in self._headers)
        params = self.params
        if size > params.max_header_size:
            self._fail(_head_too_large(params.max_header_size))
        parser = self.parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            self._fail(_Refusal(505, f"HTTP/{version} is not supported: send HTTP/1.1"))
        headers = tornado.httputil.HTTPHeaders()
        for raw_name, raw_value in self._headers:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            if name in headers:
                headers.add(name, value)  # a repeated field: Tornado keeps every line
            else:
                # llhttp checked the name (a token) and the value (no control character)
                # already: ``add`` would check both again with regular expressions, the
                # largest cost of a small request's head
                headers[name] = value
        self._headers = []
        coding = headers.get("Transfer-Encoding")
        if coding is not None and coding.strip().lower() != "chunked":
            # Tornado's rule too: anything else could be read differently by a proxy in front
            self._fail(_Refusal(400, f"unsupported Transfer-Encoding: {coding}", headers))
        length = headers.get("Content-Length")
        if length is not None and int(length) > params.max_body_size:
            self._fail(_body_too_large(params.max_body_size, headers))
        start_line = tornado.httputil.RequestStartLine(
            parser.get_method().decode("ascii"), self._url.decode("latin-1"), f"HTTP/{version}"
        )
        context = self.context.behind_proxy(headers) if params.trust_proxy else self.context
        exchange = Exchange(
            self,
            context,
            start_line,
            headers,
            keep_alive=parser.should_keep_alive() and not self.closing,
            upgrade=parser.should_upgrade(),
        )
        has_body = coding is not None or bool(length and int(length))
        expects = has_body and headers.get("Expect", "").lower() == "100-continue"
        request = _Request(exchange, expects_continue=expects)
        self._parsing = request
        if has_body:
            self._timer = self.loop.call_later(params.body_timeout, self._timed_out, "body")
        if self.active is None:
            self._start(request)
        else:
            self.queue.append(request)
            self._pause_reading()  # one request waits; the next ones wait in the kernel

    def on_body(self, body: bytes) -> None:
        if self.closing:
            raise _Closing
        request = self._parsing
        assert request is not None
        self._body_size += len(body)
        if self._body_size > self.params.max_body_size:
            self._fail(_body_too_large(self.params.max_body_size, request.exchange.request_headers))
        request.body.append(body)
        if request.delegate is not None and not request.waiting:
            self._deliver(request)

    def on_message_complete(self) -> None:
        if self.closing:
            raise _Closing
        self._milestones += 1
        self._cancel_timer()
        request = self._parsing
        assert request is not None
        self._parsing = None
        request.complete = True
        if request.delegate is not None and not request.waiting:
            self._deliver(request)

    def _fail(self, refusal: _Refusal) -> None:
        """Stop parsing from a callback: ``feed_data`` raises, and the refusal is answered."""
        self._refusal = refusal
        raise refusal

    # -- requests --------------------------------------------------------------------------

    def _start(self, request: _Request) -> None:
        """Hand a request to a delegate of its own: now, or when the one before it finished."""
        self.active = request
        exchange = request.exchange
        try:
            delegate = self.delegate.start_request(self, exchange)
            request.delegate = delegate
            result = delegate.headers_received(exchange.start_line, exchange.request_headers)
        except Exception as error:
            self._delegate_failed(request, error)
            return
        if not self._waits(request, result, self._headers_taken):
            self._headers_taken(request)

    def _headers_taken(self, request: _Request) -> None:
        """The delegate has the head (a Tornado handler: ``prepare`` ran). ``100 Continue``
        invites the body only now, so that a handler refusing the request never gets it."""
        exchange = request.exchange
        if request.expects_continue and not (
            request.complete or request.body or exchange.headers_written or exchange.finished
        ):
            self.transport.write(_CONTINUE)  # type: ignore[union-attr]
        self._deliver(request)

    def _deliver(self, request: _Request) -> None:
        """Give the delegate the body chunks it has not had, then ``finish`` once the message
        is complete; a chunk answered with an awaitable (Tornado's flow control for streamed
        bodies) holds the rest back until it is done."""
        delegate = request.delegate
        assert delegate is not None
        try:
            while request.body:
                result = delegate.data_received(request.body.popleft())
                if self._waits(request, result, self._deliver):
                    return
            if request.complete and request is self.active and not request.exchange.finished:
                delegate.finish()
        except Exception as error:
            self._delegate_failed(request, error)

    def _waits(self, request: _Request, result: Any, then: Callable[[_Request], None]) -> bool:
        """True if ``result`` is an awaitable still pending: reading pauses, and ``then``
        carries on with ``request`` once it is done."""
        if result is None or not inspect.isawaitable(result):
            return False
        future = asyncio.ensure_future(result)
        if future.done() and not future.cancelled() and future.exception() is None:
            return False
        request.waiting = True
        self._pause_reading()
        future.add_done_callback(lambda done: self._waited(request, done, then))
        return True

    def _waited(
        self, request: _Request, done: asyncio.Future[Any], then: Callable[[_Request], None]
    ) -> None:
        request.waiting = False
        if request is not self.active or self.closing:
            return  # answered or abandoned meanwhile
        error = None if done.cancelled() else done.exception()
        if error is not None:
            self._delegate_failed(request, error)
            return
        if not self.queue and self._refusal is None:
            self._resume_reading()
        then(request)

    def _delegate_failed(self, request: _Request, error: BaseException) -> None:
        """A delegate raised. Tornado's ``HTTPInputError`` (a missing ``Host``, say) is the
        client's fault: 400, as Tornado's own server answers it. Anything else is a bug above the
        protocol (Tornado's handlers catch their own): logged with its traceback, answered 500
        unless a response began. Either way the connection closes."""
        exchange = request.exchange
        if isinstance(error, tornado.httputil.HTTPInputError):
            refusal = _Refusal(400, f"malformed HTTP request: {error}")
        else:
            log.error(
                "uncaught exception handling %s %s from %s",
                exchange.start_line.method,
                exchange.start_line.path,
                exchange.context.remote_ip,
                exc_info=error,
            )
            refusal = _Refusal(500, "internal error: see the server log")
        exchange.finished = True
        self.active = None
        self.queue.clear()
        if exchange.headers_written:
            self.close()
        else:
            self._refuse(refusal)

    def response_finished(self, exchange: Exchange) -> None:
        """The active request's response is written: the next request, or idle, or close."""
        request = self.active
        if request is None or request.exchange is not exchange or self._switched:
            return
        if not request.complete:
            exchange.keep_alive = False  # the rest of its body would be read as a request
        self.active = None
        if not exchange.keep_alive or self._upgrade_rest is not None:
            self.close()
            return
        if self.queue:
            # on the next loop iteration: a delegate that answers at once would otherwise
            # recurse here once per pipelined request
            self.loop.call_soon(self._start_next)
            return
        if self._refusal is not None:  # what came after the pipelined requests was refused
            refusal, self._refusal = self._refusal, None
            self._refuse(refusal)
            return
        self._resume_reading()
        if self._parsing is None:
            self._wait_for_head()

    def _start_next(self) -> None:
        if self.active is None and self.queue and not self.closing:
            self._start(self.queue.popleft())
            if not self.queue and self._refusal is None:
                self._resume_reading()

    def switch_protocols(self, protocol: asyncio.Protocol, response: bytes = b"") -> None:
        """Write the ``101`` ``response`` (unless ``protocol`` writes it itself) and hand the
        transport, with every byte that came after the upgrade request, to ``protocol`` (which
        then owns the connection)."""
        transport = self.transport
        assert transport is not None
        if self._upgrade_rest is None:
            # asked from within the parser's callbacks (a delegate that answers in ``finish``):
            # llhttp has not said yet where the request ends; switch as soon as it has
            self._switch_to = (protocol, response)
            return
        self._switch_to = None
        self._switched = True
        self._cancel_timer()
        if self.server is not None:
            self.server.closed(self)
        rest, self._upgrade_rest = bytes(self._upgrade_rest), None
        if response:
            transport.write(response)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if rest:
            protocol.data_received(rest)
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    # -- writing ---------------------------------------------------------------------------

    def write(self, data: bytes) -> asyncio.Future[None]:
        """Write response bytes; the future resolves once the transport takes more."""
        transport = self.transport
        if transport is None or transport.is_closing():
            # what Tornado's handlers expect of a vanished client (StaticFileHandler catches it)
            future = self.loop.create_future()
            future.set_exception(tornado.iostream.StreamClosedError())
            future.exception()  # retrieved: a handler that does not await it logs nothing
            return future
        transport.write(data)
        if not self._paused:
            return self._done  # type: ignore[return-value]
        if self._drained is None:
            self._drained = self.loop.create_future()
        return self._drained

    def close(self) -> None:
        """Close once what was written has gone out (idle, or after the current response)."""
        self.closing = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()

    def close_when_idle(self) -> None:
        """Server shutdown: close now if no request is being answered, else after it."""
        if self.active is None:
            self.close()
        else:
            self.active.exchange.keep_alive = False
            self.queue.clear()

    def _refuse(self, refusal: _Refusal) -> None:
        """Answer ``refusal`` (after the responses in progress or queued, if any), then close."""
        if self.closing:
            return  # answered already, or the client is gone
        active = self.active
        if active is not None and not active.exchange.finished:
            if active.complete:  # about a later request: answered after those before it
                self._refusal = refusal
                self._pause_reading()
                return
            # about the active request's own body: it will never be complete
            self.active = None
            active.exchange.finished = True
            if active.delegate is not None:
                active.delegate.on_connection_close()
            if active.exchange.headers_written:
                self.close()
                return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%d to %s: %s", refusal.status, self.context.remote_ip, refusal.message)
        transport = self.transport
        assert transport is not None
        self.closing = True
        self._cancel_timer()
        body = codec.dumps({"error": refusal.message})
        reason = _REASONS.get(refusal.status, "Error")
        configured = "".join(f"{name}: {value}\r\n" for name, value in self.params.headers)
        cookie = self.params.cookie
        if refusal.head is not None and cookie is not None:
            set_cookie = cookie(refusal.head)
            if set_cookie is not None:
                configured += f"Set-Cookie: {set_cookie}\r\n"
        transport.write(
            b"HTTP/1.1 %d %s\r\n%bContent-Type: application/json; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%b"
            % (refusal.status, reason.encode(), configured.encode("latin-1"), len(body), body)
        )
        if transport.can_write_eof():
            # half-close and drop what still comes: a reset could destroy the answer
            transport.write_eof()
            self._resume_reading()
            self._timer = self.loop.call_later(LINGER, transport.abort)
        else:
            transport.close()

    # -- timers and reading ----------------------------------------------------------------

    def _wait_for_head(self) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(self.params.idle_timeout, self._timed_out, "head")

    def _timed_out(self, what: str) -> None:
        self._timer = None
        if what == "head" and self._head_size == 0 and self._parsing is None:
            self.close()  # an idle keep-alive connection: nothing to answer
        else:
            parsing = self._parsing
            head = parsing.exchange.request_headers if parsing is not None else None
            self._refuse(_Refusal(408, f"the request {what} did not arrive in time", head))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self.transport.is_closing():
            self._reading_paused = False
            self.transport.resume_reading()


def _head_too_large(limit: int) -> _Refusal:
    return _Refusal(
        431, f"the request head is larger than servers.web.maxHeaderSize ({limit} bytes)"
    )


def _body_too_large(limit: int, head: tornado.httputil.HTTPHeaders) -> _Refusal:
    return _Refusal(
        413, f"the request body is larger than servers.web.maxBodySize ({limit} bytes)", head
    )


class HTTPServer:
    """The listening sockets of one server and its open HTTP connections."""

    def __init__(
        self,
        delegate: tornado.httputil.HTTPServerConnectionDelegate,
        params: ServerParams,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.delegate = delegate
        self.params = params
        self.ssl_context = ssl_context
        self.connections: set[HTTP11Protocol] = set()
        self._servers: list[asyncio.Server] = []
        self._none_open = asyncio.Event()
        self._none_open.set()

    async def listen(self, sockets: Iterable[Any]) -> None:
        """Serve on already bound sockets (``tornado.netutil.bind_sockets``)."""
        loop = asyncio.get_running_loop()
        for sock in sockets:
            server = await loop.create_server(
                self._protocol,
                sock=sock,
                ssl=self.ssl_context,
                ssl_handshake_timeout=self.params.idle_timeout if self.ssl_context else None,
            )
            self._servers.append(server)

    def _protocol(self) -> HTTP11Protocol:
        return HTTP11Protocol(self.delegate, self.params, self)

    def opened(self, connection: HTTP11Protocol) -> None:
        self.connections.add(connection)
        self._none_open.clear()

    def closed(self, connection: HTTP11Protocol) -> None:
        """The connection closed, or became another protocol's (an upgrade)."""
        self.connections.discard(connection)
        if not self.connections:
            self._none_open.set()

    def stop(self) -> None:
        """Stop accepting; open connections go on (see :meth:`close_all_connections`)."""
        for server in self._servers:
            server.close()

    async def close_all_connections(self) -> None:
        """Close idle connections now and the others once their response is written."""
        for connection in list(self.connections):
            connection.close_when_idle()
        await self._none_open.wait()
