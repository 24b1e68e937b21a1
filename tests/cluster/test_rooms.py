"""Rooms are cluster-wide: say, roomView, create and destroy seen on every server; a server hears
only the rooms it has members in, and servers of another cluster on the same Redis are never
heard."""

from __future__ import annotations

from testkit import TIMEOUT, Client, Server, eventually, is_said, now_ms, unique

from .support import ACTIONS


async def make_room(server: Server, prefix: str) -> str:
    room = unique(prefix)
    reply = await server.action("createChatRoom", name=room)
    assert reply["didCreate"] is True, reply
    return room


def said_frame(room: str, message: object, sender: object) -> dict:
    return {"context": "user", "message": message, "room": room, "from": sender, "sentAt": now_ms()}


async def test_say_reaches_every_member_on_every_server_exactly_once(cluster, connect):
    a, b, c = cluster
    room = await make_room(a, "say")
    members: list[Client] = [await connect(server) for server in (a, a, b, b, c, c)]
    for member in members:
        await member.join(room)
    senders = {members[0]: "from a", members[2]: {"text": "from b", "n": 2}, members[4]: "from c"}
    for sender, message in senders.items():
        await sender.say(room, message)
    await members[5].say(room, "fence")

    for member in members:
        assert await member.said(room, "fence") == said_frame(room, "fence", members[5].id)
        # the fence came last, so every copy of the earlier messages is in the inbox by now
        for sender, message in senders.items():
            copies = member.take(lambda f, m=message: is_said(f, room, m))
            assert copies == [said_frame(room, message, sender.id)], (member, message)
        assert [f for f in member.inbox if f.get("context") == "user"] == []


async def test_room_view_counts_and_lists_the_members_of_all_servers(cluster, connect):
    a, b, c = cluster
    room = await make_room(b, "view")
    members = [await connect(server) for server in (a, b, c)]
    for member in members:
        await member.join(room)

    views = [await member.request("roomView", room=room) for member in members]
    joined = views[0]["data"]["members"]
    expected = {
        "room": room,
        "membersCount": 3,
        "members": {m.id: {"id": m.id, "joinedAt": now_ms()} for m in members},
    }
    for view in views:
        assert view["status"] == "OK"
        assert view["data"] == expected
        assert view["data"]["members"] == joined  # one truth: the same joinedAt everywhere

    a1, b1, c1 = members
    assert (await b1.request("roomLeave", room=room))["data"] is True
    remaining = {m.id: joined[m.id] for m in (a1, c1)}
    after_leave = {"room": room, "membersCount": 2, "members": remaining}
    assert (await a1.request("roomView", room=room))["data"] == after_leave
    assert (await c1.request("roomView", room=room))["data"] == after_leave

    await c1.close()  # a disconnect leaves every room, on every server (cleanup is asynchronous)
    only_a = {"room": room, "membersCount": 1, "members": {a1.id: joined[a1.id]}}
    await eventually(
        lambda: a1.request("roomView", room=room),
        lambda view: view["data"] == only_a,
        TIMEOUT,
        "a disconnected member of server c still listed on server a",
    )


async def rooms(server: Server) -> list[str]:
    """Every room of the cluster, as ``app.rooms.list()`` on ``server`` has them."""
    return (await server.action("roomsTest"))["list"]


async def test_a_room_created_on_one_server_exists_on_all(cluster, connect):
    a, b, c = cluster
    room = unique("created")
    assert (await a.action("createChatRoom", name=room))["didCreate"] is True
    assert (await b.action("createChatRoom", name=room))["didCreate"] is False
    assert (await c.action("createChatRoom", name=room))["didCreate"] is False
    for server in cluster:
        assert room in await rooms(server)
    for server in (b, c):
        member = await connect(server)
        reply = await member.request("roomAdd", room=room)
        assert reply == {
            "status": "OK",
            "context": "response",
            "data": True,
            "messageId": 2,
            "messageCount": 2,
        }


async def test_a_room_destroyed_on_one_server_is_gone_on_all(cluster, connect):
    a, b, c = cluster
    room = await make_room(a, "doomed")
    fence_room = await make_room(a, "fence")
    members = [await connect(server) for server in (a, a, b, b, c, c)]
    for member in members:
        await member.join(room)
        await member.join(fence_room)
    assert (await b.action("destroyRoomTest", name=room))["didDestroy"] is True
    await members[2].say(fence_room, "after the destroy")  # said by b, as the destroy was

    notices = []
    for member in members:
        await member.said(fence_room, "after the destroy")
        notices.append(member.take(lambda f: f.get("room") == room))
    for member in members:
        assert (await member.request("roomView", room=room))["error"] == "room does not exist"
        assert (await member.request("detailsView"))["data"]["rooms"] == [fence_room]
    assert (await c.action("destroyRoomTest", name=room))["didDestroy"] is False
    for server in cluster:
        assert room not in await rooms(server)
    # every member, on every server (b's two included), is told exactly once
    assert notices == [[said_frame(room, "this room has been deleted", 0)]] * 6


