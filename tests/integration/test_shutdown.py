"""SIGTERM: stop accepting, refuse new actions, finish in-flight ones (bounded by
shutdownTimeout), close sockets with 1001 or destroy them with 4000, exit 0 (PROTOCOL.md §6).

Each test stops its own server."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import signal
import time

import pytest
from testkit import TIMEOUT, Peer, action_frame, eventually, http_request, is_reply, open_client

from .support import leaves, running_server

SHUTTING_DOWN = "the server is shutting down"


@pytest.fixture
def fresh_server(tmp_path_factory):
    """Start a server of one's own with ``fresh_server(options)``; killed at the end."""
    with contextlib.ExitStack() as stack:

        def start(options: dict | None = None):
            return stack.enter_context(running_server(tmp_path_factory, "stopping", options or {}))

        yield start


async def start_in_flight(client, duration_ms: int) -> None:
    """Start a sleepTest and make sure the server has it: a ping sent after it is answered."""
    await client.send(action_frame("in-flight", "sleepTest", sleepDuration=duration_ms))
    await client.request("ping")


async def until_shutting_down(client) -> dict:
    """Send actions until one is refused because the server is stopping; return that reply."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        reply = await client.action("randomNumber")
        if "error" in reply:
            return reply
    raise AssertionError("no action was refused with 'the server is shutting down'")


async def test_shutdown_finishes_in_flight_then_closes_1001(fresh_server, connect):
    server = fresh_server()
    busy, idle = await connect(server), await connect(server)
    await idle.request("roomAdd", room="notify-room")
    idle_id = (await idle.details())["id"]
    await start_in_flight(busy, 1000)

    server.signal()
    refusal = await until_shutting_down(busy)

    assert refusal["error"] == SHUTTING_DOWN
    with pytest.raises(OSError):
        await open_client(server)
    finished = await busy.reply("in-flight", timeout=TIMEOUT)
    assert ("error" in finished, finished["sleepDuration"]) == (False, 1000)
    assert (await busy.wait_closed())[0] == 1001
    assert (await idle.wait_closed())[0] == 1001
    assert await asyncio.to_thread(server.wait_exit) == 0
    assert (idle_id, "notify-room") in leaves(server)  # a disconnect leaves rooms (§5)


async def test_shutdown_http_in_flight_finishes_and_new_request_is_503(fresh_server, connect):
    server = fresh_server()
    watcher = await connect(server)
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", server.port)) as kept:
        kept.request("GET", "/api/randomNumber")
        first = kept.getresponse()
        assert (first.status, first.read() != b"") == (200, True)  # HTTP/1.1: stays open

        in_flight = asyncio.ensure_future(
            asyncio.to_thread(http_request, server, "GET", "/api/sleepTest?sleepDuration=1000")
        )
        await eventually(
            lambda: watcher.action("status"), lambda s: s["connections"].get("web", 0) >= 1
        )
        server.signal()
        await until_shutting_down(watcher)

        kept.request("GET", "/api/randomNumber")
        response = kept.getresponse()
        assert (response.status, json.loads(response.read())["error"]) == (503, SHUTTING_DOWN)
    assert (await in_flight).status == 200
    assert await asyncio.to_thread(server.wait_exit) == 0


async def test_shutdown_destroys_clients_with_4000_when_configured(fresh_server, connect):
    server = fresh_server({"servers": {"websocket": {"destroyClientsOnShutdown": True}}})
    client = await connect(server)
    await client.request("roomAdd", room="notify-room")
    client_id = (await client.details())["id"]
    await start_in_flight(client, 500)

    server.signal()

    assert "error" not in await client.reply("in-flight", timeout=TIMEOUT)
    assert (await client.wait_closed())[0] == 4000
    assert await asyncio.to_thread(server.wait_exit) == 0
    assert (client_id, "notify-room") in leaves(server)


async def test_shutdown_on_sigint_closes_1001_and_exits_0(fresh_server, connect):
    server = fresh_server()
    client = await connect(server)

    server.signal(signal.SIGINT)

    assert (await client.wait_closed())[0] == 1001
    assert await asyncio.to_thread(server.wait_exit) == 0


async def test_shutdown_waits_at_most_shutdownTimeout(fresh_server, connect):
    server = fresh_server({"general": {"shutdownTimeout": 300}})
    client = await connect(server)
    await start_in_flight(client, 20_000)
    started = time.monotonic()

    server.signal()

    assert (await client.wait_closed(timeout=TIMEOUT))[0] == 1001
    assert time.monotonic() - started < 3
    assert not any(
        is_reply(f) and f["messageId"] == "in-flight" and "error" not in f for f in client.inbox
    )
    await asyncio.to_thread(server.wait_exit)


async def test_shutdown_completes_when_a_peer_never_answers_the_close(fresh_server):
    server = fresh_server({"general": {"shutdownTimeout": 300}})
    mute = await Peer.open(server)
    mute.pause_reading()  # from now on it reads nothing, answers nothing
    server.signal()
    assert await asyncio.to_thread(server.wait_exit, TIMEOUT * 2) == 0
