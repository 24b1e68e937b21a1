"""The socket pump cross-checked against the websockets client: Autobahn's suite has
no working Python 3 package, so a second, independent RFC 6455 implementation stands in for it.

Every test runs twice, on a server with ``compression: false`` and one with ``compression: true``
(permessage-deflate negotiated). The client is websockets' own: it masks with a random key per
frame, offers permessage-deflate, and fails the connection on anything the server sends that RFC
6455 or RFC 7692 forbids, so a passing test also means every frame the server wrote was valid.
What is asserted is what that client observes: the close code and reason, and the messages.

The close codes Squall sends, and where the websockets client observes each:

| code | cause | test |
|---|---|---|
| echo of the peer's | the client closed | here |
| 1001 | shutdown | test_shutdown.py |
| 1002 | a protocol violation | here |
| 1007 | text that is not UTF-8 | here |
| 1008 | a client that stopped reading | test_ws_liveness.py, hostile/test_tls.py |
| 1009 | a message over maxMessageSize | here |
| 4000 | ``quit``, ``destroy()``, destroy on shutdown | here, test_shutdown.py |
| 4001 | refused by connection middleware | here |
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Iterator

import pytest
from testkit import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    TIMEOUT,
    Client,
    Server,
    action_frame,
    frame_bytes,
)

from .support import running_server

LIMIT = 70_000  # maxMessageSize: above 65 535, so every length encoding fits under it


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "deflate"])
def deflate(request: pytest.FixtureRequest) -> bool:
    """``servers.websocket.server.compression`` of the module's server."""
    return request.param


@pytest.fixture(scope="module")
def conformance(deflate: bool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    options = {
        "servers": {"websocket": {"server": {"maxMessageSize": LIMIT, "compression": deflate}}}
    }
    name = "conformance-deflate" if deflate else "conformance-plain"
    with running_server(tmp_path_factory, name, options) as server:
        yield server


@pytest.fixture
async def client(conformance: Server, connect) -> Client:
    return await connect(conformance)


def echo(message_id: int, **params: object) -> str:
    return json.dumps(action_frame(message_id, "echo", **params), ensure_ascii=False)


def compressed(data: bytes) -> bytes:
    """``data`` as one permessage-deflate message body (RFC 7692 7.2.1)."""
    deflater = zlib.compressobj(wbits=-15)
    return (deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH))[:-4]


async def closed_after(client: Client, data: bytes) -> tuple[int | None, str | None]:
    """Write raw client frames on the client's own connection; what the client then sees."""
    client.ws.transport.write(data)
    return await client.wait_closed()


# -- the handshake --------------------------------------------------------------------------------


async def test_permessage_deflate_is_negotiated_as_configured(conformance, connect, deflate):
    offered = await connect(conformance)
    extensions = offered.ws.response.headers.get("Sec-WebSocket-Extensions")
    assert (extensions is not None and "permessage-deflate" in extensions) is deflate
    plain = await connect(conformance, compression=None)
    assert plain.ws.response.headers.get("Sec-WebSocket-Extensions") is None
    assert (await plain.action("echo", word="uncompressed"))["word"] == "uncompressed"


# -- messages -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 125, 126, 65_535, 65_536, LIMIT - 200])
async def test_every_length_encoding_round_trips(client, size):
    text = "é" + "x" * (size - 1)  # é goes as \u00e9, the rest one byte each
    assert (await client.action("echo", text=text))["text"] == text


async def test_text_in_many_fragments_with_pings_between_is_one_message(client):
    message = echo(1, word="ñandú " * 50)
    pieces = [message[i : i + 7] for i in range(0, len(message), 7)]
    pongs = []

    async def fragments():
        for piece in pieces:
            yield piece
            pongs.append(await client.ws.ping(f"between {len(pongs)}".encode()))

    await client.ws.send(fragments())
    assert (await client.reply(1))["word"] == "ñandú " * 50
    await asyncio.wait_for(asyncio.gather(*pongs), TIMEOUT)  # each pong with its own payload


async def test_character_split_between_fragments_is_reassembled(client):
    data = echo(2, word="€").encode()
    cut = data.index("€".encode()) + 1  # inside the three bytes of €
    frames = frame_bytes(OP_TEXT, data[:cut], fin=False) + frame_bytes(OP_CONT, data[cut:])
    client.ws.transport.write(frames)
    assert (await client.reply(2))["word"] == "€"


async def test_ping_payload_comes_back_in_the_pong(client):
    pong = await client.ws.ping(b"\x00binary\xffpayload")
    latency = await asyncio.wait_for(pong, TIMEOUT)  # websockets matches the payload itself
    assert latency >= 0


async def test_binary_message_gets_an_error_and_the_socket_stays_open(client):
    await client.ws.send(b"\x00\x01binary")
    error = await client.next(lambda f: isinstance(f, dict) and f.get("context") == "error")
    assert error["error"]
    assert (await client.action("echo", word="still here"))["word"] == "still here"


async def test_broadcast_reaches_members_with_and_without_compression(conformance, connect):
    members = [
        await connect(conformance),
        await connect(conformance, compression=None),
    ]
    for member in members:
        await member.request("roomAdd", room="defaultRoom")
    await members[0].request("say", room="defaultRoom", message="to every member")
    for member in members:
        said = await member.next(lambda f: isinstance(f, dict) and f.get("context") == "user")
        assert said["message"] == "to every member"


