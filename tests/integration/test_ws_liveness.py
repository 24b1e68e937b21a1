"""Peers that stop talking or stop reading, and per-server options around them: heartbeat
timeout, outbound buffer bound (1008), trustProxy, actionTimeout (PROTOCOL.md §6)."""

from __future__ import annotations

import asyncio
import time

import pytest
from testkit import Peer, action_reply, eventually, http_request, is_reply

from .support import running_server, stalled_member

PING_INTERVAL, PING_TIMEOUT = 200, 600


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """Fast heartbeat, proxy headers trusted, short action timeout, permessage-deflate."""
    options = {
        "general": {"actionTimeout": 300},
        "servers": {
            "web": {"trustProxy": True},
            "websocket": {
                "server": {
                    "pingInterval": PING_INTERVAL,
                    "timeout": PING_TIMEOUT,
                    "compression": True,
                }
            },
        },
    }
    with running_server(tmp_path_factory, "tuned", options) as server:
        yield server


@pytest.fixture(scope="module")
def stalled(tmp_path_factory):
    """A small outbound buffer bound per connection."""
    options = {"servers": {"websocket": {"server": {"maxBufferedBytes": 65536}}}}
    with running_server(tmp_path_factory, "stalled", options) as server:
        yield server


async def total_connections(client) -> int:
    return (await client.action("status"))["connections"]["total"]


async def test_heartbeat_closes_a_silent_peer_and_cleans_up(tuned, connect):
    watcher = await connect(tuned)  # the websockets client answers pings on its own
    await watcher.request("roomAdd", room="defaultRoom")
    silent = await Peer.open(tuned, answer_pings=False)
    await silent.join("defaultRoom")

    await silent.wait_closed()  # the server hangs up

    assert silent.pings  # it was pinged before being dropped
    view = await watcher.request("roomView", room="defaultRoom")
    assert view["data"]["membersCount"] == 1
    await eventually(lambda: total_connections(watcher), lambda total: total == 1)
    assert (await watcher.request("ping"))["status"] == "OK"  # answering peers stay


async def test_a_silent_peer_is_closed_timeout_after_its_last_frame_not_at_a_later_ping(
    tmp_path_factory,
):
    """PROTOCOL.md §6: closed ``timeout`` ms after it fell silent. Silence used to be looked at
    only when pinging, so here it would have gone at the second ping, 4 s in."""
    heartbeat = {"pingInterval": 2000, "timeout": 2400}
    options = {"servers": {"websocket": {"server": heartbeat}}}
    with running_server(tmp_path_factory, "heartbeat", options) as server:
        silent = await Peer.open(server, answer_pings=False)
        await silent.request("ping")
        said = time.monotonic()
        await silent.wait_closed()  # the server hangs up
        closed_after = time.monotonic() - said

    assert 2.3 < closed_after < 3.4


async def test_heartbeat_keeps_an_answering_peer(tuned, connect):
    client = await connect(tuned)
    await asyncio.sleep(PING_TIMEOUT * 2 / 1000)  # the behaviour under test is real time
    assert (await client.request("ping"))["status"] == "OK"


async def test_detailsView_honours_forwarded_for_with_trustProxy(tuned, connect):
    client = await connect(tuned, headers={"X-Forwarded-For": "203.0.113.9"})
    assert (await client.details())["remoteIP"] == "203.0.113.9"


async def test_compression_negotiates_permessage_deflate(tuned, connect):
    client = await connect(tuned)
    assert "permessage-deflate" in client.ws.response.headers["Sec-WebSocket-Extensions"]
    reply = await client.action("echo", text="squall " * 2000)
    assert reply["text"] == "squall " * 2000


def test_http_remote_ip_honours_forwarded_for_with_trustProxy(tuned):
    headers = {"X-Forwarded-For": "203.0.113.9"}
    response = http_request(tuned, "GET", "/api/status", headers=headers)
    assert response.json()["requesterInformation"]["remoteIP"] == "203.0.113.9"


@pytest.mark.server_errors("timed out after 300 ms")
def test_http_action_past_actionTimeout_is_500(tuned):
    response = http_request(tuned, "GET", "/api/sleepTest?sleepDuration=2000")
    assert (response.status, response.json()["error"]) == (500, "the action timed out after 300 ms")


@pytest.mark.server_errors("timed out after 300 ms")
async def test_action_past_actionTimeout_fails(tuned, connect):
    client = await connect(tuned)
    assert await client.action("sleepTest", sleepDuration=2000) == action_reply(
        {"error": "the action timed out after 300 ms"}, message_id=1, count=1
    )
    assert (await client.details())["pendingActions"] == 0


async def test_stalled_reader_is_closed_1008_and_others_keep_receiving(stalled, connect):
    speaker, listener = await connect(stalled), await connect(stalled)
    for client in (speaker, listener):
        await client.request("roomAdd", room="defaultRoom")
    stalled_peer = await stalled_member(stalled, speaker, members=3)

    async def members() -> int:
        return (await speaker.request("roomView", room="defaultRoom"))["data"]["membersCount"]

    # Say 32 kB messages in batches until the server drops the peer that reads nothing: past
    # the kernel's socket buffers, its queue grows beyond maxBufferedBytes (64 kB).
    chunk, said = "x" * 32_000, 0
    while await members() == 3:
        assert said < 1000, "the stalled reader was never dropped"
        for n in range(said, said + 20):
            await speaker.send(
                {"event": "say", "room": "defaultRoom", "message": {"n": n, "pad": chunk}}
            )
        said += 20
    received = []
    for _ in range(said):
        frame = await listener.next(lambda f: f.get("context") == "user")
        received.append(frame["message"]["n"])
    assert received == list(range(said))
    stalled_peer.resume_reading()
    assert (await stalled_peer.wait_closed())[0] == 1008
    assert [f for f in speaker.inbox if is_reply(f) and "error" in f] == []
