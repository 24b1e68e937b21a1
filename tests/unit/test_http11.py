"""handlers/http11.py without a socket: bytes in through ``data_received``, bytes out through a
recording transport, Tornado's ``Application`` on top as in the server (the sans-I/O habit).

What these pin down is the protocol's own job (its module docstring): keep-alive, pipelined
requests answered one at a time and in order, ``Expect: 100-continue``, HEAD, chunked bodies both
ways, the refusals it answers itself (400, 408, 413, 431, 505, and the request-smuggling ones),
when a connection closes, a client that leaves mid-response, and the upgrade hand-over.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tornado.escape
import tornado.httputil
import tornado.iostream
import tornado.routing
import tornado.web
from testkit import TIMEOUT

from handlers.http11 import HTTP11Protocol, HTTPServer, ServerParams

from .wire import WireTransport, until

PARAMS = ServerParams(max_header_size=1024, max_body_size=4096, idle_timeout=5.0, body_timeout=5.0)
FAST_TIMEOUTS = ServerParams(
    max_header_size=1024, max_body_size=4096, idle_timeout=0.05, body_timeout=0.05
)


# -- reading what the server wrote -----------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: tornado.httputil.HTTPHeaders
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


def parse_responses(data: bytes, methods: list[str], eof: bool) -> list[Response]:
    """The complete responses in ``data``, framed strictly as a client must read them:
    interim ``1xx`` responses included, no body after HEAD/204/304, ``Content-Length``, chunked,
    or (without either) up to the end of the connection."""
    responses: list[Response] = []
    pending = list(methods)
    rest = bytes(data)
    while rest:
        end = rest.find(b"\r\n\r\n")
        if end < 0:
            break
        lines = rest[:end].decode("latin-1").split("\r\n")
        version, status, _ = lines[0].split(" ", 2)
        assert version == "HTTP/1.1", lines[0]
        headers = tornado.httputil.HTTPHeaders()
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.add(name, value.strip())
        code = int(status)
        body_start = end + 4
        if code < 200:
            responses.append(Response(code, headers, b""))
            rest = rest[body_start:]
            continue
        method = pending.pop(0) if pending else "GET"
        if method == "HEAD" or code in (204, 304):
            body, rest = b"", rest[body_start:]
        elif headers.get("Transfer-Encoding") == "chunked":
            body, used = _dechunk(rest[body_start:])
            if used is None:
                break
            rest = rest[body_start + used :]
        elif "Content-Length" in headers:
            length = int(headers["Content-Length"])
            if len(rest) - body_start < length:
                break
            body, rest = rest[body_start : body_start + length], rest[body_start + length :]
        elif eof:
            body, rest = rest[body_start:], b""
        else:
            break
        responses.append(Response(code, headers, body))
    return responses


def _dechunk(data: bytes) -> tuple[bytes, int | None]:
    body, pos = b"", 0
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return body, None
        size = int(data[pos:line_end], 16)
        chunk_start = line_end + 2
        if len(data) < chunk_start + size + 2:
            return body, None
        assert data[chunk_start + size : chunk_start + size + 2] == b"\r\n", "bad chunk framing"
        body += data[chunk_start : chunk_start + size]
        pos = chunk_start + size + 2
        if size == 0:
            return body, pos


class Client:
    """One connection to an :class:`HTTP11Protocol`, driven byte by byte."""

    def __init__(
        self,
        delegate: tornado.httputil.HTTPServerConnectionDelegate,
        params: ServerParams = PARAMS,
        server: HTTPServer | None = None,
        watch: tuple[asyncio.Event, ...] = (),
        **transport: Any,
    ) -> None:
        self.transport = WireTransport(**transport)
        self.watch = watch  # events of the application's own, woken on too
        self.protocol = HTTP11Protocol(delegate, params, server)
        self.transport.protocol = self.protocol
        self.protocol.connection_made(self.transport)
        self.methods: list[str] = []

    def send(self, data: bytes, *methods: str) -> None:
        """Bytes from the client; ``methods``: the requests they hold (to frame responses)."""
        self.methods += methods
        self.transport.receive(data)

    def request(self, method: str, path: str, *args: Any, **kwargs: Any) -> None:
        """Send one request (the arguments of :func:`raw`)."""
        self.send(raw(method, path, *args, **kwargs), method)

    def responses(self) -> list[Response]:
        return parse_responses(self.transport.written, self.methods, self.transport.closing)

    def finals(self) -> list[Response]:
        return [r for r in self.responses() if r.status >= 200]

    async def wait_for(self, count: int) -> list[Response]:
        """The first ``count`` final responses, once they are all written."""
        await self.until(lambda: len(self.finals()) >= count)
        return self.finals()[:count]

    async def until(self, condition: Any) -> None:
        """Wait until ``condition()`` holds, waking on the transport's and the handlers' events."""
        await until(condition, self.transport.changed, *self.watch)

    async def closed(self) -> None:
        await self.until(lambda: self.transport.closing)


def raw(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    version: str = "HTTP/1.1",
) -> bytes:
    lines = [f"{method} {path} {version}", "Host: squall.test"]
    fields = dict(headers or {})
    if body and "Content-Length" not in fields and "Transfer-Encoding" not in fields:
        fields["Content-Length"] = str(len(body))
    lines += [f"{name}: {value}" for name, value in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# -- the application on top ------------------------------------------------------------------------


class Gates:
    """Futures the handlers wait on, opened by the test: responses finish when the test says."""

    def __init__(self) -> None:
        self.futures: dict[str, asyncio.Future[None]] = {}
        self.started: list[str] = []
        self.lost: list[str] = []
        self.finished: list[str] = []
        self.changed = asyncio.Event()

    def note(self, happened: list[str], name: str) -> None:
        happened.append(name)
        self.changed.set()

    def __getitem__(self, name: str) -> asyncio.Future[None]:
        if name not in self.futures:
            self.futures[name] = asyncio.get_running_loop().create_future()
        return self.futures[name]

    def open(self, name: str) -> None:
        self[name].set_result(None)


class Echo(tornado.web.RequestHandler):
    def get(self) -> None:
        request = self.request
        self.write(
            {
                "uri": request.uri,
                "ip": request.remote_ip,
                "scheme": request.protocol,
                "version": request.version,
            }
        )

    head = get

    def post(self) -> None:
        self.set_header("Content-Type", "application/octet-stream")
        self.write(self.request.body)


class Gated(tornado.web.RequestHandler):
    def initialize(self, gates: Gates) -> None:
        self.gates = gates

    async def get(self, name: str) -> None:
        self.name = name
        self.gates.note(self.gates.started, name)
        await self.gates[name]
        self.write(name)

    def on_connection_close(self) -> None:
        self.gates.note(self.gates.lost, self.name)

    def on_finish(self) -> None:
        self.gates.note(self.gates.finished, self.name)


class Files(tornado.web.StaticFileHandler):
    def initialize(self, path: str, gates: Gates) -> None:  # type: ignore[override]
        super().initialize(path)
        self.gates = gates

    def on_finish(self) -> None:
        self.gates.note(self.gates.finished, self.request.path)


@tornado.web.stream_request_body
class Upload(tornado.web.RequestHandler):
    """Counts the body as it streams in (a handler that wants ``Expect: 100-continue``)."""

    def prepare(self) -> None:
        self.chunks: list[bytes] = []

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def put(self) -> None:
        self.write({"size": sum(map(len, self.chunks))})


@tornado.web.stream_request_body
class Guarded(Upload):
    """Refuses every upload in ``prepare``, before any of the body is read."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(401)