# -- close codes the client sends -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"),
    [(1000, "bye"), (1001, "tab closed"), (3000, ""), (4999, "é" * 40)],
)
async def test_close_from_the_client_is_echoed_with_its_code(client, code, reason):
    await client.ws.close(code, reason)
    assert (client.ws.close_code, client.ws.close_reason) == (code, reason)


@pytest.mark.parametrize(
    "payload",
    [b"\x03", b"\x03\xe7", b"\x03\xed", b"\x03\xee", b"\x00\x00", b"\x13\x88"],
    ids=["one-byte", "999", "1005", "1006", "0", "5000"],
)
async def test_close_frame_with_an_invalid_code_gets_1002(client, payload):
    code, reason = await closed_after(client, frame_bytes(OP_CLOSE, payload))
    assert code == 1002 and reason


async def test_close_reason_that_is_not_utf8_gets_1007(client):
    code, _ = await closed_after(client, frame_bytes(OP_CLOSE, b"\x03\xe8\xff\xfe"))
    assert code == 1007


# -- close codes Squall sends ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        (frame_bytes(OP_TEXT, b'{"event":"ping"}', masked=False), "incorrect masking"),
        (frame_bytes(OP_TEXT, b"{}", rsv=2), "reserved bits must be 0"),
        (frame_bytes(OP_TEXT, b"{}", rsv=1), "reserved bits must be 0"),
        (frame_bytes(0x3, b"{}"), "invalid opcode"),
        (frame_bytes(0xB, b""), "invalid opcode"),
        (frame_bytes(OP_CONT, b"{}"), "unexpected continuation frame"),
        (frame_bytes(OP_PING, b"p" * 126), "control frame too long"),
        (frame_bytes(OP_PING, b"p", fin=False), "fragmented control frame"),
        (
            frame_bytes(OP_TEXT, b"{", fin=False) + frame_bytes(OP_BINARY, b"}"),
            "expected a continuation frame",
        ),
        (
            frame_bytes(OP_TEXT, b"{", fin=False) + frame_bytes(OP_TEXT, b"}"),
            "expected a continuation frame",
        ),
    ],
    ids=[
        "unmasked",
        "rsv2",
        "rsv3",
        "opcode-3",
        "opcode-11",
        "stray-continuation",
        "long-ping",
        "fragmented-ping",
        "binary-inside-text",
        "text-inside-text",
    ],
)
async def test_protocol_violation_closes_1002_naming_it(client, frames, reason):
    assert await closed_after(client, frames) == (1002, reason)


async def test_compressed_frame_is_read_only_where_deflate_was_negotiated(client, deflate):
    client.ws.transport.write(frame_bytes(OP_TEXT, compressed(echo(3, word="z").encode()), rsv=4))
    if deflate:
        assert (await client.reply(3))["word"] == "z"
    else:  # RSV1 means "compressed" only under the extension
        assert await client.wait_closed() == (1002, "reserved bits must be 0")


@pytest.mark.parametrize(
    "frame",
    [
        frame_bytes(OP_TEXT, b"\xff\xff\xff\xff not deflate", rsv=4),
        frame_bytes(OP_PING, compressed(b"ping"), rsv=4),
    ],
    ids=["data-that-does-not-inflate", "compressed-ping"],
)
async def test_compressed_frame_that_cannot_be_read_closes_1002(client, frame):
    """RFC 7692 names no code for data that does not inflate, nor for a compressed control
    frame: both are protocol errors (1002), as Autobahn's permessage-deflate cases accept."""
    code, reason = await closed_after(client, frame)
    assert code == 1002 and reason


@pytest.mark.parametrize("fragments", [1, 8])
async def test_text_that_is_not_utf8_closes_1007(client, fragments):
    data = b'{"event": "ping", "x": "\xc3\x28"}'
    if fragments == 1:
        await client.ws.send(data, text=True)
    else:
        await client.ws.send([data[i : i + 4] for i in range(0, len(data), 4)], text=True)
    position = data.index(b"\xc3\x28")
    assert await client.wait_closed() == (1007, f"invalid UTF-8 at position {position}")


async def test_a_message_of_exactly_maxMessageSize_is_read(client):
    frame = {"event": "action", "messageId": 6, "params": {"action": "echo", "pad": ""}}
    frame["params"]["pad"] = "x" * (LIMIT - len(json.dumps(frame)))
    text = json.dumps(frame)
    assert len(text.encode()) == LIMIT
    await client.send_raw(text)
    assert (await client.reply(6))["pad"] == frame["params"]["pad"]


@pytest.mark.parametrize("fragments", [1, 8])
async def test_message_over_maxMessageSize_closes_1009(client, fragments):
    text = echo(4, pad="x" * LIMIT)
    step = -(-len(text) // fragments)
    await client.ws.send([text[i : i + step] for i in range(0, len(text), step)])
    code, reason = await client.wait_closed()
    assert code == 1009 and str(LIMIT) in reason


async def test_message_inflating_past_maxMessageSize_closes_1009(client):
    """With deflate negotiated, a few KiB on the wire that inflate to four times the limit."""
    await client.send(action_frame(5, "echo", pad="z" * LIMIT * 4))
    code, reason = await client.wait_closed()
    assert code == 1009 and str(LIMIT) in reason


async def test_quit_closes_4000(client):
    await client.send({"event": "quit", "messageId": 6})
    assert await client.wait_closed() == (4000, "connection destroyed")


async def test_refusal_by_connection_middleware_closes_4001_with_its_reason(conformance, connect):
    refused = await connect(conformance, query="?sessionID=reject-me", await_welcome=False)
    assert await refused.wait_closed(timeout=TIMEOUT * 2) == (4001, "you are not welcome here")
