"""Presence across servers through Redis (PROTOCOL.md §8): every member, on every server, sees
one join and one leave per membership, and the members of a server killed with SIGKILL are told
gone (``server lost``) within ``redis.leaseTimeout``, once."""

from __future__ import annotations

import time
from typing import Any

import pytest
from testkit import FACTOR, TIMEOUT, Client, Server, eventually, now_ms, unique

from .support import LEASE_MS


def is_presence(frame: Any) -> bool:
    return frame.get("context") == "presence"


async def presence_room(server: Server) -> str:
    room = unique("presence")
    reply = await server.action("createChatRoom", name=room, presence=True)
    assert reply["didCreate"] is True, reply
    return room


async def enter(member: Client, room: str) -> None:
    """Join, and take out the reply's follower: the member's own join."""
    await member.join(room)
    await member.next(lambda f: is_presence(f) and f["id"] == member.id)


def joined(room: str, member: Client) -> dict:
    return {
        "context": "presence",
        "event": "join",
        "room": room,
        "id": member.id,
        "joinedAt": now_ms(),
    }


def left(room: str, member: Client, reason: str) -> dict:
    frame = {"context": "presence", "event": "leave", "room": room, "id": member.id}
    return {**frame, "reason": reason}


async def test_every_member_on_every_server_sees_each_join_and_leave_once(cluster, connect):
    a, b, c = cluster
    room = await presence_room(a)
    watchers = [await connect(server) for server in (a, b, c)]
    for watcher in watchers:
        await enter(watcher, room)
    comers = [await connect(server) for server in (a, b, c)]

    for comer in comers:
        await enter(comer, room)
    await comers[0].request("roomLeave", room=room)
    await comers[1].close()
    await comers[2].request("roomLeave", room=room)
    fence = await connect(c)  # c publishes its join after c's leave: it arrives after it
    await enter(fence, room)

    for watcher in watchers:
        await watcher.next(lambda f, w=watcher: f == joined(room, fence))
        seen = watcher.take(is_presence)
        expected = [joined(room, w) for w in watchers[watchers.index(watcher) + 1 :]]
        expected += [joined(room, comer) for comer in comers]
        expected += [left(room, comers[0], "left"), left(room, comers[2], "left")]
        expected += [left(room, comers[1], "disconnected")]
        assert sorted(seen, key=repr) == sorted(expected, key=repr), watcher
    view = await watchers[0].request("roomView", room=room)
    assert set(view["data"]["members"]) == {w.id for w in (*watchers, fence)}


async def test_a_room_destroyed_tells_every_member_every_leave(cluster, connect):
    a, b, _ = cluster
    room = await presence_room(a)
    members = [await connect(server) for server in (a, b)]
    for member in members:
        await enter(member, room)
    await members[0].next(lambda f: f == joined(room, members[1]))

    assert (await b.action("destroyRoomTest", name=room))["didDestroy"] is True

    for member in members:
        for other in members:
            await member.next(lambda f, o=other: f == left(room, o, "destroyed"))


async def test_the_members_of_a_killed_server_are_told_gone_within_the_lease(
    redis_server, launch, connect
):
    a, b, c = launch(redis_server.url, ("a", "b", "c"))
    room = await presence_room(a)
    a1, c1 = await connect(a), await connect(c)
    lost = [await connect(b), await connect(b)]
    for member in (a1, c1, *lost):
        await enter(member, room)
    for watcher in (a1, c1):
        for member in lost:
            await watcher.next(lambda f, m=member: f == joined(room, m))

    b.kill9()
    killed_at = time.monotonic()
    bound = LEASE_MS / 1000 + 0.25 * FACTOR  # the lease, plus a look at it
    for watcher in (a1, c1):
        for member in lost:
            gone = await watcher.next(
                lambda f, m=member: is_presence(f) and f["id"] == m.id, timeout=bound
            )
            assert gone == left(room, member, "server lost")
    assert time.monotonic() - killed_at <= bound

    fence = await connect(c)  # told once only: nothing more about them before this join
    await enter(fence, room)
    for watcher in (a1, c1):
        await watcher.next(lambda f: f == joined(room, fence))
        assert [f for f in watcher.take(is_presence) if f["id"] in {m.id for m in lost}] == []


@pytest.mark.parametrize("reason", ["left", "disconnected"])
async def test_a_member_that_leaves_is_not_told_its_own_leave(cluster, connect, reason):
    a, b, _ = cluster
    room = await presence_room(a)
    stay, go = await connect(a), await connect(b)
    for member in (stay, go):
        await enter(member, room)
    await stay.next(lambda f: f == joined(room, go))
    if reason == "left":
        await go.request("roomLeave", room=room)
        await go.request("ping")
    else:
        await go.close()

    assert await stay.next(is_presence) == left(room, go, reason)
    assert [f for f in go.inbox if is_presence(f) and f["id"] == go.id] == []
    await eventually(
        lambda: stay.request("roomView", room=room),
        lambda view: set(view["data"]["members"]) == {stay.id},
        TIMEOUT,
        "the leaver still listed",
    )
