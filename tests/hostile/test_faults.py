"""Faults: actions that raise, block the loop or return what JSON cannot
hold; middleware that raises; clients that vanish mid-action; SIGTERM under load. The user sees
a clear error, the log says what happened, counters stay right, the server keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time

import pytest
from testkit import Peer, UpgradeRefused, action_frame, failed, open_stream, parse_response

from .support import assert_still_serving, http, running_server, settled

SHUTDOWN_TIMEOUT = 5.0  # general.shutdownTimeout of the test environment (config/test.yaml)
SHUTTING_DOWN = "the server is shutting down"


def action_error(message: str, message_id: int = 1, count: int = 1) -> dict:
    return {"error": message, "context": "response", "messageId": message_id, "messageCount": count}


# --- actions that fail ----------------------------------------------------------------------


@pytest.mark.server_errors("action hostileRaise failed")
async def test_action_that_raises_replies_its_message_and_logs_the_traceback(main):
    log_start = main.log_size()
    peer = await Peer.open(main)
    assert await peer.action("hostileRaise") == action_error("hostile action failed on purpose")
    response = await http(main, "GET", "/api/hostileRaise")
    assert (response.status, response.json()["error"]) == (500, "hostile action failed on purpose")
    for text in (b"Traceback", b'File "', b"hostile_probes.py", b"RuntimeError"):
        assert text not in response.body
    await main.wait_log(r"ERROR squall\.actions: action hostileRaise failed", log_start)
    log = main.log_text(log_start)
    assert "Traceback (most recent call last)" in log
    assert "RuntimeError: hostile action failed on purpose" in log
    assert (await peer.request("detailsView"))["data"]["pendingActions"] == 0
    await assert_still_serving(main)


async def test_action_blocking_the_loop_is_named_in_a_blocked_loop_warning(main):
    log_start = main.log_size()
    blocker, other = await Peer.open(main), await Peer.open(main)
    await blocker.send_json(action_frame(1, "hostileBlock", seconds=2))
    await other.send_json({"event": "ping", "messageId": 1})  # waits behind the blocked loop
    assert (await other.reply(1, timeout=10))["status"] == "OK"
    reply = await blocker.reply(1, timeout=10)
    assert reply == {"blocked": 2.0, "context": "response", "messageId": 1, "messageCount": 1}
    line = await main.wait_log(r"WARNING squall\.watchdog: blocked loop", log_start)
    assert "action hostileBlock has blocked the event loop for" in line, line
    await assert_still_serving(main)


@pytest.mark.server_errors(
    "Circular reference",
    "keys must be str",
    "Recursion",
    "HTTP action request failed",
    "verb failed unexpectedly",
    "Task exception was never retrieved",
    "hostileCircular",
    "hostileTupleKey",
)
@pytest.mark.parametrize("name", ["hostileCircular", "hostileTupleKey"])
async def test_action_reply_json_cannot_hold_still_gets_an_error_reply(main, name):
    """An action returning a cycle, or a dict key JSON has no form for: the client must get an
    error reply (WebSocket) or a 500 with a JSON error (HTTP), never silence or a hung request."""
    peer = await Peer.open(main)
    await peer.send_json(action_frame(1, name))
    reply = await peer.reply(1, timeout=2)  # milliseconds, normally
    assert isinstance(reply.get("error"), str) and reply["error"], reply
    response = await http(main, "GET", f"/api/{name}", timeout=2)
    assert response.status == 500
    assert isinstance(response.json()["error"], str)
    await assert_still_serving(main)


# --- middleware that raises -------------------------------------------------------------------


@pytest.mark.server_errors(
    "action hostilePreMiddleware failed", "action hostilePostMiddleware failed"
)
@pytest.mark.parametrize(
    "name, message, fields",
    [
        ("hostilePreMiddleware", "pre middleware exploded", {}),
        ("hostilePostMiddleware", "post middleware exploded", {"ran": True}),  # the action ran
    ],
)
async def test_action_middleware_that_raises_is_the_error(main, name, message, fields):
    peer = await Peer.open(main)
    assert await peer.action(name) == {**fields, **action_error(message)}
    response = await http(main, "GET", f"/api/{name}")
    assert (response.status, response.json()["error"]) == (500, message)
    await assert_still_serving(main)


@pytest.mark.server_errors("roomAdd failed")
async def test_join_middleware_that_raises_refuses_the_join(main):
    peer = await Peer.open(main)
    reply = await peer.request("roomAdd", room="hostile-join-explodes")
    assert reply == failed("join middleware exploded", 1, 1)
    assert (await peer.request("detailsView"))["data"]["rooms"] == []
    await assert_still_serving(main)


@pytest.mark.server_errors("say failed")
async def test_say_receive_middleware_that_raises_fails_the_say(main):
    peer = await Peer.open(main)
    assert (await peer.request("roomAdd", room="hostile-say"))["status"] == "OK"
    reply = await peer.request("say", room="hostile-say", message="explode on receive")
    assert reply == failed("say middleware exploded", 2, 2)
    assert (await peer.request("say", room="hostile-say", message="fine"))["status"] == "OK"
    assert (await peer.next(lambda f: f.get("context") == "user"))["message"] == "fine"
    await assert_still_serving(main)


@pytest.mark.server_errors("say middleware failed for")
async def test_say_middleware_raising_for_one_recipient_skips_only_that_one(main):
    sender = await Peer.open(main)
    victim = await Peer.open(main, query="?sessionID=explode-on-say-1")
    bystander = await Peer.open(main)
    for peer in (sender, victim, bystander):
        assert (await peer.request("roomAdd", room="hostile-say"))["status"] == "OK"
    assert (await sender.request("say", room="hostile-say", message="hello all"))["status"] == "OK"
    for peer in (sender, bystander):
        assert (await peer.next(lambda f: f.get("context") == "user"))["message"] == "hello all"
    # the victim got nothing but still works: its next verb is answered, with no say before it
    assert (await victim.request("ping"))["status"] == "OK"
    assert [f for f in victim.inbox if f.get("context") == "user"] == []
    await assert_still_serving(main)


@pytest.mark.server_errors("connection middleware failed")
async def test_connection_middleware_create_that_raises_closes_4001(main):
    await settled(main, 0)
    peer = await Peer.open(main, query="?sessionID=refuse-me-1", welcome=False)
    code, reason = await peer.wait_closed()
    assert (code, reason) == (4001, "connection middleware refused you")
    assert not [f for f in peer.inbox if f.get("context") == "api"]  # no welcome
    await settled(main, 0)
    await assert_still_serving(main)


@pytest.mark.server_errors("destroy middleware exploded")
async def test_connection_middleware_destroy_that_raises_still_forgets_the_connection(main):
    await settled(main, 0)
    peer = await Peer.open(main, query="?sessionID=destroy-explodes-1")
    assert (await peer.request("roomAdd", room="defaultRoom"))["status"] == "OK"
    await peer.close()
    await settled(main, 0)
    watcher = await Peer.open(main)
    assert (await watcher.request("roomAdd", room="defaultRoom"))["status"] == "OK"
    view = (await watcher.request("roomView", room="defaultRoom"))["data"]
    assert view["membersCount"] == 1, view
    await assert_still_serving(main)


# --- clients that vanish ------------------------------------------------------------------------


async def test_socket_that_vanishes_mid_action_leaves_counters_at_zero(main):
    await settled(main, 0)
    peers = [await Peer.open(main) for _ in range(10)]
    for peer in peers:
        assert (await peer.request("roomAdd", room="defaultRoom"))["status"] == "OK"
        for n in range(5):
            await peer.send_json(action_frame(100 + n, "sleepTest", sleepDuration=400))
    # every action is in flight (5 per socket), then every socket is reset without a close frame
    await asyncio.wait_for(_pending_at_least(main, 50), 5)
    for peer in peers:
        peer.reset()
    await settled(main, 0)  # the replies were dropped; sockets and actions all gone
    watcher = await Peer.open(main)
    assert (await watcher.request("roomAdd", room="defaultRoom"))["status"] == "OK"
    assert (await watcher.request("roomView", room="defaultRoom"))["data"]["membersCount"] == 1
    await assert_still_serving(main)


async def _pending_at_least(server, count: int) -> None:
    while (await server.status())["pendingActions"] < count + 1:  # + the status call itself
        await asyncio.sleep(0.02)  # poll interval: in-flight counts have no event to await


async def test_http_client_that_vanishes_mid_action_leaves_counters_at_zero(main):
    await settled(main, 0)
    streams = [await open_stream(main) for _ in range(10)]
    for _, writer in streams:
        writer.write(b"GET /api/sleepTest?sleepDuration=400 HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(_pending_at_least(main, 10), 5)
    for _, writer in streams:
        writer.transport.abort()
    reply = await settled(main, 0)
    assert reply["connections"]["total"] == 1  # only this status request is left
    await assert_still_serving(main)


# --- SIGTERM under load -------------------------------------------------------------------------


@pytest.fixture
def doomed(tmp_path_factory):
    """A server of its own, for a test that stops it."""
    with running_server(tmp_path_factory, "doomed", {}) as server:
        yield server


async def test_sigterm_under_load_answers_every_action_and_exits_0(doomed):
    peers = [await Peer.open(doomed) for _ in range(50)]
    for peer in peers:
        await peer.send_json(action_frame(1, "sleepTest", sleepDuration=1500))
    http_in_flight = [
        asyncio.create_task(http(doomed, "GET", "/api/sleepTest?sleepDuration=1500", timeout=10))
        for _ in range(5)
    ]
    await asyncio.wait_for(_pending_at_least(doomed, 55), 5)

    doomed.signal(signal.SIGTERM)
    signalled = time.monotonic()
    # new requests keep arriving: on every open socket, and from new clients
    for peer in peers:
        await peer.send_json(action_frame(2, "randomNumber"))
    latecomers = await asyncio.gather(
        *(_try_to_join(doomed) for _ in range(10)), return_exceptions=True
    )

    for peer in peers:
        in_flight = await peer.reply(1, timeout=SHUTDOWN_TIMEOUT + 2)
        assert "error" not in in_flight, in_flight  # finished: in flight before the signal
        assert in_flight["sleepDuration"] == 1500
        late = await peer.reply(2, timeout=SHUTDOWN_TIMEOUT + 2)
        assert late == action_error(SHUTTING_DOWN, 2, 2) or "error" not in late, late
        assert await peer.wait_closed(SHUTDOWN_TIMEOUT + 2) == (1001, SHUTTING_DOWN)
    for task in http_in_flight:
        response = await task
        assert response.status == 200 and response.json()["sleepDuration"] == 1500
    for outcome in latecomers:
        assert outcome in ("refused", "closed 1001"), outcome

    exit_code = await asyncio.to_thread(_wait_exit, doomed, SHUTDOWN_TIMEOUT)
    assert exit_code == 0, doomed.log_tail()
    assert time.monotonic() - signalled <= SHUTDOWN_TIMEOUT


async def _try_to_join(server) -> str:
    """A client arriving during shutdown: refused (no listener, 503), or admitted and closed
    with 1001 like everyone else."""
    try:
        peer = await Peer.open(server, welcome=False)
    except (ConnectionError, UpgradeRefused, AssertionError, OSError):
        return "refused"
    code, _ = await peer.wait_closed(SHUTDOWN_TIMEOUT + 2)
    return f"closed {code}"


def _wait_exit(server, timeout: float) -> int | None:
    assert server.proc is not None
    with contextlib.suppress(subprocess.TimeoutExpired):
        return server.proc.wait(timeout=timeout)
    return None


async def test_upgrade_on_a_keep_alive_connection_after_sigterm_is_503(doomed):
    """The listener is closed at SIGTERM, but an HTTP connection opened before it stays open
    while actions finish: an upgrade sent on it must not be welcomed (PROTOCOL.md §6)."""
    busy = await Peer.open(doomed)
    await busy.send_json(action_frame(1, "sleepTest", sleepDuration=2000))
    await asyncio.wait_for(_pending_at_least(doomed, 1), 5)  # the sleep
    reader, writer = await open_stream(doomed)
    try:
        writer.write(b"GET /api/randomNumber HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(parse_response(head).headers.get("Content-Length"))
        await reader.readexactly(length)  # the connection is idle and kept alive

        doomed.signal(signal.SIGTERM)
        await _until_refused(busy)
        writer.write(
            b"GET /primus HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        response = parse_response(head)
        body = await reader.readexactly(int(response.headers.get("Content-Length")))
    finally:
        writer.transport.abort()
    assert (response.status, json.loads(body)) == (503, {"error": SHUTTING_DOWN})
    assert "error" not in await busy.reply(1, timeout=SHUTDOWN_TIMEOUT)  # in flight: finished
    exit_code = await asyncio.to_thread(_wait_exit, doomed, SHUTDOWN_TIMEOUT)
    assert exit_code == 0, doomed.log_tail()


async def _until_refused(peer: Peer) -> None:
    """Send actions until one is refused because the server is stopping."""
    for _ in range(1000):
        reply = await peer.action("randomNumber")
        if reply.get("error") == SHUTTING_DOWN:
            return
    raise AssertionError("no action was refused with 'the server is shutting down'")
