"""PROTOCOL.md §6 from outside: the close codes (4000, 1001, 4001, 1009), shutdown step by
step, the heartbeat, origins and authorization at the upgrade."""

from __future__ import annotations

import asyncio
import re
import signal
import time

import pytest
from testkit import (
    TIMEOUT,
    Peer,
    UpgradeRefused,
    action_frame,
    action_reply,
    eventually,
    open_client,
    open_stream,
    parse_response,
)

from .support import new_room, running_server

SHUTTING_DOWN = "the server is shutting down"
COOKIE = re.compile(r"^sessionID=[A-Za-z0-9_-]{1,128}; Path=/; HttpOnly; SameSite=Lax$")


async def read_response(reader):
    """The next HTTP response on a kept-alive connection."""
    raw = b""
    async with asyncio.timeout(TIMEOUT):
        while (response := parse_response(raw)) is None or len(response.body) < int(
            response.headers["Content-Length"]
        ):
            chunk = await reader.read(65536)
            assert chunk, f"closed after {raw!r}"
            raw += chunk
    return response


# --- 4000: destroy and quit ------------------------------------------------------------------


async def test_s6_connection_destroy_closes_with_4000(server, connect):
    client = await connect(server)
    await client.send(action_frame(1, "destroyTest"))
    assert (await client.wait_closed())[0] == 4000


