"""The WebSocket layer itself (RFC 6455, which PROTOCOL.md §2 rides on): fragmented messages,
long lengths, protocol pings, unmasked client frames, and size limits that hold across
fragments and after decompression (PROTOCOL.md §6 maxMessageSize)."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from websockets.exceptions import ConnectionClosed

from .conftest import running_server
from .support import TIMEOUT, RawPeer, action_frame, close_code

LIMIT = 4096


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """A small maxMessageSize, with and without permessage-deflate negotiated."""
    options = {"servers": {"websocket": {"server": {"maxMessageSize": LIMIT, "compression": True}}}}
    with running_server(tmp_path_factory, "limited", options) as server:
        yield server


def fragments(frame: dict, parts: int) -> list[str]:
    text = json.dumps(frame)
    step = -(-len(text) // parts)
    return [text[i : i + step] for i in range(0, len(text), step)]


async def test_fragmented_message_is_one_frame(client):
    await client.ws.send(fragments(action_frame(1, "echo", word="pieced together"), 4))
    reply = await client.reply(1)
    assert (reply["word"], reply["messageCount"]) == ("pieced together", 1)


@pytest.mark.parametrize("size", [125, 126, 65_535, 65_536, 300_000])
async def test_echo_round_trips_every_length_encoding(client, size):
    text = "é" + "x" * (size - 1)  # json.dumps sends é as \u00e9; the rest is one byte each
    assert (await client.action("echo", text=text))["text"] == text


async def test_protocol_ping_gets_a_pong(client):
    pong = await client.ws.ping(b"are you there")
    await asyncio.wait_for(pong, TIMEOUT)


async def test_unmasked_client_frame_closes_1002(server):
    peer = RawPeer(server)
    peer.send({"event": "ping", "messageId": 1}, masked=False)
    frames = await asyncio.to_thread(peer.frames)
    peer.close()
    assert close_code(frames) == 1002


async def test_fragments_past_maxMessageSize_close_1009(limited, connect):
    # Ten sockets: the close frame must reach a client that is still sending, every time.
    big = action_frame(1, "echo", pad="y" * (LIMIT * 2))
    codes = []
    for _ in range(10):
        client = await connect(limited, compression=None)
        with contextlib.suppress(ConnectionClosed, OSError):
            await client.ws.send(fragments(big, 6))  # each fragment alone is under the limit
        codes.append((await client.wait_closed())[0])
    assert codes == [1009] * 10


async def test_oversize_frame_then_more_frames_close_1009(limited, connect):
    # A client does not wait between frames: the close must survive the frames still coming.
    codes = []
    for _ in range(20):
        client = await connect(limited, compression=None)
        with contextlib.suppress(ConnectionClosed, OSError):
            await client.send({"pad": "y" * (LIMIT + 100)})
            for n in range(5):
                await client.send({"event": "ping", "messageId": n})
        codes.append((await client.wait_closed())[0])
    assert codes == [1009] * 20


async def test_compressed_message_inflating_past_maxMessageSize_closes_1009(limited, connect):
    client = await connect(limited)
    assert "permessage-deflate" in client.ws.response.headers["Sec-WebSocket-Extensions"]
    await client.send(
        action_frame(1, "echo", pad="z" * (LIMIT * 50))
    )  # a few hundred bytes on the wire
    assert (await client.wait_closed())[0] == 1009


async def test_compressed_messages_under_the_limit_round_trip(limited, connect):
    client = await connect(limited)
    for n in range(20):
        reply = await client.action("echo", n=n, pad="w" * (n * 150))
        assert (reply["n"], len(reply["pad"])) == (n, n * 150)