class Chunks(tornado.web.RequestHandler):
    """A response of unknown length: two writes with a flush between them."""

    async def get(self) -> None:
        self.write("one,")
        await self.flush()
        self.write("two")


class Upgrade(tornado.web.RequestHandler):
    """Takes the connection over, as the WebSocket handler does."""

    def initialize(self, taken: list[Any]) -> None:
        self.taken = taken

    def get(self) -> None:
        next_protocol = TakenOver()
        self.taken.append(next_protocol)
        http = self.detach()
        http.switch_protocols(next_protocol, b"HTTP/1.1 101 Switching Protocols\r\n\r\n")


class TakenOver(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self.received = b""
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


class TakeOverAtOnce(tornado.httputil.HTTPMessageDelegate):
    """A bare delegate that switches protocols in ``finish``, inside the parser's callbacks."""

    def __init__(self, connection: Any, taken: list[Any]) -> None:
        self.connection = connection
        self.taken = taken

    def finish(self) -> None:
        next_protocol = TakenOver()
        self.taken.append(next_protocol)
        http = self.connection.detach()
        http.switch_protocols(next_protocol, b"HTTP/1.1 101 Switching Protocols\r\n\r\n")


class TakeOverServer(tornado.httputil.HTTPServerConnectionDelegate):
    def __init__(self, taken: list[Any]) -> None:
        self.taken = taken

    def start_request(self, server_conn: object, request_conn: Any) -> TakeOverAtOnce:
        return TakeOverAtOnce(request_conn, self.taken)


class Misframed(tornado.httputil.HTTPMessageDelegate):
    """A delegate whose body disagrees with its own Content-Length (``/raw/<declared>/<sent>``)."""

    def __init__(self, connection: tornado.httputil.HTTPConnection) -> None:
        self.connection = connection

    def headers_received(self, start_line: Any, headers: Any) -> None:
        _, _, declared, sent = start_line.path.split("/")
        self.declared, self.sent = int(declared), int(sent)

    def finish(self) -> None:
        headers = tornado.httputil.HTTPHeaders({"Content-Length": str(self.declared)})
        start = tornado.httputil.ResponseStartLine("HTTP/1.1", 200, "OK")
        try:
            self.connection.write_headers(start, headers)
            self.connection.write(b"x" * self.sent)
            self.connection.finish()
        except tornado.httputil.HTTPOutputError as exc:
            logging.getLogger("tests.misframed").info("refused: %s", exc)


class MisframedServer(tornado.httputil.HTTPServerConnectionDelegate):
    def start_request(self, server_conn: object, request_conn: Any) -> Misframed:
        return Misframed(request_conn)


class Crashing(tornado.httputil.HTTPServerConnectionDelegate):
    def start_request(self, server_conn: object, request_conn: Any) -> Any:
        raise RuntimeError("a bug above the protocol")


@pytest.fixture
def gates() -> Gates:
    return Gates()


@pytest.fixture
def taken() -> list[Any]:
    return []


@pytest.fixture
def router(gates: Gates, taken: list[Any], tmp_path: Path) -> tornado.routing.RuleRouter:
    """The server's shape: a rule router in front of a Tornado ``Application``."""
    (tmp_path / "big.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    application = tornado.web.Application(
        [
            (r"/echo", Echo),
            (r"/gated/(\w+)", Gated, {"gates": gates}),
            (r"/upload", Upload),
            (r"/guarded", Guarded),
            (r"/chunks", Chunks),
            (r"/upgrade", Upgrade, {"taken": taken}),
            (r"/files/(.*)", Files, {"path": str(tmp_path), "gates": gates}),
        ],
        log_function=lambda handler: None,
    )
    return tornado.routing.RuleRouter(
        [
            tornado.routing.Rule(tornado.routing.PathMatches(r"/raw/.*"), MisframedServer()),
            tornado.routing.Rule(tornado.routing.PathMatches(r"/crash"), Crashing()),
            tornado.routing.Rule(tornado.routing.PathMatches(r"/at-once"), TakeOverServer(taken)),
            tornado.routing.Rule(tornado.routing.AnyMatches(), application),
        ]
    )


@pytest.fixture
def connect(router: tornado.routing.RuleRouter, gates: Gates) -> Any:
    """``connect(params=PARAMS, server=None, **transport)``: a new client connection."""

    def _connect(params: ServerParams = PARAMS, **options: Any) -> Client:
        return Client(router, params, watch=(gates.changed,), **options)

    return _connect


@pytest.fixture(autouse=True)
def no_library_noise() -> Iterator[None]:
    """Tornado's and asyncio's warnings count as noise too: an uncaught exception in a handler
    or a future whose exception nobody read is a bug of the protocol under them."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in ("tornado", "asyncio")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    assert [f"{r.name}: {r.getMessage()}" for r in records] == []


# -- keep-alive and pipelining ---------------------------------------------------------------------


async def test_keep_alive_answers_requests_one_after_another_on_one_connection(connect):
    client = connect()
    for n in range(3):
        client.request("GET", f"/echo?n={n}")
        response = (await client.wait_for(n + 1))[n]
        assert (response.status, tornado.escape.json_decode(response.body)["uri"]) == (
            200,
            f"/echo?n={n}",
        )
        assert "Connection" not in response.headers
    assert not client.transport.closing


async def test_pipelined_requests_are_answered_in_the_order_they_came(connect, gates):
    client = connect()
    client.send(
        raw("GET", "/gated/first") + raw("GET", "/echo") + raw("GET", "/gated/third"),
        "GET",
        "GET",
        "GET",
    )
    await client.until(lambda: gates.started == ["first"])
    assert client.transport.reading is False  # the others wait in the kernel, not in memory
    gates.open("third")  # ready early: must still come last
    assert client.finals() == []
    gates.open("first")
    first, second, third = await client.wait_for(3)
    assert (first.text, tornado.escape.json_decode(second.body)["uri"], third.text) == (
        "first",
        "/echo",
        "third",
    )
    assert gates.started == ["first", "third"]
    assert client.transport.reading and not client.transport.closing


async def test_a_request_split_in_single_bytes_is_answered(connect):
    client = connect()
    client.methods.append("POST")
    for byte in raw("POST", "/echo", body=b"piece by piece"):
        client.transport.receive(bytes([byte]))
    (response,) = await client.wait_for(1)
    assert (response.status, response.body) == (200, b"piece by piece")


# -- Expect: 100-continue --------------------------------------------------------------------------


async def test_expect_100_continue_is_answered_before_the_body_is_sent(connect):
    client = connect()
    client.request("PUT", "/upload", {"Expect": "100-continue", "Content-Length": "2048"})
    await client.until(lambda: client.responses())
    assert client.transport.written == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.send(b"a" * 2048)
    (response,) = await client.wait_for(1)
    assert tornado.escape.json_decode(response.body) == {"size": 2048}


async def test_no_100_continue_when_the_body_came_with_the_head(connect):
    client = connect()
    client.request("PUT", "/upload", {"Expect": "100-continue"}, body=b"already here")
    (response,) = await client.wait_for(1)
    assert [r.status for r in client.responses()] == [200]
    assert tornado.escape.json_decode(response.body) == {"size": 12}


async def test_expect_100_continue_with_a_body_too_large_gets_413_and_no_continue(connect):
    client = connect()
    client.request("PUT", "/upload", {"Expect": "100-continue", "Content-Length": "5000"})
    await client.wait_for(1)
    assert [r.status for r in client.responses()] == [413]
    assert client.transport.eof


async def test_no_100_continue_when_the_handler_refuses_in_prepare(connect):
    client = connect()
    client.request("PUT", "/guarded", {"Expect": "100-continue", "Content-Length": "2048"})
    await client.closed()  # the unread body would be read as the next request
    assert [r.status for r in client.responses()] == [401]


# -- HEAD and bodies -------------------------------------------------------------------------------


async def test_head_gets_the_headers_of_get_without_a_body(connect):
    client = connect()
    client.send(raw("HEAD", "/echo") + raw("GET", "/echo"), "HEAD", "GET")
    head, get = await client.wait_for(2)
    assert head.body == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == str(len(get.body))
    assert tornado.escape.json_decode(get.body)["uri"] == "/echo"


async def test_head_of_a_static_file_sends_its_length_and_no_body(connect):
    client = connect()
    client.send(raw("HEAD", "/files/big.bin") + raw("GET", "/echo"), "HEAD", "GET")
    head, echo = await client.wait_for(2)
    assert (head.status, head.headers["Content-Length"], head.body) == (200, "1048576", b"")
    assert echo.status == 200  # nothing of the file was read as the next response


async def test_chunked_request_body_is_reassembled(connect):
    client = connect()
    body = b"5\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\n\r\n"
    client.request("POST", "/echo", {"Transfer-Encoding": "chunked"}, body)
    (response,) = await client.wait_for(1)
    assert response.body == b"hello, world"


async def test_response_of_unknown_length_is_chunked_for_http11(connect):
    client = connect()
    client.request("GET", "/chunks")
    (response,) = await client.wait_for(1)
    assert (response.headers["Transfer-Encoding"], response.body) == ("chunked", b"one,two")
    assert client.transport.written.endswith(b"4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n")
    assert not client.transport.closing


async def test_response_of_unknown_length_ends_the_connection_for_http10(connect):
    client = connect()
    client.request("GET", "/chunks", {"Connection": "keep-alive"}, version="HTTP/1.0")
    await client.closed()
    (response,) = client.finals()
    assert "Transfer-Encoding" not in response.headers
    assert response.body == b"one,two"


@pytest.mark.parametrize(("declared", "sent"), [(5, 9), (9, 5)])
async def test_a_body_that_disagrees_with_its_content_length_closes_the_connection(
    connect, caplog, declared, sent
):
    """Tornado's rule: the next response would otherwise be read as part of this one."""
    caplog.set_level(logging.INFO, "tests.misframed")
    client = connect()
    client.send(raw("GET", f"/raw/{declared}/{sent}") + raw("GET", "/echo"), "GET", "GET")
    await client.closed()
    assert "Content-Length" in caplog.text
    assert b'"uri"' not in client.transport.written  # the pipelined request was not answered


# -- refusals the protocol answers itself ----------------------------------------------------------


async def refused(client: Client, data: bytes) -> Response:
    """Send ``data``; the one response, which must be followed by the end of the connection."""
    client.send(data, "GET")
    await client.until(lambda: client.transport.eof or client.transport.closing)
    (response,) = client.finals()
    assert response.headers["Connection"] == "close"
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    return response


def error_of(response: Response) -> str:
    return tornado.escape.json_decode(response.body)["error"]


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        (
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "malformed HTTP request: Transfer-Encoding can't be present with Content-Length",
        ),
        (
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "malformed HTTP request: Duplicate Content-Length",
        ),
        (
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            "malformed HTTP request: Duplicate Content-Length",
        ),
        ("Content-Length: 5, 5\r\n", "malformed HTTP request: Invalid character in Content-Length"),
        ("Transfer-Encoding: gzip\r\n", "unsupported Transfer-Encoding: gzip"),
        ("Transfer-Encoding: gzip, chunked\r\n", "unsupported Transfer-Encoding: gzip, chunked"),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "malformed HTTP request: Invalid `Transfer-Encoding` header value",
        ),
    ],
    ids=["cl-and-te", "two-cl", "two-equal-cl", "cl-list", "te-gzip", "te-gzip-chunked", "two-te"],
)
async def test_request_smuggling_shapes_are_refused_with_400(connect, headers, error):
    client = connect()
    head = f"POST /echo HTTP/1.1\r\nHost: squall.test\r\n{headers}\r\n".encode()
    response = await refused(client, head + b"0\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (response.status, error_of(response)) == (400, error)
    assert b'"uri"' not in client.transport.written  # the smuggled request was never served


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello on the plain port
    ],
    ids=["bare-lf", "obs-fold", "space-before-colon", "nul", "bad-chunk-size", "tls-hello"],
)
async def test_malformed_requests_get_400_naming_the_cause(connect, data):
    response = await refused(connect(), data)
    assert response.status == 400
    assert error_of(response).startswith("malformed HTTP request: ")


