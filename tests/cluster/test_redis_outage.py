"""A Redis outage degrades and loses nothing silently: each server keeps serving its own clients,
says reach its own members at once and the other servers' after Redis is back (in order, once), a
full outbox answers an error, what needs the other servers answers an error naming the cause, and
everything written meanwhile is in Redis when it returns.

The outages here last a second or two, not a realistic 10 s: what a server keeps does not
depend on how long Redis is away (it is bounded by ``redis.outboxSize``/``outboxBytes``, not by
time), so a short outage runs the very same code.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable

import pytest
from testkit import TIMEOUT, Client, Server, eventually, http_request, is_said, now_ms, unique

#: Every test here stops Redis under running servers: each logs that once (ERROR).
pytestmark = pytest.mark.server_errors("lost Redis at")


def refused(port: int) -> str:
    return f"Error 111 connecting to 127.0.0.1:{port}. Connection refused."


async def make_room(server: Server, prefix: str) -> str:
    room = unique(prefix)
    reply = await server.action("createChatRoom", name=room)
    assert (reply["name"], reply["didCreate"]) == (room, True), reply
    return room


def in_room(room: str) -> Callable[[dict], bool]:
    return lambda frame: frame.get("context") == "user" and frame.get("room") == room


def messages(member: Client, room: str) -> list[object]:
    """The messages said in ``room`` that ``member`` received so far, in order (taken out)."""
    return [frame["message"] for frame in member.take(in_room(room))]


async def receive(member: Client, room: str, count: int, timeout: float = TIMEOUT) -> list[object]:
    """The next ``count`` messages said in ``room`` that ``member`` receives, in order."""
    return [(await member.next(in_room(room), timeout))["message"] for _ in range(count)]


async def stop_redis(redis_server, servers: list[Server]) -> None:
    redis_server.stop()
    for server in servers:
        broker = await server.wait_broker("reconnecting")
        assert (
            broker["problem"] == f"lost Redis at {redis_server.url}: {refused(redis_server.port)}"
        )


async def start_redis(redis_server, servers: list[Server]) -> None:
    redis_server.start()  # same port, empty: no persistence
    for server in servers:
        broker = await server.wait_broker("ok")
        assert broker["problem"] is None
        assert broker["outbox"]["messages"] == 0


async def test_says_during_an_outage_reach_this_servers_members_at_once_and_the_others_after(
    own_redis, launch, connect
):
    a, b = launch(own_redis.url, ("a", "b"))
    room = await make_room(a, "outage")
    a1, a2, b1 = [await connect(server) for server in (a, a, b)]
    for member in (a1, a2, b1):
        await member.join(room)

    await stop_redis(own_redis, [a, b])
    said_on_a = [f"a{n}" for n in range(5)]
    said_on_b = [f"b{n}" for n in range(3)]
    for message in said_on_a:
        await a1.say(room, message)  # answered OK: kept for b, delivered on a
    for message in said_on_b:
        await b1.say(room, message)
    # this server's members have them now, while Redis is still away
    for member in (a1, a2):
        assert await receive(member, room, len(said_on_a), timeout=1) == said_on_a
    assert await receive(b1, room, len(said_on_b), timeout=1) == said_on_b
    queued = {s.name: (await s.broker())["outbox"]["messages"] for s in (a, b)}
    assert queued == {"a": 5, "b": 3}
    assert (await a.status())["state"] == "degraded"

    await start_redis(own_redis, [a, b])
    await a1.say(room, "fence from a")  # after a sent its outbox: heard after it
    await b1.say(room, "fence from b")
    # the other server's messages, in order, once; none of a server's own messages twice
    assert await receive(b1, room, 7) == [*said_on_a, "fence from a", "fence from b"]
    for member in (a1, a2):
        assert await receive(member, room, 5) == [*said_on_b, "fence from a", "fence from b"]
    for member in (a1, a2, b1):
        assert messages(member, room) == []
    assert (await a.status())["state"] == "ok"


async def test_a_full_outbox_answers_an_error_and_delivers_that_message_nowhere(
    own_redis, launch, connect
):
    a, b = launch(own_redis.url, ("a", "b"), extra={"redis": {"outboxSize": 3}})
    room = await make_room(a, "full")
    a1, a2, b1 = [await connect(server) for server in (a, a, b)]
    for member in (a1, a2, b1):
        await member.join(room)

    await stop_redis(own_redis, [a, b])
    for n in range(3):
        await a1.say(room, f"kept {n}")
    refused_say = await a1.request("say", room=room, message="one too many")
    assert refused_say["error"] == (
        "Redis is unavailable: 3 messages already wait for it (redis.outboxSize); "
        "this message was not sent"
    )
    pushed = await a.action("sendAllTest", message="to everyone")
    assert pushed["error"] == refused_say["error"]
    kept = ["kept 0", "kept 1", "kept 2"]
    assert await receive(a2, room, 3, timeout=1) == kept

    await start_redis(own_redis, [a, b])
    await a1.say(room, "fence")
    assert await receive(a2, room, 1) == ["fence"]
    assert await receive(b1, room, 4) == [*kept, "fence"]
    for member in (a1, a2, b1):
        assert member.take(lambda f: f.get("context") == "alert") == []


async def test_room_operations_during_an_outage(own_redis, launch, connect):
    a, b = launch(own_redis.url, ("a", "b"))
    known = await make_room(a, "known")
    unknown = await make_room(b, "unknown")  # created after a started: a never saw it
    a1, a2, b1 = [await connect(server) for server in (a, a, b)]
    for member in (a1, b1):
        await member.join(known)

    await stop_redis(own_redis, [a, b])
    # joining and leaving a room this server knows
    assert (await a2.request("roomAdd", room=known))["status"] == "OK"
    assert (await a2.request("roomLeave", room=known))["status"] == "OK"
    assert (await a2.request("roomAdd", room=known))["status"] == "OK"
    # what needs the other servers answers an error naming the cause
    assert (await a2.request("roomAdd", room=unknown))["error"] == (
        f"Redis is unavailable: cannot tell whether room {unknown} exists until it is back"
    )
    assert (await a1.request("roomView", room=known))["error"] == (
        "Redis is unavailable: the members on other servers are unknown until it is back"
    )
    destroyed = await a.action("destroyRoomTest", name=known)
    assert destroyed["error"] == "Redis is unavailable: a room cannot be destroyed until it is back"
    pushed = await a.action("sendToTest", to=b1.id, message="across")
    assert pushed["error"] == (
        "Redis is unavailable: connections of other servers cannot be reached until it is back"
    )
    # creating a room asks the other servers (does it exist? how many are there?): 503, no 500
    new = unique("new")
    body, json_body = json.dumps({"name": new}), {"Content-Type": "application/json"}
    created = await asyncio.to_thread(
        http_request, a, "POST", "/api/createChatRoom", body, json_body
    )
    assert (created.status, created.json()["error"]) == (
        503,
        f"Redis is unavailable: cannot tell whether room {new} exists until it is back",
    )
    # between this server's members, the room they know works
    await a2.say(known, "among a's members")
    await a1.said(known, "among a's members", timeout=1)

    await start_redis(own_redis, [a, b])
    assert {known, unknown} <= set((await b.action("roomsTest"))["list"])
    await make_room(a, "new")
    view = await b1.request("roomView", room=known)
    assert set(view["data"]["members"]) == {a1.id, a2.id, b1.id}
    assert (await a2.request("roomAdd", room=unknown))["status"] == "OK"


async def test_a_client_gone_while_redis_is_down_is_not_restored(own_redis, launch, connect):
    a, b = launch(own_redis.url, ("a", "b"))
    rooms = [await make_room(a, "first"), await make_room(a, "second")]
    a1, b1, leaving = await connect(a), await connect(b), await connect(b)
    for member in (a1, b1, leaving):
        for room in rooms:
            await member.join(room)

    await stop_redis(own_redis, [a, b])
    await leaving.close()  # b cleans up while Redis is away: it leaves both rooms locally
    # and cannot tell Redis; what b writes back once Redis returns must not bring it back
    await start_redis(own_redis, [a, b])

    for room in rooms:
        view = await a1.request("roomView", room=room)
        assert set(view["data"]["members"]) == {a1.id, b1.id}, (room, leaving.id)
    assert (await b.status())["connections"] == {"total": 2, "webSocket": 1, "web": 1}
    # no server holds it any more: a push to it is not delivered; one to b1 still is
    assert (await a.action("sendToTest", to=leaving.id, message="x"))["delivered"] is False
    assert (await a.action("sendToTest", to=b1.id, message="x"))["delivered"] is True


async def test_no_ghost_member_after_redis_restarts(own_redis, launch, connect):
    """Members leave while their servers find Redis restarted empty: before they notice (the
    removal fails on a pooled connection from before the restart, or reaches the new Redis),
    while they reconnect, while they write back. Whichever it was, once they are back Redis
    holds exactly the members and connections that are still there."""
    a, b = launch(own_redis.url, ("a", "b"))
    room = await make_room(a, "ghosts")
    stay = await connect(a)
    leavers = [await connect(server) for server in (a, a, b, b)]
    for member in (stay, *leavers):
        await member.join(room)

    own_redis.stop()
    own_redis.start()  # the brokers' pooled connections are now dead
    for member in leavers:
        await member.close()
    for server in (a, b):
        await server.wait_broker("ok")

    view = await eventually(
        lambda: stay.request("roomView", room=room),
        lambda view: set(view["data"]["members"]) == {stay.id},
        TIMEOUT,
        "ghost members in the room",
    )
    assert view["data"]["members"] == {stay.id: {"id": stay.id, "joinedAt": now_ms()}}
    for member in leavers:
        assert (await b.action("sendToTest", to=member.id, message="x"))["delivered"] is False
    assert (await b.action("sendToTest", to=stay.id, message="x"))["delivered"] is True


async def test_a_member_leaving_once_its_server_wrote_back_is_removed_from_redis(
    own_redis, launch, connect
):
    """A server back from an outage writes its memberships back, then waits for its peers to
    subscribe again before it sends its outbox: a member leaving in between must not stay in
    Redis (the write-back had it; only the journal can remove it)."""
    # a long lease: a waits for the frozen b that long, and nobody reaps b meanwhile
    a, b = launch(own_redis.url, ("a", "b"), extra={"redis": {"leaseTimeout": 10_000}})
    room = unique("between")
    reply = await a.action("createChatRoom", name=room, presence=True)
    assert reply["didCreate"] is True, reply
    stay, leaver = await connect(a), await connect(a)
    for member in (stay, leaver):
        await member.join(room)

    await stop_redis(own_redis, [a, b])
    await stay.say(room, "queued")  # a has an outbox: back, it waits for b before sending it
    b.freeze()
    own_redis.start()
    with own_redis.client() as client:
        await eventually(
            lambda: asyncio.to_thread(client.hkeys, f"{a.cluster}:room:{room}"),
            lambda members: leaver.id.encode() in members,
            TIMEOUT,
            "a's write-back of its memberships",
        )
    await leaver.close()
    left = await stay.next(lambda f: f.get("event") == "leave" and f.get("id") == leaver.id)
    assert left["reason"] == "disconnected"
    assert (await a.broker())["state"] == "reconnecting"  # still waiting for b
    b.thaw()

    for server in (a, b):
        await server.wait_broker("ok")
    await eventually(a.broker, lambda broker: broker["pendingWrites"] == 0, TIMEOUT, "a's writes")
    view = await stay.request("roomView", room=room)
    assert set(view["data"]["members"]) == {stay.id}


async def test_removals_that_fail_on_a_dead_pooled_connection_are_retried(
    own_redis, launch, connect
):
    """Redis drops this server's connections but not its subscriber: nothing looks wrong
    until a write fails; the write is retried, not lost."""
    a, b = launch(own_redis.url, ("a", "b"))
    room = await make_room(a, "stale")
    stay = await connect(a)
    leavers = [await connect(server) for server in (a, b)]
    for member in (stay, *leavers):
        await member.join(room)
    with own_redis.client() as client:
        killed = client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        assert killed >= 2
    for member in leavers:
        await member.close()

    await eventually(
        lambda: stay.request("roomView", room=room),
        lambda view: set(view["data"]["members"]) == {stay.id},
        TIMEOUT,
        "ghost members in the room",
    )


async def test_brokers_resubscribe_when_redis_drops_their_subscriber(own_redis, launch, connect):
    a, b = launch(own_redis.url, ("a", "b"))
    room = await make_room(a, "dropped")
    a1, b1 = await connect(a), await connect(b)
    for member in (a1, b1):
        await member.join(room)
    with own_redis.client() as client:
        assert client.execute_command("CLIENT", "KILL", "TYPE", "pubsub") == 2

    async def heard_across() -> bool:
        """Say a probe on b: whether a's member hears it (once a listens again)."""
        await b1.say(room, "probe")
        return bool(a1.take(lambda f: is_said(f, room, "probe")))

    await eventually(heard_across, bool, TIMEOUT, "a hears b again")
    for server in (a, b):
        await server.wait_broker("ok")
    await b1.say(room, "still there")
    await b1.say(room, "fence")
    for member in (a1, b1):
        await member.said(room, "fence")
        assert member.count_said(room, "still there") == 1


async def test_a_server_stops_on_sigterm_while_redis_is_slow_to_answer(own_redis, launch):
    (a,) = launch(own_redis.url, ("a",))
    pause_ms = 3000
    with own_redis.client() as client:
        assert client.execute_command("CLIENT", "PAUSE", pause_ms, "WRITE") == b"OK"
        paused_at = time.monotonic()

        def blocked() -> set[str]:
            found = client.client_list()
            return {entry["cmd"] for entry in found if "b" in entry["flags"]}

        # the server's periodic lease renewal and canary are now waiting on Redis
        waiting = await eventually(
            lambda: asyncio.to_thread(blocked),
            lambda commands: "publish" in commands and bool(commands & {"set", "exec", "evalsha"}),
            pause_ms / 2000,
            "lease renewal (MULTI/EXEC) and canary (PUBLISH) waiting on the paused Redis",
        )
        assert "publish" in waiting
        a.proc.send_signal(signal.SIGTERM)  # the shutdown cancels them while they wait
        assert time.monotonic() - paused_at < pause_ms / 1000  # still paused: they still wait
    assert a.stop(signalled=True) == 0, a.log_tail()
