"""Sessions in Redis (PROTOCOL.md §4): what one server's HTTP action stores, the same browser's
socket on another server sees (in actions and in join middleware); they outlive a restart of every
server, and expire sessionTtl after their last use."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from testkit import Client, Server, http_request, start_all, stop_all, unique

from .support import broker_ok


async def on(server: Server, fingerprint: str, action: str, **params: Any) -> dict:
    """POST /api/<action> as a browser holding the ``sessionID`` cookie ``fingerprint``."""
    headers = {"Content-Type": "application/json", "Cookie": f"sessionID={fingerprint}"}
    path, body = f"/api/{action}", json.dumps(params)
    return (await asyncio.to_thread(http_request, server, "POST", path, body, headers)).json()


@pytest.fixture
def page_socket(connect: Callable[..., Any]) -> Callable[..., Any]:
    """``await page_socket(server, fingerprint)``: the socket a page of that browser opens."""

    async def _open(server: Server, fingerprint: str) -> Client:
        return await connect(server, query=f"?sessionID={fingerprint}")

    return _open


async def test_a_session_set_on_one_server_is_seen_on_another(cluster, page_socket):
    a, b, _ = cluster
    fingerprint = unique("browser")
    await on(a, fingerprint, "sessionSet", key="team", value="red")

    socket = await page_socket(b, fingerprint)

    reply = await socket.action("sessionGet")
    assert (reply["session"], reply["server"]) == ({"team": "red"}, b.id)


async def test_join_middleware_on_one_server_sees_a_login_on_another(cluster, page_socket):
    a, b, c = cluster
    fingerprint, team = unique("browser"), unique("red")
    room = f"team-{team}"
    await b.action("createChatRoom", name=room)
    socket = await page_socket(c, fingerprint)
    refused = await socket.request("roomAdd", room=room)
    assert refused["error"] == f"only team {team} may join {room}"

    await on(a, fingerprint, "sessionSet", key="team", value=team)

    assert (await socket.request("roomAdd", room=room))["data"] is True


async def test_an_open_socket_reads_what_another_server_saved(cluster, page_socket):
    a, b, _ = cluster
    fingerprint = unique("browser")
    socket = await page_socket(a, fingerprint)
    await socket.action("sessionSet", key="theme", value="dark")

    await on(b, fingerprint, "sessionSet", key="theme", value="light")

    assert (await socket.action("sessionGet"))["session"] == {"theme": "light"}


async def test_sessions_outlive_a_restart_of_every_server(redis_server, launch):
    servers = launch(redis_server.url, ("one", "two"))
    fingerprint = unique("browser")
    await on(servers[0], fingerprint, "sessionSet", key="cart", value=["tea", "scones"])

    stop_all(servers)
    start_all(servers, broker_ok)

    reply = await on(servers[1], fingerprint, "sessionGet")
    assert reply["session"] == {"cart": ["tea", "scones"]}


async def test_a_session_expires_session_ttl_after_its_last_use(redis_server, launch):
    (server,) = launch(redis_server.url, ("ttl",), extra={"general": {"sessionTtl": 2000}})
    idle, busy = unique("idle"), unique("busy")
    for fingerprint in (idle, busy):
        await on(server, fingerprint, "sessionSet", key="n", value=1)

    # Real time is the behaviour here: each step is half the TTL, so only uses keep a session.
    for _ in range(3):
        await asyncio.sleep(1.0)
        assert (await on(server, busy, "sessionGet"))["session"] == {"n": 1}

    assert (await on(server, idle, "sessionGet"))["session"] == {}


@pytest.mark.server_errors("lost Redis at")  # the broker's one line about the outage
async def test_without_redis_only_what_uses_a_session_fails(own_redis, launch, page_socket):
    (server,) = launch(own_redis.url, ("outage",))
    holder, newcomer = unique("holder"), unique("newcomer")
    socket = await page_socket(server, holder)
    await socket.action("sessionSet", key="team", value="red")

    own_redis.stop()

    refused = f"Error 111 connecting to 127.0.0.1:{own_redis.port}. Connection refused."
    assert (await on(server, newcomer, "echo", word="still"))["word"] == "still"
    assert (await on(server, newcomer, "sessionGet"))["error"] == refused
    # the open socket goes on with its session as last read
    assert (await socket.action("sessionGet"))["session"] == {"team": "red"}

    own_redis.start()  # empty: what the outage lost, the next save writes back
    reply = await socket.action("sessionSet", key="seen", value=True)
    assert reply["session"] == {"team": "red", "seen": True}
    assert (await on(server, holder, "sessionGet"))["session"] == {"team": "red", "seen": True}