async def test_request_without_host_gets_400_as_from_tornado(connect):
    response = await refused(connect(), b"GET /echo HTTP/1.1\r\n\r\n")
    assert (response.status, error_of(response)) == (
        400,
        "malformed HTTP request: Missing Host header",
    )


async def test_http2_request_line_gets_505(connect):
    response = await refused(connect(), b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
    assert (response.status, error_of(response)) == (
        505,
        "HTTP/2.0 is not supported: send HTTP/1.1",
    )


async def test_declared_body_over_maxBodySize_gets_413_before_it_is_sent(connect):
    client = connect()
    response = await refused(client, raw("POST", "/echo", {"Content-Length": "4097"}))
    assert (response.status, error_of(response)) == (
        413,
        "the request body is larger than servers.web.maxBodySize (4096 bytes)",
    )


async def test_a_refusal_carries_the_configured_headers(connect):
    """servers.web.httpHeaders are on every response: a page reading a 413 across origins needs
    Access-Control-Allow-Origin on it like on any other."""
    headers = (("Access-Control-Allow-Origin", "*"), ("X-Powered-By", "squall"))
    client = connect(dataclasses.replace(PARAMS, headers=headers))
    response = await refused(client, raw("POST", "/echo", {"Content-Length": "4097"}))
    assert response.status == 413
    assert (response.headers["Access-Control-Allow-Origin"], response.headers["X-Powered-By"]) == (
        "*",
        "squall",
    )


async def test_a_refusal_after_the_head_carries_the_cookie_for_that_head(connect):
    """The fingerprint cookie (PROTOCOL.md §4) is on a 413 as on every response to a request
    without one; a head too large to be read gets none."""

    def cookie(head):
        return None if "Cookie" in head else f"sessionID=new-for-{head['X-Who']}"

    params = dataclasses.replace(PARAMS, cookie=cookie)
    too_large = {"Content-Length": "4097", "X-Who": "me"}
    response = await refused(connect(params), raw("POST", "/echo", too_large))
    assert (response.status, response.headers.get_list("Set-Cookie")) == (
        413,
        ["sessionID=new-for-me"],
    )
    with_cookie = {**too_large, "Cookie": "sessionID=known"}
    response = await refused(connect(params), raw("POST", "/echo", with_cookie))
    assert (response.status, response.headers.get_list("Set-Cookie")) == (413, [])
    response = await refused(connect(params), raw("GET", "/echo", {"X-Big": "h" * 1100}))
    assert (response.status, response.headers.get_list("Set-Cookie")) == (431, [])


async def test_chunked_body_growing_past_maxBodySize_gets_413(connect):
    client = connect()
    client.send(raw("POST", "/echo", {"Transfer-Encoding": "chunked"}), "POST")
    chunk = b"800\r\n" + b"z" * 0x800 + b"\r\n"
    client.transport.receive(chunk * 2)  # 4096: still allowed
    assert client.finals() == []
    client.transport.receive(chunk)
    await client.until(lambda: client.transport.eof)
    (response,) = client.finals()
    assert response.status == 413


async def test_head_over_maxHeaderSize_in_one_piece_gets_431(connect):
    response = await refused(connect(), raw("GET", "/echo", {"X-Big": "h" * 1100}))
    assert (response.status, error_of(response)) == (
        431,
        "the request head is larger than servers.web.maxHeaderSize (1024 bytes)",
    )


async def test_head_growing_past_maxHeaderSize_without_end_gets_431(connect):
    """A header that never ends is bounded too, though llhttp reports nothing until it does."""
    client = connect()
    client.send(b"GET /echo HTTP/1.1\r\nX-Endless: ", "GET")
    for _ in range(11):
        client.transport.receive(b"e" * 100)
    await client.until(lambda: client.transport.eof)
    assert [r.status for r in client.finals()] == [431]


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"GET /echo HTTP/1.1\r\nHost: slow", "head"),
        (raw("POST", "/echo", {"Content-Length": "100"}, b"only a part"), "body"),
    ],
)
async def test_head_or_body_that_does_not_arrive_in_time_gets_408(connect, data, what):
    client = connect(FAST_TIMEOUTS)
    client.send(data, "GET")
    await client.until(lambda: client.transport.eof)
    (response,) = client.finals()
    assert (response.status, error_of(response)) == (
        408,
        f"the request {what} did not arrive in time",
    )


