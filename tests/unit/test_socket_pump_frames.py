"""The pump's own reading of whole data frames, without a socket (handlers/websocket.py).

The pump reads a whole, final, masked text or binary frame itself while websockets' protocol is
open and between frames; every other byte goes to the protocol, in order. What is pinned here is
where that line runs: which bytes the protocol was given (recorded), and that the client sees
the replies and close codes the protocol's path gives (PROTOCOL.md §6).
"""

from __future__ import annotations

import pytest
from websockets.frames import Close, Frame, Opcode

from squall import Squall, codec

from .test_socket_pump import LIMIT, Peer, make_registry, open_peer

APP = """
    from squall import Input, action


    @action(inputs={"word": Input(required=True)})
    async def echo(data):
        return {"word": data.params["word"]}
"""


@pytest.fixture
async def app(make_app) -> Squall:
    return await make_app(files={"actions/app.py": APP})


@pytest.fixture
def registry(app: Squall):
    return make_registry(app)


def request(message_id: int, word: str = "hi") -> bytes:
    """An ``echo`` call as JSON."""
    call = {"event": "action", "params": {"action": "echo", "word": word}}
    return codec.dumps({**call, "messageId": message_id})


def masked(opcode: Opcode, payload: bytes, fin: bool = True) -> bytes:
    """A client frame, masked with a random key as a browser masks it."""
    return Frame(opcode, payload, fin).serialize(mask=True)


def text(message_id: int, word: str = "hi") -> bytes:
    return masked(Opcode.TEXT, request(message_id, word))


def record_protocol_input(peer: Peer) -> bytearray:
    """Every byte the pump hands to websockets' protocol from now on."""
    given = bytearray()
    protocol = peer.pump.protocol
    receive_data = protocol.receive_data

    def recording(data: bytes) -> None:
        given.extend(data)
        receive_data(data)

    protocol.receive_data = recording  # type: ignore[method-assign]
    return given


async def test_several_whole_frames_in_one_read_are_each_read_by_the_pump(app, registry):
    peer = await open_peer(app, registry)
    given = record_protocol_input(peer)
    peer.transport.receive(text(1, "one") + text(2, "two") + text(3, "three"))
    assert [(await peer.reply(n))["word"] for n in (1, 2, 3)] == ["one", "two", "three"]
    peer.transport.receive(masked(Opcode.BINARY, b"\x00\x01"))
    await peer.until(lambda: "error" in peer.messages()[-1])
    assert given == b""


@pytest.mark.parametrize(
    ("word", "cut"),
    [
        ("hi", 1),  # inside the first two header bytes
        ("hi", 2),  # after them, before the masking key
        ("hi", 4),  # inside the masking key
        ("hi", 9),  # inside the payload
        ("w" * 200, 3),  # inside the 16-bit length
        ("w" * 200, 8),  # right after the header
    ],
)
async def test_a_frame_cut_across_reads_is_the_protocols_and_the_next_whole_one_the_pumps(
    app, registry, word, cut
):
    peer = await open_peer(app, registry)
    given = record_protocol_input(peer)
    cut_frame = text(1, word)
    peer.transport.receive(cut_frame[:cut])
    peer.transport.receive(cut_frame[cut:] + text(2, "after"))
    assert (await peer.reply(1))["word"] == word
    assert (await peer.reply(2))["word"] == "after"
    assert given == cut_frame


async def test_a_frame_in_three_reads_then_whole_ones_in_the_last(app, registry):
    peer = await open_peer(app, registry)
    given = record_protocol_input(peer)
    long_frame = text(1, "l" * 70)
    peer.transport.receive(long_frame[:1])
    peer.transport.receive(long_frame[1:30])
    peer.transport.receive(long_frame[30:] + text(2) + text(3))
    assert [(await peer.reply(n))["word"] for n in (1, 2, 3)] == ["l" * 70, "hi", "hi"]
    assert given == long_frame


async def test_a_ping_between_whole_frames_is_answered_and_they_are_read(app, registry):
    peer = await open_peer(app, registry)
    given = record_protocol_input(peer)
    ping = masked(Opcode.PING, b"between")
    peer.transport.receive(text(1) + ping + text(2))
    assert [(await peer.reply(n))["word"] for n in (1, 2)] == ["hi", "hi"]
    assert [f.data for f in peer.frames if f.opcode is Opcode.PONG] == [b"between"]
    assert given == ping


