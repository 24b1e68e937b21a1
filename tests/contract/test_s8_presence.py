"""PROTOCOL.md §8 from outside: join and leave frames, whole, to every member at that moment
(the joiner's own after its roomAdd reply), one of each per membership, the reasons, and the
public ``info`` a join middleware gives (never the fingerprint or the session)."""

from __future__ import annotations

import json

import pytest
from testkit import eventually, is_reply, now_ms, ok

from .support import new_room


def presence(frame) -> bool:
    return frame.get("context") == "presence"


def is_leave(frame) -> bool:
    return presence(frame) and frame["event"] == "leave"


def join(room: str, member: str, **info) -> dict:
    frame = {"context": "presence", "event": "join", "room": room, "id": member}
    frame["joinedAt"] = now_ms()
    if info:
        frame["info"] = info
    return frame


def leave(room: str, member: str, reason: str) -> dict:
    return {"context": "presence", "event": "leave", "room": room, "id": member, "reason": reason}


async def ids(*clients) -> list[str]:
    return [(await client.details())["id"] for client in clients]


async def test_s8_the_joiner_gets_its_own_join_after_its_roomAdd_reply(server, connect):
    room = await new_room(server, presence=True)
    client = await connect(server)
    [me] = await ids(client)
    await client.send({"event": "roomAdd", "messageId": "join", "room": room})
    assert await client.next() == ok(True, "join", 2)
    assert await client.next() == join(room, me)


async def test_s8_every_member_at_that_moment_gets_each_join(server, connect):
    room = await new_room(server, presence=True)
    first, second, outsider = await connect(server), await connect(server), await connect(server)
    one, two = await ids(first, second)
    await first.join(room)
    assert await first.next(presence) == join(room, one)
    await second.join(room)
    assert await first.next(presence) == join(room, two)
    assert await second.next(presence) == join(room, two)
    # members joined before, not told to a newcomer; outsiders told nothing
    await second.request("ping")
    assert second.take(presence) == []
    await outsider.request("ping")
    assert outsider.take(presence) == []


async def leave_room(client, room: str) -> None:
    await client.request("roomLeave", room=room)


async def close_socket(client, room: str) -> None:
    await client.close()


@pytest.mark.parametrize(
    ("goes", "reason"),
    [(leave_room, "left"), (close_socket, "disconnected")],
    ids=["roomLeave", "close"],
)
async def test_s8_leave_reason_says_how_the_member_went(server, connect, goes, reason):
    room = await new_room(server, presence=True)
    stayer, leaver = await connect(server), await connect(server)
    [gone] = await ids(leaver)
    await stayer.join(room)
    await leaver.join(room)
    await goes(leaver, room)
    assert await stayer.next(is_leave) == leave(room, gone, reason)


async def test_s8_leave_reason_destroyed_when_the_room_is_destroyed(server, connect):
    room = await new_room(server, presence=True)
    first, second = await connect(server), await connect(server)
    one, two = await ids(first, second)
    await first.join(room)
    await second.join(room)
    assert (await server.action("contractRoomsApi", op="destroy", name=room))["result"] is True
    for client in (first, second):
        leaves = [await client.next(is_leave), await client.next(is_leave)]
        assert sorted(leaves, key=lambda f: f["id"]) == sorted(
            [leave(room, one, "destroyed"), leave(room, two, "destroyed")], key=lambda f: f["id"]
        )


async def test_s8_exactly_one_join_and_one_leave_per_membership(server, connect):
    room = await new_room(server, presence=True)
    watcher, member = await connect(server), await connect(server)
    [them] = await ids(member)
    await watcher.join(room)
    for _ in range(3):
        await member.join(room)
        await member.request("roomLeave", room=room)
    await member.join(room)
    await member.close()
    await watcher.next(lambda f: presence(f) and f.get("reason") == "disconnected")
    await watcher.request("ping")
    theirs = [(f["event"], f.get("reason")) for f in watcher.take(presence) if f["id"] == them]
    assert theirs == [("join", None), ("leave", "left")] * 3 + [("join", None)]


async def test_s8_join_middleware_dict_is_the_members_public_info(server, connect):
    room = await new_room(server, "presence-", presence=True)  # join middleware: session name
    named = await connect(server, query="?sessionID=contract-info-named")
    await named.action("contractSession", set={"name": "Ada", "secret": "s3cret"})
    watcher = await connect(server)
    me, them = await ids(named, watcher)
    await watcher.join(room)
    await named.join(room)
    assert await watcher.next(lambda f: presence(f) and f["id"] == me) == join(room, me, name="Ada")
    view = await watcher.request("roomView", room=room)
    assert view["data"] == {
        "room": room,
        "membersCount": 2,
        "members": {
            them: {"id": them, "joinedAt": now_ms(), "info": {"name": "guest"}},
            me: {"id": me, "joinedAt": now_ms(), "info": {"name": "Ada"}},
        },
    }
    shown = json.dumps([view, watcher.inbox])
    assert "s3cret" not in shown and "contract-info-named" not in shown


async def test_s8_a_member_who_leaves_gets_its_reply_and_no_frame_of_its_own_leave(server, connect):
    # "pushed to every member at that moment": the leaver is no longer one
    room = await new_room(server, presence=True)
    stayer, leaver = await connect(server), await connect(server)
    await stayer.join(room)
    await leaver.join(room)
    assert await leaver.request("roomLeave", room=room) == ok(True, 2, 2)
    await stayer.next(lambda f: presence(f) and f["event"] == "leave")
    await leaver.request("ping")
    assert [f["event"] for f in leaver.take(presence)] == ["join"]  # its own
    assert [f for f in leaver.inbox if not is_reply(f)] == []


async def test_s8_a_room_without_presence_pushes_no_presence_frame(server, connect):
    room = await new_room(server)
    first, second = await connect(server), await connect(server)
    await first.join(room)
    await second.join(room)
    await second.request("roomLeave", room=room)
    await eventually(
        lambda: first.request("roomView", room=room),
        lambda v: v["data"]["membersCount"] == 1,
    )
    assert first.take(presence) == [] and second.take(presence) == []