async def test_idle_keep_alive_connection_is_closed_without_a_response(connect):
    client = connect(FAST_TIMEOUTS)
    client.request("GET", "/echo")
    await client.wait_for(1)
    await client.closed()
    assert len(client.finals()) == 1 and not client.transport.eof


async def test_bytes_after_a_refusal_are_read_and_dropped(connect):
    """The refused client may go on sending; its bytes are read (a reset could destroy the
    refusal before it is read) and never parsed."""
    client = connect()
    await refused(client, b"GET / HTTP/2.0\r\n\r\n")
    assert client.transport.reading
    client.transport.receive(raw("GET", "/echo"))
    assert len(client.finals()) == 1


async def test_garbage_after_a_pipelined_request_is_refused_after_its_answer(connect, gates):
    client = connect()
    client.send(raw("GET", "/gated/slow") + b"NOT HTTP AT ALL\r\n\r\n", "GET", "GET")
    await client.until(lambda: gates.started == ["slow"])
    assert client.finals() == []  # the refusal waits for the answer before it
    gates.open("slow")
    await client.until(lambda: client.transport.eof)
    answer, refusal = client.finals()
    assert (answer.status, answer.text) == (200, "slow")
    assert (refusal.status, refusal.headers["Connection"]) == (400, "close")


async def test_delegate_that_raises_gets_500_and_the_traceback_is_logged(connect, caplog):
    client = connect()
    response = await refused(client, raw("GET", "/crash"))
    assert (response.status, error_of(response)) == (500, "internal error: see the server log")
    (record,) = [r for r in caplog.records if r.name == "squall.http"]
    assert record.getMessage() == "uncaught exception handling GET /crash from 203.0.113.7"
    assert "a bug above the protocol" in caplog.text