async def test_a_close_after_a_whole_frame_is_echoed_and_nothing_after_it_is_read(app, registry):
    peer = await open_peer(app, registry)
    given = record_protocol_input(peer)
    close, after = masked(Opcode.CLOSE, Close(1000, "bye").serialize()), text(2)
    peer.transport.receive(masked(Opcode.BINARY, b"\x00") + close + after)
    assert (await peer.close_received()) == Close(1000, "bye")
    assert app.stats.frames_in == 1  # the binary frame, read before the close
    assert peer.connection.closed
    # the protocol discards what follows a close (then comes the client's answer to the echo)
    assert given.startswith(close + after)


async def test_fragments_after_a_whole_frame_are_reassembled_by_the_protocols_path(app, registry):
    peer = await open_peer(app, registry)
    given = record_protocol_input(peer)
    pieced = request(2, "pieced")
    fragments = masked(Opcode.TEXT, pieced[:7], fin=False) + masked(Opcode.CONT, pieced[7:])
    peer.transport.receive(text(1) + fragments + text(3))
    assert [(await peer.reply(n))["word"] for n in (1, 2, 3)] == ["hi", "pieced", "hi"]
    assert given == fragments


async def test_a_whole_frame_inside_a_fragmented_message_closes_1002(app, registry):
    peer = await open_peer(app, registry)
    peer.transport.receive(masked(Opcode.TEXT, b'{"event"', fin=False) + text(1))
    close = await peer.close_received()
    assert (close.code, close.reason) == (1002, "expected a continuation frame")
    assert app.stats.frames_in == 0


async def test_text_that_is_not_utf8_after_a_whole_frame_closes_1007(app, registry):
    peer = await open_peer(app, registry)
    peer.transport.receive(
        masked(Opcode.BINARY, b"\x00") + masked(Opcode.TEXT, b'{"event": "\xff"}') + text(2)
    )
    close = await peer.close_received()
    assert (close.code, close.reason) == (1007, "invalid UTF-8 at position 11")
    assert app.stats.frames_in == 1  # the binary frame before it; nothing after it


async def test_a_frame_of_exactly_maxMessageSize_is_read_and_one_byte_more_closes_1009(
    app, registry
):
    peer = await open_peer(app, registry)
    given = record_protocol_input(peer)
    padding = "p" * (LIMIT - len(request(1, "")))
    assert len(request(1, padding)) == LIMIT
    peer.transport.receive(text(1, padding))
    assert (await peer.reply(1))["word"] == padding
    assert given == b""
    oversized = masked(Opcode.TEXT, b"x" * (LIMIT + 1))
    peer.transport.receive(oversized)
    assert (await peer.close_received()).code == 1009  # the reason: test_socket_pump.py
    assert given.startswith(oversized)  # then the client's answer to the close


async def test_an_unmasked_frame_after_a_whole_frame_closes_1002(app, registry):
    peer = await open_peer(app, registry)
    unmasked = Frame(Opcode.BINARY, b"\x00").serialize(mask=False)
    peer.transport.receive(masked(Opcode.BINARY, b"\x00") + unmasked + text(3))
    close = await peer.close_received()
    assert (close.code, close.reason) == (1002, "incorrect masking")
    assert app.stats.frames_in == 1


async def test_with_permessage_deflate_every_frame_goes_to_the_protocol(app, registry):
    peer = await Peer(app, registry, deflate=True).welcomed()
    given = record_protocol_input(peer)
    peer.client.send_text(request(1, "squeezed " * 20))
    sent = b"".join(peer.client.data_to_send())
    peer.transport.receive(sent)
    assert (await peer.reply(1))["word"] == "squeezed " * 20
    assert sent[0] & 0x40  # RSV1: the client compressed it
    plain = text(2, "plain")  # a message may also come uncompressed (RFC 7692 6)
    peer.transport.receive(plain)
    assert (await peer.reply(2))["word"] == "plain"
    assert given == sent + plain
