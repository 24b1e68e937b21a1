"""handlers/websocket.py's pump without a socket: websockets' own sans-I/O client protocol at the
other end of a :class:`~tests.unit.wire.WireTransport`, a real :class:`~squall.Squall` behind.

The closing handshake's states are websockets' (its ``Protocol`` is tested upstream); what is
pinned here is Squall's use of them: which code and reason each cause sends (PROTOCOL.md §6),
that the application forgets a socket when its close frame arrives, that a peer that never
answers our close is dropped, the broadcast frame built once for every member, and that every
byte written (pongs included) counts toward ``maxBufferedBytes``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, Side, State

import handlers.websocket
import server
from handlers.websocket import SocketPump, SocketRegistry, text_frame
from squall import Squall, codec
from squall.connections import Connection

from .wire import WireTransport, until

APP = """
    from squall import ConnectionMiddleware, Input, action


    def members_only(connection):
        if connection.remote_ip == "198.51.100.9":
            raise PermissionError("members only")


    gate = ConnectionMiddleware(name="gate", create=members_only)


    @action(inputs={"word": Input(required=True)})
    async def echo(data):
        return {"word": data.params["word"]}
"""

LIMIT = 1024  # maxMessageSize of these sockets
BUFFERED = 8192  # maxBufferedBytes of these sockets


@pytest.fixture
async def app(make_app) -> Squall:
    return await make_app(files={"actions/app.py": APP})


@pytest.fixture
def registry(app: Squall) -> SocketRegistry:
    return make_registry(app)


def make_registry(app: Squall, ping_interval_ms: int = 25000, timeout_ms: int = 60000) -> Any:
    return SocketRegistry(
        app,
        ping_interval_ms=ping_interval_ms,
        timeout_ms=timeout_ms,
        max_message_size=LIMIT,
        max_buffered_bytes=BUFFERED,
        welcome="Hello from the pump",
    )


class Peer:
    """A client at the other end of one pump: websockets' sans-I/O client, which masks with a
    random key per frame as a browser does, answers pings and close frames, and checks what the
    server sends as strictly as it checks its own input."""

    def __init__(
        self,
        app: Squall,
        registry: SocketRegistry,
        remote_ip: str = "127.0.0.1",
        deflate: bool = False,
    ):
        self.transport = WireTransport()
        self.client = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
        self.connection = Connection("webSocket", remote_ip, 50000)
        protocol = Protocol(Side.SERVER, state=State.OPEN, max_size=registry.max_message_size)
        if deflate:  # permessage-deflate negotiated, as websockets' defaults would
            self.client.extensions = [PerMessageDeflate(False, False, 15, 15)]
            protocol.extensions = [PerMessageDeflate(False, False, 15, 15)]
        self.pump = SocketPump(app, registry, self.connection, protocol)
        self.transport.protocol = self.pump
        self.pump.connection_made(self.transport)
        self.read = 0
        self.frames: list[Frame] = []

    # -- client to server
    def flush(self) -> None:
        """Send what the client protocol wrote (frames, pongs, its close answer)."""
        for data in self.client.data_to_send():
            if data:
                self.transport.receive(data)

    def send(self, message: dict[str, Any]) -> None:
        self.client.send_text(codec.dumps(message))
        self.flush()

    # -- server to client
    def pull(self) -> None:
        """Read what the server wrote; the client answers pings and close frames itself."""
        new = bytes(self.transport.written[self.read :])
        self.read = len(self.transport.written)
        if new:
            self.client.receive_data(new)
            self.frames += self.client.events_received()
            self.flush()

    async def until(self, condition: Any) -> None:
        def pulled() -> bool:
            self.pull()
            return bool(condition())

        await until(pulled, self.transport.changed)

    def messages(self) -> list[Any]:
        return [codec.loads(f.data) for f in self.frames if f.opcode is Opcode.TEXT]

    async def welcomed(self) -> Peer:
        await self.until(lambda: any("welcome" in m for m in self.messages()))
        return self

    async def reply(self, message_id: int) -> dict[str, Any]:
        def found() -> Any:
            return [m for m in self.messages() if m.get("messageId") == message_id]

        await self.until(found)
        return found()[0]

    async def close_received(self) -> Close:
        await self.until(lambda: self.client.close_rcvd is not None)
        return self.client.close_rcvd

    def hang_up(self) -> None:
        """The client closes its TCP connection (what follows its close frame)."""
        self.transport.close()


async def open_peer(app: Squall, registry: SocketRegistry, **options: Any) -> Peer:
    return await Peer(app, registry, **options).welcomed()


# -- messages ----------------------------------------------------------------------------------


async def test_welcome_then_replies_to_verbs(app, registry):
    peer = await open_peer(app, registry)
    assert peer.messages()[0] == {"context": "api", "welcome": "Hello from the pump"}
    peer.send({"event": "action", "params": {"action": "echo", "word": "hi"}, "messageId": 1})
    assert (await peer.reply(1))["word"] == "hi"


HANDSHAKE = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
WELCOME = text_frame(b'{"context":"api","welcome":"Hello from the pump"}')

PATIENT_APP = """
    import asyncio

    from squall import ConnectionMiddleware


    async def looks_something_up(connection):
        await asyncio.sleep(0)  # suspends, as a middleware that asks a database does


    patient = ConnectionMiddleware(name="patient", create=looks_something_up)