# --- shutdown --------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_s6_shutdown_refuses_new_work_finishes_in_flight_then_closes_1001(
    tmp_path_factory, signum
):
    with running_server(tmp_path_factory, "stopping", {}) as stopping:
        client = await open_client(stopping)
        reader, writer = await open_stream(stopping)  # an HTTP connection kept alive
        writer.write(b"GET /api/randomNumber HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reader)).status == 200
        await client.send(action_frame("slow", "sleepTest", sleepDuration=1500))
        await client.send({"event": "ping", "messageId": "started"})
        await client.reply("started")
        stopping.signal(signum)
        refused = await eventually(
            lambda: client.action("randomNumber"), lambda r: "error" in r, what="refusal"
        )
        assert refused == action_reply(
            {"error": SHUTTING_DOWN}, refused["messageId"], refused["messageCount"]
        )
        writer.write(b"GET /api/randomNumber HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await read_response(reader)
        assert (response.status, response.json()["error"]) == (503, SHUTTING_DOWN)
        writer.transport.abort()
        with pytest.raises((OSError, UpgradeRefused)):  # no new connection is accepted
            peer = await Peer.open(stopping)
            await peer.close()
        finished = await client.reply("slow")
        assert (finished["sleepDuration"], "error" in finished) == (1500, False)
        assert (await client.wait_closed())[0] == 1001
        assert stopping.wait_exit(timeout=TIMEOUT) == 0


async def test_s6_shutdown_waits_at_most_shutdownTimeout_for_actions_in_flight(tmp_path_factory):
    options = {"general": {"shutdownTimeout": 1000}}
    with running_server(tmp_path_factory, "bounded", options) as bounded:
        client = await open_client(bounded)
        await client.send(action_frame("endless", "sleepTest", sleepDuration=60_000))
        await client.send({"event": "ping", "messageId": "started"})
        await client.reply("started")
        signalled = time.monotonic()
        bounded.signal(signal.SIGTERM)
        assert (await client.wait_closed(timeout=TIMEOUT))[0] == 1001
        assert time.monotonic() - signalled < 1.0 + 2.0  # the bound, and a margin to close
        assert bounded.wait_exit(timeout=TIMEOUT) == 0


async def test_s6_shutdown_with_destroyClientsOnShutdown_runs_destroy_4000(tmp_path_factory):
    options = {"servers": {"websocket": {"destroyClientsOnShutdown": True}}}
    with running_server(tmp_path_factory, "destroying", options) as destroying:
        room = await new_room(destroying, "notify-")  # its leave middleware records each call
        client = await open_client(destroying)
        me = (await client.details())["id"]
        await client.join(room)
        destroying.signal(signal.SIGTERM)
        assert (await client.wait_closed())[0] == 4000
        assert destroying.wait_exit(timeout=TIMEOUT) == 0
        assert f"{me} {room}" in destroying.events("leave")  # leave middleware ran


# --- the heartbeat ---------------------------------------------------------------------------


async def test_s6_a_peer_that_answers_no_ping_within_timeout_is_closed_and_cleaned_up(
    brisk, connect
):
    # brisk: pingInterval 200 ms, timeout 600 ms
    room = await new_room(brisk)
    polite = await connect(brisk)  # websockets answers every ping
    silent = await Peer.open(brisk, answer_pings=False)
    try:
        await polite.join(room)
        await silent.send_json({"event": "roomAdd", "messageId": 1, "room": room})
        await silent.reply(1)
        opened = time.monotonic()
        await silent.wait_closed(timeout=TIMEOUT)
        assert time.monotonic() - opened < 0.6 + 2.0  # the timeout, and a margin to close
        assert silent.pings, "the server never pinged"
        view = await eventually(
            lambda: polite.request("roomView", room=room),
            lambda v: v["data"]["membersCount"] == 1,
            what="the silent peer cleaned up",
        )
        assert list(view["data"]["members"]) == [(await polite.details())["id"]]
        assert not polite.closed
    finally:
        await silent.close()


# --- origins and authorization at the upgrade ---------------------------------------------------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """Origins listed, and an async authorization function."""
    options = {
        "servers": {
            "websocket": {
                "server": {
                    "origins": ["http://allowed.example"],
                    "authorization": "tests.contract.auth.admit_async",
                }
            }
        }
    }
    with running_server(tmp_path_factory, "guarded", options) as started:
        yield started


@pytest.fixture(scope="module")
def any_origin(tmp_path_factory):
    """Any origin, and a plain authorization function."""
    options = {
        "servers": {
            "websocket": {
                "server": {"origins": "*", "authorization": "tests.contract.auth.admit_sync"}
            }
        }
    }
    with running_server(tmp_path_factory, "any-origin", options) as started:
        yield started


async def upgrade(server, origin=None, verdict=None):
    """The status of an upgrade (101 when admitted), and the refusal's body."""
    headers = {}
    if origin is not None:
        headers["Origin"] = origin
    if verdict is not None:
        headers["X-Contract"] = verdict
    try:
        peer = await Peer.open(server, headers=headers)
    except UpgradeRefused as refused:
        return refused.response.status, refused.response
    await peer.close()
    return 101, peer.response


async def test_s6_an_allowed_origin_is_admitted(guarded):
    assert (await upgrade(guarded, "http://allowed.example", "yes"))[0] == 101


@pytest.mark.parametrize("origin", ["http://evil.example", "http://allowed.example:8080", "null"])
async def test_s6_a_disallowed_origin_gets_403_at_the_upgrade(guarded, origin):
    status, response = await upgrade(guarded, origin, "yes")
    assert status == 403
    assert COOKIE.match(response.headers["Set-Cookie"])  # PROTOCOL.md §4: every response


@pytest.mark.parametrize("origin", ["http://evil.example", "https://any.example", "null"])
async def test_s6_origins_star_admits_any_origin(any_origin, origin):
    assert (await upgrade(any_origin, origin, "yes"))[0] == 101


@pytest.mark.parametrize("which", ["guarded", "any_origin"], ids=["async", "sync"])
@pytest.mark.parametrize(
    "verdict, status, body",
    [
        ("yes", 101, None),
        ("no", 401, {"error": "unauthorized"}),
        (None, 401, {"error": "unauthorized"}),
        ("raise", 401, {"error": "not with that header"}),
        ("mute", 401, {"error": "unauthorized"}),
    ],
    ids=["truthy", "falsy", "falsy without header", "exception", "exception without message"],
)
async def test_s6_authorization_admits_on_truthy_and_refuses_401_with_json(
    request, which, verdict, status, body
):
    server = request.getfixturevalue(which)
    got, response = await upgrade(server, "http://allowed.example", verdict)
    assert got == status
    if body is not None:
        assert response.json() == body
        assert response.headers["Content-Type"].startswith("application/json")
        assert COOKIE.match(response.headers["Set-Cookie"])  # PROTOCOL.md §4: every response


# --- 4001 and 1009 ------------------------------------------------------------------------------


async def test_s6_connection_middleware_create_raising_closes_4001_with_the_error_as_reason(
    server,
):
    peer = await Peer.open(server, query="?sessionID=reject-me", welcome=False)
    try:
        assert await peer.wait_closed() == (4001, "you are not welcome here")
    finally:
        await peer.close()


async def test_s6_a_frame_over_maxMessageSize_closes_1009(server, connect):
    client = await connect(server)
    await client.send_raw("x" * (1_048_576 + 1))  # the default maxMessageSize, 1 MiB
    assert (await client.wait_closed())[0] == 1009


async def test_s6_a_frame_of_maxMessageSize_is_read(server, connect):
    client = await connect(server)
    frame = '{"event": "ping", "messageId": 1, "pad": "'
    await client.send_raw(frame + "x" * (1_048_576 - len(frame) - 2) + '"}')
    assert (await client.reply(1))["status"] == "OK"