# -- when the connection closes --------------------------------------------------------------------


async def test_connection_close_request_is_answered_then_closed(connect):
    client = connect()
    client.request("GET", "/echo", {"Connection": "close"})
    await client.closed()
    (response,) = client.finals()
    assert (response.status, response.headers["Connection"]) == (200, "close")


async def test_http10_without_keep_alive_is_closed_after_its_response(connect):
    client = connect()
    client.request("GET", "/echo", version="HTTP/1.0")
    await client.closed()
    (response,) = client.finals()
    assert tornado.escape.json_decode(response.body)["version"] == "HTTP/1.0"
    assert "Connection" not in response.headers


async def test_http10_keep_alive_is_kept_and_said(connect):
    client = connect()
    client.request("GET", "/echo", {"Connection": "keep-alive"}, version="HTTP/1.0")
    (response,) = await client.wait_for(1)
    assert response.headers["Connection"] == "Keep-Alive"
    assert not client.transport.closing


async def test_client_leaving_mid_response_reaches_the_handler_and_logs_nothing(connect, gates):
    client = connect()
    client.request("GET", "/gated/abandoned")
    await client.until(lambda: gates.started == ["abandoned"])
    client.transport.peer_left()
    await client.until(lambda: gates.lost == ["abandoned"])
    gates.open("abandoned")  # the handler writes to a connection that is gone: no error
    await client.until(lambda: gates.finished == ["abandoned"])
    assert client.finals() == []