"""


async def writes_until_welcomed(app: Squall, registry: SocketRegistry) -> list[bytes]:
    """The writes of a pump handed the 101 response, up to the welcome."""
    transport = WireTransport()
    protocol = Protocol(Side.SERVER, state=State.OPEN, max_size=registry.max_message_size)
    connection = Connection("webSocket", "127.0.0.1", 50000)
    pump = SocketPump(app, registry, connection, protocol, HANDSHAKE)
    transport.protocol = pump
    pump.connection_made(transport)
    await until(lambda: transport.written.endswith(WELCOME), transport.changed)
    return [bytes(data) for data in transport.writes]


async def test_the_101_and_the_welcome_go_out_in_one_write(app, registry):
    assert await writes_until_welcomed(app, registry) == [HANDSHAKE + WELCOME]


async def test_a_connection_middleware_that_waits_delays_the_welcome_not_the_101(make_app):
    app = await make_app(files={"actions/patient.py": PATIENT_APP})
    assert await writes_until_welcomed(app, make_registry(app)) == [HANDSHAKE, WELCOME]


async def test_fragmented_text_with_a_ping_between_fragments_is_one_message(app, registry):
    peer = await open_peer(app, registry)
    text = codec.dumps({"event": "action", "params": {"action": "echo", "word": "pieced"}})
    text = text[:-1] + b',"messageId":2}'
    pieces = [text[i : i + 5] for i in range(0, len(text), 5)]
    peer.client.send_text(pieces[0], fin=False)
    for piece in pieces[1:-1]:
        peer.client.send_continuation(piece, fin=False)
        peer.client.send_ping(b"between")
    peer.client.send_continuation(pieces[-1], fin=True)
    peer.flush()
    assert (await peer.reply(2))["word"] == "pieced"
    pongs = [f for f in peer.frames if f.opcode is Opcode.PONG]
    assert [f.data for f in pongs] == [b"between"] * (len(pieces) - 2)


async def test_messages_before_the_welcome_wait_for_it(app, registry):
    peer = Peer(app, registry)
    peer.send({"event": "action", "params": {"action": "echo", "word": "early"}, "messageId": 3})
    assert (await peer.reply(3))["word"] == "early"
    first = peer.messages()[0]
    assert "welcome" in first


# -- the close codes Squall sends ----------------------------------------------------------------


async def test_message_over_maxMessageSize_closes_1009(app, registry):
    peer = await open_peer(app, registry)
    peer.client.send_text(b"x" * (LIMIT + 1))
    peer.flush()
    close = await peer.close_received()
    assert (close.code, close.reason) == (
        1009,
        f"frame with {LIMIT + 1} bytes exceeds limit of {LIMIT} bytes",
    )


async def test_fragments_adding_up_past_maxMessageSize_close_1009(app, registry):
    peer = await open_peer(app, registry)
    peer.client.send_text(b"y" * (LIMIT // 2), fin=False)
    peer.client.send_continuation(b"y" * (LIMIT // 2), fin=False)
    peer.client.send_continuation(b"y", fin=True)
    peer.flush()
    assert (await peer.close_received()).code == 1009


async def test_text_that_is_not_utf8_closes_1007_naming_the_position(app, registry, caplog):
    caplog.set_level(logging.INFO, "squall.websocket")
    peer = await open_peer(app, registry)
    peer.client.send_text(b'{"event": "\xff"}')
    peer.flush()
    close = await peer.close_received()
    assert (close.code, close.reason) == (1007, "invalid UTF-8 at position 11")


async def test_unmasked_client_frame_closes_1002(app, registry):
    peer = await open_peer(app, registry)
    peer.transport.receive(Frame(Opcode.TEXT, b'{"event":"ping"}').serialize(mask=False))
    close = await peer.close_received()
    assert (close.code, close.reason) == (1002, "incorrect masking")


async def test_destroy_closes_4000(app, registry):
    peer = await open_peer(app, registry)
    peer.connection.destroy()
    close = await peer.close_received()
    assert (close.code, close.reason) == (4000, "connection destroyed")


async def test_refused_by_connection_middleware_closes_4001_with_its_reason(app, registry, caplog):
    caplog.set_level(logging.INFO, "squall.websocket")
    peer = Peer(app, registry, remote_ip="198.51.100.9")
    close = await peer.close_received()
    assert (close.code, close.reason) == (4001, "members only")
    assert not any("welcome" in m for m in peer.messages())


async def test_reader_that_stopped_reading_closes_1008(app, registry, caplog):
    peer = await open_peer(app, registry)
    pushed = {"context": "user", "message": "m" * 1000}
    while peer.pump.open:  # the transport never drains: the client reads nothing
        peer.connection.send(pushed)
    close = await peer.close_received()
    assert (close.code, close.reason) == (1008, "outbound buffer full: the client is not reading")
    assert peer.connection.closed  # forgotten at once, not when the TCP connection goes
    assert "stopped reading" in caplog.text


async def test_pongs_count_toward_maxBufferedBytes(app, registry, caplog):
    """A client that sends pings and never reads fills the server's buffer with pongs."""
    peer = await open_peer(app, registry)
    pings = 0
    while peer.pump.open:
        peer.client.send_ping(b"p" * 125)
        peer.flush()
        pings += 1
    assert pings * 127 > BUFFERED - 2000  # the pongs, not the welcome, filled it
    close = await peer.close_received()
    assert close.code == 1008