async def test_a_server_without_members_of_a_room_receives_none_of_its_messages(cluster, connect):
    a, b, c = cluster
    room = await make_room(a, "interest")
    fence_room = await make_room(a, "fence")
    a1, b1, c1 = [await connect(server) for server in (a, b, c)]
    for member in (a1, b1):
        await member.join(room)
    for member in (a1, b1, c1):
        await member.join(fence_room)

    async def received() -> list[int]:
        return [(await server.broker())["received"]["say"] for server in cluster]

    before = await received()
    for n in range(5):
        await a1.say(room, f"message {n}")
    await a1.say(fence_room, "fence 1")  # published by a after the five: heard after them
    for member in (a1, b1, c1):
        await member.said(fence_room, "fence 1")
    for member in (a1, b1):
        assert [member.count_said(room, f"message {n}") for n in range(5)] == [1] * 5
    after = await received()
    assert [after[i] - before[i] for i in range(3)] == [6, 6, 1]

    # b's last member leaves: b stops listening, and stops receiving
    await b1.request("roomLeave", room=room)
    for n in range(3):
        await a1.say(room, f"later {n}")
    await a1.say(fence_room, "fence 2")
    for member in (a1, b1, c1):
        await member.said(fence_room, "fence 2")
    assert [a1.count_said(room, f"later {n}") for n in range(3)] == [1] * 3
    assert b1.take(lambda f: f.get("room") == room) == []
    final = await received()
    assert [final[i] - after[i] for i in range(3)] == [4, 1, 1]


async def test_servers_of_another_cluster_on_the_same_redis_are_never_heard(
    cluster, connect, redis_server, launch
):
    """``redis.clusterName`` (default.yaml): servers on one Redis with other names ignore each
    other, a name extending ours included; rooms of the same name stay apart."""
    a, b, _ = cluster
    room = await make_room(a, "foreign")
    a1, b1 = await connect(a), await connect(b)
    for member in (a1, b1):
        await member.join(room)
    for name in ("other", "shared-2"):
        (foreign,) = launch(redis_server.url, (name,), cluster=name)
        only_there = await make_room(foreign, "only-there")
        assert (await foreign.action("createChatRoom", name=room))["didCreate"] is True
        assert only_there not in await rooms(a)
        intruder = await connect(foreign)
        await intruder.join(room)
        await intruder.say(room, "forged")
        sent = await foreign.action("sendToTest", to=b1.id, message="forged")
        assert sent["delivered"] is False
        assert (await foreign.action("sendAllTest", message="forged"))["sent"] is True
        await intruder.said(room, "forged")  # said in its own cluster, where it was heard

    await a1.say(room, "fence")  # said after the forgeries: had they crossed, heard before it
    for member in (a1, b1):
        await member.said(room, "fence")
        assert [f for f in member.inbox if f.get("context") != "response"] == [], member


async def test_chat_middleware_runs_where_said_and_once_per_recipient_where_it_is(
    redis_server, launch, connect
):
    paths = {"actions": [*ACTIONS, "tests/cluster/middleware"]}
    a, b = launch(redis_server.url, ("a", "b"), extra={"general": {"paths": paths}})
    pid = {server: int(server.id.rpartition("-")[2]) for server in (a, b)}
    room = await make_room(a, "mw-chat")
    members = [await connect(server) for server in (a, a, b, b)]
    for member in members:
        await member.join(room)
    sender, skipped = members[2], members[1]

    await sender.say(room, "hello")  # on_say_receive on b; say on each recipient's server
    await sender.say(room, "drop me")  # dropped on b: nobody gets it
    await sender.say(room, f"not for {skipped.id}")  # one recipient's copy dropped
    await sender.say(room, "fence")
    for member in members:
        await member.said(room, "fence")
        hello = member.take(lambda f: f.get("message") == "hello")
        assert hello == [
            {
                **said_frame(room, "hello", sender.id),
                "saidOn": pid[b],
                "deliveredBy": [pid[member.server]],
            }
        ], member
        assert member.count_said(room, "drop me") == 0
        expected = 0 if member is skipped else 1
        assert member.count_said(room, f"not for {skipped.id}") == expected, member