async def test_client_leaving_mid_static_file_stops_the_download_quietly(connect, gates):
    """StaticFileHandler catches Tornado's StreamClosedError when a flush fails: the protocol
    must fail a write to a vanished client with that, not with an error of its own."""
    client = connect(high_water=65536)
    client.request("GET", "/files/big.bin")
    await client.until(lambda: len(client.transport.written) > 65536)
    client.transport.peer_left()
    await client.until(lambda: gates.finished == ["/files/big.bin"])
    assert len(client.transport.written) < 1048576


async def test_slow_reader_gets_the_file_as_it_drains(connect):
    client = connect(high_water=65536)
    client.request("GET", "/files/big.bin")
    while not client.finals():
        await client.until(lambda: client.transport.buffered > 65536 or client.finals())
        client.transport.drain()
    (response,) = client.finals()
    assert response.body == bytes(range(256)) * 4096


# -- context, shutdown and upgrade -----------------------------------------------------------------


async def test_peer_address_and_scheme_come_from_the_transport(connect):
    client = connect(secure=True)
    client.request("GET", "/echo", {"X-Forwarded-For": "198.51.100.1"})
    (response,) = await client.wait_for(1)
    seen = tornado.escape.json_decode(response.body)
    assert (seen["ip"], seen["scheme"]) == ("203.0.113.7", "https")  # no proxy trusted