@pytest.mark.parametrize(
    ("destroy", "code", "reason"),
    [(False, 1001, "the server is shutting down"), (True, 4000, "connection destroyed")],
)
async def test_shutdown_closes_every_socket_and_waits_for_the_peers(
    make_app, destroy, code, reason
):
    extra = f"servers:\n  websocket:\n    destroyClientsOnShutdown: {str(destroy).lower()}\n"
    app = await make_app(files={"actions/app.py": APP}, extra_yaml=extra)
    registry = make_registry(app)
    peers = [await open_peer(app, registry) for _ in range(3)]
    task = asyncio.ensure_future(server.close_sockets(app, registry))
    for peer in peers:
        close = await peer.close_received()
        assert (close.code, close.reason) == (code, reason)
        assert peer.transport.eof  # the server half-closed after the handshake
        peer.hang_up()
    await asyncio.wait_for(task, 5)
    assert len(registry) == 0
    assert not any(peer.transport.aborted for peer in peers)


# -- the closing handshake ---------------------------------------------------------------------


async def test_peer_close_is_answered_and_the_connection_forgotten_at_once(app, registry):
    peer = await open_peer(app, registry)
    peer.client.send_close(1000, "bye")
    peer.flush()
    close = await peer.close_received()
    assert (close.code, close.reason) == (1000, "bye")  # echoed, as RFC 6455 5.5.1 says
    assert peer.connection.closed  # forgotten at once, not when the TCP connection goes
    assert peer.transport.eof and not peer.transport.closing  # the client closes TCP first
    peer.hang_up()
    await until(lambda: len(registry) == 0, peer.transport.changed)


async def test_peer_that_never_answers_our_close_is_dropped(app, registry, monkeypatch):
    monkeypatch.setattr(handlers.websocket, "CLOSE_GRACE", 0.01)
    peer = await open_peer(app, registry)
    peer.pump.close(4000, "going")
    assert peer.pump.protocol.state is State.CLOSING
    await until(lambda: peer.transport.aborted, peer.transport.changed)
    assert len(registry) == 0 and peer.connection.closed


async def test_long_close_reason_is_cut_to_fit_the_frame_without_splitting_a_character(
    app, registry
):
    peer = await open_peer(app, registry)
    peer.pump.close(4000, "é" * 100)
    close = await peer.close_received()
    assert close.reason == "é" * 61  # 122 bytes: 123 would split the 62nd character


# -- what every socket shares -------------------------------------------------------------------


async def test_broadcast_is_framed_once_and_the_same_bytes_written_to_every_member(app, registry):
    peers = [await open_peer(app, registry) for _ in range(3)]
    app.connections.deliver_all({"context": "user", "message": "to all"})
    frames = [peer.transport.writes[-1] for peer in peers]
    assert frames[0] is frames[1] is frames[2]
    for peer in peers:
        await peer.until(lambda p=peer: p.messages()[-1].get("message") == "to all")


async def test_heartbeat_pings_every_socket_and_drops_the_silent_ones(app, caplog):
    caplog.set_level(logging.INFO, "squall.websocket")
    registry = make_registry(app, ping_interval_ms=20, timeout_ms=1000)
    talking, silent = await open_peer(app, registry), await open_peer(app, registry)
    silent.pump.last_seen -= 120  # nothing heard from it for two minutes
    registry.start()
    try:
        await talking.until(lambda: any(f.opcode is Opcode.PING for f in talking.frames))
        await until(lambda: silent.transport.aborted, silent.transport.changed)
    finally:
        registry.stop()
    assert not talking.transport.closing
    assert f"dropping {silent.connection.id}: silent for 120 s" in caplog.text


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 70_000])
def test_text_frame_is_the_frame_websockets_builds(size):
    payload = b"t" * size
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)
