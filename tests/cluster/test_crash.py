"""Crash safety: the members of a server killed with SIGKILL leave every room within
``redis.leaseTimeout`` (not 4/3 of it), the reaping happens once, and their clients re-join
elsewhere."""

from __future__ import annotations

import time

from testkit import FACTOR, TIMEOUT, eventually, now_ms, unique

from .support import LEASE_MS

#: Seconds it may take the test to see a change once it is made in Redis.
LOOK = 0.25


async def test_members_of_a_killed_server_leave_every_room_within_the_lease(
    redis_server, launch, connect
):
    a, b, c = launch(redis_server.url, ("a", "b", "c"))
    rooms = [unique("first"), unique("second")]
    for room in rooms:
        assert (await a.action("createChatRoom", name=room))["didCreate"] is True
    a1, b1, b2, c1 = [await connect(server) for server in (a, b, b, c)]
    for member in (a1, b1, b2, c1):
        for room in rooms:
            await member.join(room)
    await b1.join("defaultRoom")
    for room in rooms:
        assert (await a1.request("roomView", room=room))["data"]["membersCount"] == 4

    b.kill9()
    killed_at = time.monotonic()
    await b1.wait_closed()
    await b2.wait_closed()

    survivors = {a1.id, c1.id}
    # the lease, plus what it takes to see it: one poll (100 ms) and a roomView round trip
    bound = LEASE_MS / 1000 + LOOK * FACTOR
    for room in rooms:
        await eventually(
            lambda room=room: a1.request("roomView", room=room),
            lambda view: set(view["data"]["members"]) == survivors,
            bound - (time.monotonic() - killed_at),
            f"b's members still in {room} after the lease ({LEASE_MS} ms)",
        )
    assert time.monotonic() - killed_at <= bound
    await a1.join("defaultRoom")  # b1 was its only member
    view = await a1.request("roomView", room="defaultRoom")
    assert set(view["data"]["members"]) == {a1.id}
    for survivor, other in ((a, c), (c, a)):  # b is no longer a server of the cluster
        await eventually(  # as of each survivor's next lease renewal
            survivor.broker,
            lambda broker, other=other: broker["peers"] == [other.id],
            TIMEOUT,
            f"b still a peer of {survivor.name}",
        )
    for room in rooms:
        view = await c1.request("roomView", room=room)
        assert view["data"] == {
            "room": room,
            "membersCount": 2,
            "members": {m.id: {"id": m.id, "joinedAt": now_ms()} for m in (a1, c1)},
        }

    # the reaping is done once, by one of the survivors
    notice = f"server {b.id} stopped renewing its lease: removed its 5 memberships"

    async def notices() -> list[int]:
        return [server.log_text().count(notice) for server in (a, c)]

    found = await eventually(notices, lambda n: sum(n) >= 1, 1.0 * FACTOR, "no reaping logged")
    assert sorted(found) == [0, 1]

    # a client of the dead server connects to another one and re-joins
    again = await connect(c)
    for room in rooms:
        await again.join(room)
        view = await a1.request("roomView", room=room)
        assert set(view["data"]["members"]) == {a1.id, c1.id, again.id}
    await again.say(rooms[0], "I am back")
    await again.say(rooms[0], "fence")
    for member in (a1, c1, again):
        await member.said(rooms[0], "fence")
        assert member.count_said(rooms[0], "I am back") == 1
    assert a.alive() and c.alive()