async def test_trusted_proxy_headers_give_the_client_address_and_scheme(connect):
    params = ServerParams(
        max_header_size=1024,
        max_body_size=4096,
        idle_timeout=5.0,
        body_timeout=5.0,
        trust_proxy=True,
    )
    client = connect(params)
    headers = {"X-Forwarded-For": "10.0.0.1, 198.51.100.1", "X-Forwarded-Proto": "https"}
    client.request("GET", "/echo", headers)
    (response,) = await client.wait_for(1)
    seen = tornado.escape.json_decode(response.body)
    assert (seen["ip"], seen["scheme"]) == ("198.51.100.1", "https")


async def test_shutdown_closes_idle_connections_now_and_busy_ones_after_their_answer(
    router, connect, gates
):
    server = HTTPServer(router, PARAMS)
    idle, busy = connect(server=server), connect(server=server)
    busy.request("GET", "/gated/last")
    await busy.until(lambda: gates.started == ["last"])
    closing = asyncio.ensure_future(server.close_all_connections())
    await idle.closed()
    assert not closing.done() and not busy.transport.closing
    gates.open("last")
    await asyncio.wait_for(closing, TIMEOUT)
    (response,) = busy.finals()
    assert (response.text, response.headers["Connection"]) == ("last", "close")


@pytest.mark.parametrize("path", ["/upgrade", "/at-once"], ids=["handler", "bare-delegate"])
async def test_upgrade_hands_the_transport_and_the_bytes_after_the_head_to_the_next_protocol(
    router, connect, taken, path
):
    server = HTTPServer(router, PARAMS)
    client = connect(server=server)
    upgrade = raw("GET", path, {"Connection": "Upgrade", "Upgrade": "websocket"})
    client.send(upgrade + b"\x81\x85first-frame-bytes", "GET")
    await client.until(lambda: taken)
    (next_protocol,) = taken
    assert client.transport.written == b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    assert client.transport.protocol is next_protocol
    assert next_protocol.received == b"\x81\x85first-frame-bytes"
    assert client.transport.reading
    assert server.connections == set()  # no longer an HTTP connection to wait for at shutdown
    client.transport.receive(b"more")
    assert next_protocol.received.endswith(b"more")
