"""Presence (PROTOCOL.md §8) over the memory broker, no socket: join and leave frames to every
member, exactly once per membership, the joiner's own after its reply, public ``info`` from
join middleware, and one encoded frame for a whole room."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest
from testkit import TIMEOUT

from squall import ChatMiddleware
from squall.connections import Connection

from .conftest import transport_of

NOW = 1_700_000_000_123
ROOMS = {"defaultRoom": {}, "lobby": {"presence": True}}
_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    monkeypatch.setattr("squall.rooms.now_ms", lambda: NOW)


async def ask(core: Any, connection: Connection, **frame: Any) -> dict:
    """Send a verb and write its reply to the connection the moment it resolves, as the socket
    pump does; the reply."""
    message_id = next(_ids)
    reply = core.protocol.receive(connection, json.dumps({"messageId": message_id, **frame}))
    if not isinstance(reply, dict):
        async with asyncio.timeout(TIMEOUT):
            reply = await reply
    connection.send_encoded(core.protocol.encode(reply))
    return json.loads(core.protocol.encode(reply))


def joined(member: str, room: str = "lobby", **extra: Any) -> dict:
    return {
        "context": "presence",
        "event": "join",
        "room": room,
        "id": member,
        "joinedAt": NOW,
        **extra,
    }


def left(member: str, reason: str, room: str = "lobby") -> dict:
    return {"context": "presence", "event": "leave", "room": room, "id": member, "reason": reason}


def presence(connection: Connection) -> list[dict]:
    return [f for f in transport_of(connection).pushed() if f.get("context") == "presence"]


async def members(core: Any, *ids: str, room: str = "lobby") -> list[Connection]:
    """Connections joined to ``room`` one after the other, every frame so far taken out."""
    joined_ones = [core.connect(cid) for cid in ids]
    for connection in joined_ones:
        reply = await ask(core, connection, event="roomAdd", room=room)
        assert reply["data"] is True
        await transport_of(connection).until_frames(2)  # its reply, then its own join
    for connection in joined_ones:
        transport_of(connection).frames.clear()
    return joined_ones


async def test_the_joiner_gets_its_reply_then_its_own_join(make_core):
    core = await make_core(rooms=ROOMS)
    first = core.connect("a")

    reply = await ask(core, first, event="roomAdd", room="lobby")
    frames = await transport_of(first).until_frames(2)

    assert frames == [reply, joined("a")]
    assert reply["data"] is True


async def test_a_join_is_pushed_to_every_member_once_as_one_encoded_frame(make_core):
    core = await make_core(rooms=ROOMS)
    a, b = await members(core, "a", "b")
    c = core.connect("c")

    await ask(core, c, event="roomAdd", room="lobby")
    await transport_of(c).until_frames(2)

    assert presence(a) == presence(b) == presence(c) == [joined("c")]
    frames = [transport_of(m).frames[-1] for m in (a, b, c)]
    assert frames[0] is frames[1] is frames[2]


async def test_a_join_in_a_big_room_is_one_frame_written_to_each_member(make_core):
    core = await make_core(rooms=ROOMS)
    crowd = [core.connect(f"m{n}") for n in range(500)]
    for member in crowd:
        await core.rooms.join(member, "lobby")
    await transport_of(crowd[-1]).until_frames(1)
    for member in crowd:
        transport_of(member).frames.clear()
    newcomer = core.connect("newcomer")

    await ask(core, newcomer, event="roomAdd", room="lobby")
    await transport_of(newcomer).until_frames(2)

    written = [transport_of(m).frames for m in crowd]
    assert all(len(frames) == 1 for frames in written)
    assert len({id(frames[0]) for frames in written}) == 1
    assert json.loads(written[0][0]) == joined("newcomer")


async def test_a_member_that_leaves_is_pushed_to_the_others_with_reason_left(make_core):
    core = await make_core(rooms=ROOMS)
    a, b = await members(core, "a", "b")

    reply = await ask(core, b, event="roomLeave", room="lobby")

    assert presence(a) == [left("b", "left")]
    assert transport_of(b).pushed() == [reply]  # it asked: its reply says it left


async def test_a_disconnected_member_leaves_with_reason_disconnected(make_core):
    core = await make_core(rooms=ROOMS)
    a, b = await members(core, "a", "b")

    b.closed = True
    await core.rooms.leave_all(b)

    assert presence(a) == [left("b", "disconnected")]
    assert await core.rooms.members("lobby") == {"a": {"id": "a", "joinedAt": NOW}}


async def test_a_destroyed_room_pushes_every_members_leave_to_every_member(make_core):
    core = await make_core(rooms=ROOMS)
    a, b = await members(core, "a", "b")

    assert await core.rooms.destroy("lobby") is True

    for member in (a, b):
        pushed = transport_of(member).pushed()
        assert pushed[0]["message"] == "this room has been deleted"
        assert pushed[1:] == [left("a", "destroyed"), left("b", "destroyed")]
        assert member.rooms == []


async def test_exactly_one_join_and_one_leave_per_membership(make_core):
    core = await make_core(rooms=ROOMS)
    (watcher,) = await members(core, "watcher")
    comers = [core.connect(f"c{n}") for n in range(5)]

    for round_ in range(3):
        for comer in comers:
            await ask(core, comer, event="roomAdd", room="lobby")
        for comer in comers[round_:]:
            await ask(core, comer, event="roomLeave", room="lobby")
        for comer in comers[:round_]:
            comer.closed = True
            await core.rooms.leave_all(comer)
            comer.closed = False
    await transport_of(comers[-1]).until_frames(len(transport_of(comers[-1]).frames))

    seen = presence(watcher)
    for comer in comers:
        mine = [(f["event"], f.get("reason")) for f in seen if f["id"] == comer.id]
        assert [event for event, _ in mine] == ["join", "leave"] * 3, comer.id
    assert len(seen) == 30


async def test_a_room_without_presence_pushes_no_presence_frame(make_core):
    core = await make_core(rooms=ROOMS)
    a, b = core.connect("a"), core.connect("b")

    for member in (a, b):
        await ask(core, member, event="roomAdd", room="defaultRoom")
    await ask(core, b, event="roomLeave", room="defaultRoom")

    assert presence(a) == presence(b) == []


async def test_join_middleware_dicts_become_public_info_never_the_session(make_core):
    def name(connection, room):
        connection.session["secret"] = "s3cret"
        return {"name": connection.params["name"]}

    def colour(connection, room):
        return {"colour": "teal"}

    def nothing(connection, room):
        return "not a dict: ignored"

    hooks = [
        ChatMiddleware("name", join=name, priority=1),
        ChatMiddleware("colour", join=colour, priority=2),
        ChatMiddleware("nothing", join=nothing, priority=3),
    ]
    core = await make_core(rooms=ROOMS, chat_middleware=hooks)
    ada = core.connect("ada")
    ada.params["name"] = "Ada"

    await ask(core, ada, event="roomAdd", room="lobby")
    pushed = await transport_of(ada).until_frames(2)
    view = await ask(core, ada, event="roomView", room="lobby")

    info = {"name": "Ada", "colour": "teal"}
    assert pushed[1] == joined("ada", info=info)
    assert view["data"] == {
        "room": "lobby",
        "membersCount": 1,
        "members": {"ada": {"id": "ada", "joinedAt": NOW, "info": info}},
    }
    wire = b"".join(transport_of(ada).frames)
    assert ada.fingerprint.encode() not in wire and b"s3cret" not in wire


async def test_presence_frames_are_not_room_messages_for_say_middleware(make_core):
    seen = []

    def say(connection, room, payload):
        seen.append(payload["context"])
        return {**payload, "tagged": True}

    core = await make_core(rooms=ROOMS, chat_middleware=[ChatMiddleware("tag", say=say)])
    (a,) = await members(core, "a")
    b = core.connect("b")

    await ask(core, b, event="roomAdd", room="lobby")
    await transport_of(b).until_frames(2)
    await ask(core, b, event="say", room="lobby", message="hi")

    assert presence(a) == [joined("b")]
    assert seen == ["user", "user"]  # the say, for a and for b; never the join


async def test_a_member_gone_during_its_join_is_never_announced(make_core):
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(connection, room):
        started.set()
        await release.wait()

    core = await make_core(rooms=ROOMS, chat_middleware=[ChatMiddleware("slow", join=slow)])
    b = core.connect("b")
    joining = asyncio.ensure_future(core.rooms.join(b, "lobby"))
    await asyncio.wait_for(started.wait(), TIMEOUT)
    b.closed = True  # its socket went away while the middleware ran
    release.set()
    await asyncio.wait_for(joining, TIMEOUT)

    assert await core.rooms.members("lobby") == {}
    assert presence(b) == []
