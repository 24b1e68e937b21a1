"""Rooms over real sockets: roomAdd/roomLeave/roomView/say, their errors, chat middleware,
leaving on disconnect, fan-out to 500 members, 200 abrupt disconnects (PROTOCOL.md §2, §3, §5)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from testkit import TIMEOUT, eventually, failed, now_ms, ok, open_client

from .support import destroyed, leaves

NOT_MEMBER = "connection not in this room (defaultRoom)"
NO_MESSAGE = "both room and message are required"


async def new_room(client, prefix: str = "room-") -> str:
    """A room no other test uses, made with the createChatRoom action."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    reply = await client.action("createChatRoom", name=name)
    assert "error" not in reply, reply
    return name


def said(room: str, message, sender: str) -> dict:
    """The frame every member receives when ``sender`` says ``message`` (PROTOCOL.md §2.5)."""
    return {"context": "user", "message": message, "room": room, "from": sender, "sentAt": now_ms()}


def is_user_frame(frame) -> bool:
    return isinstance(frame, dict) and frame.get("context") == "user"


async def test_roomAdd_joins_an_existing_room(client):
    assert await client.request("roomAdd", room="defaultRoom") == ok(True, message_id=1, count=1)
    assert (await client.details())["rooms"] == ["defaultRoom"]


@pytest.mark.parametrize(
    ("joined", "verb", "params", "error"),
    [
        (
            ["defaultRoom"],
            "roomAdd",
            {"room": "defaultRoom"},
            "connection already in this room (defaultRoom)",
        ),
        ([], "roomAdd", {"room": "no-such-room"}, "room does not exist"),
        ([], "roomAdd", {"room": "mw-blocked"}, "this room is closed to you"),
        ([], "roomLeave", {"room": "defaultRoom"}, NOT_MEMBER),
        (["mw-sticky"], "roomLeave", {"room": "mw-sticky"}, "you cannot leave this room"),
        ([], "roomView", {"room": "defaultRoom"}, NOT_MEMBER),
        ([], "say", {"message": "hi"}, NO_MESSAGE),
        (["defaultRoom"], "say", {"room": "defaultRoom"}, NO_MESSAGE),
        (["defaultRoom"], "say", {"room": "defaultRoom", "message": ""}, NO_MESSAGE),
        ([], "say", {"room": "defaultRoom", "message": "hi"}, NOT_MEMBER),
        (
            ["mw-chat"],
            "say",
            {"room": "mw-chat", "message": "refuse me"},
            "that message is not allowed",
        ),
    ],
)
async def test_room_verb_refused_with_its_error_leaves_the_rooms_as_they_were(
    client, joined, verb, params, error
):
    """Join middleware, leave middleware and say middleware refusals included (PROTOCOL.md §3)."""
    for room in joined:
        await client.join(room)
    count = len(joined) + 1
    assert await client.request(verb, **params) == failed(error, message_id=count, count=count)
    assert (await client.details())["rooms"] == joined


async def test_roomAdd_room_made_by_createChatRoom(client):
    room = await new_room(client)
    assert await client.request("roomAdd", room=room) == ok(True)


async def test_rooms_server_api_sees_created_and_destroyed_rooms(client):
    room = await new_room(client)
    reply = await client.action("roomsTest", name=room)
    assert reply["exists"] is True
    assert {"defaultRoom", "mw-chat", room} <= set(reply["list"])
    await client.action("destroyRoomTest", name=room)
    reply = await client.action("roomsTest", name=room)
    assert (reply["exists"], room in reply["list"]) == (False, False)


async def test_roomLeave_leaves(client):
    await client.request("roomAdd", room="defaultRoom")
    assert await client.request("roomLeave", room="defaultRoom") == ok(True, message_id=2, count=2)
    assert (await client.details())["rooms"] == []


async def test_roomView_lists_members(server, connect):
    first, second = await connect(server), await connect(server)
    room = await new_room(first)
    await first.request("roomAdd", room=room)
    await second.request("roomAdd", room=room)
    first_id, second_id = (await first.details())["id"], (await second.details())["id"]
    reply = await first.request("roomView", room=room)
    assert reply == ok(
        {
            "room": room,
            "membersCount": 2,
            "members": {
                first_id: {"id": first_id, "joinedAt": now_ms()},
                second_id: {"id": second_id, "joinedAt": now_ms()},
            },
        }
    )


async def test_say_reaches_every_member_and_the_sender(server, connect):
    speaker, listener, outsider = (
        await connect(server),
        await connect(server),
        await connect(server),
    )
    room = await new_room(speaker)
    await speaker.request("roomAdd", room=room)
    await listener.request("roomAdd", room=room)
    speaker_id = (await speaker.details())["id"]

    reply = await speaker.request("say", room=room, message="hello room")

    assert reply == ok(message_id=reply["messageId"], count=speaker.sent)
    assert await speaker.next(is_user_frame) == said(room, "hello room", speaker_id)
    assert await listener.next(is_user_frame) == said(room, "hello room", speaker_id)
    await outsider.request("ping")
    assert [f for f in outsider.inbox if is_user_frame(f)] == []


async def test_say_reaches_only_the_room_it_was_said_in(server, connect):
    speaker, neighbour = await connect(server), await connect(server)
    room, other_room = await new_room(speaker), await new_room(speaker)
    await speaker.request("roomAdd", room=room)
    await speaker.request("roomAdd", room=other_room)
    await neighbour.request("roomAdd", room=other_room)
    await speaker.request("say", room=room, message="first room only")
    await speaker.request("say", room=other_room, message="second room")
    assert (await neighbour.next(is_user_frame))["message"] == "second room"
    assert [f["room"] for f in speaker.inbox if is_user_frame(f)] == [room, other_room]


async def test_say_stops_reaching_a_member_who_left(server, connect):
    speaker, leaver = await connect(server), await connect(server)
    room = await new_room(speaker)
    await speaker.request("roomAdd", room=room)
    await leaver.request("roomAdd", room=room)
    await leaver.request("roomLeave", room=room)
    await leaver.request("roomAdd", room="defaultRoom")
    await speaker.request("roomAdd", room="defaultRoom")
    await speaker.request("say", room=room, message="after you left")
    await speaker.request("say", room="defaultRoom", message="marker")
    # one sender's messages keep their order: the marker arriving first proves the drop
    assert (await leaver.next(is_user_frame))["message"] == "marker"
    assert [f for f in leaver.inbox if is_user_frame(f)] == []


async def test_detailsView_lists_rooms_in_join_order(client):
    await client.request("roomAdd", room="notify-room")
    await client.request("roomAdd", room="defaultRoom")
    assert (await client.details())["rooms"] == ["notify-room", "defaultRoom"]


async def test_say_in_a_room_with_a_unicode_name(client):
    room = await new_room(client, prefix="salle ☃ ")
    await client.request("roomAdd", room=room)
    client_id = (await client.details())["id"]
    await client.request("say", room=room, message="bonne journée 🌧")
    assert await client.next(is_user_frame) == said(room, "bonne journée 🌧", client_id)


async def test_say_object_message_arrives_as_object(server, connect):
    speaker = await connect(server)
    room = await new_room(speaker)
    await speaker.request("roomAdd", room=room)
    speaker_id = (await speaker.details())["id"]
    message = {"kind": "move", "to": [3, 4], "nested": {"ok": True}}
    assert (await speaker.request("say", room=room, message=message))["status"] == "OK"
    assert await speaker.next(is_user_frame) == said(room, message, speaker_id)


async def test_say_changed_by_middleware_per_recipient(server, connect):
    speaker, listener = await connect(server), await connect(server)
    await speaker.request("roomAdd", room="mw-chat")
    await listener.request("roomAdd", room="mw-chat")
    speaker_id, listener_id = (await speaker.details())["id"], (await listener.details())["id"]
    await speaker.request("say", room="mw-chat", message="quiet please")
    expected = said("mw-chat", "QUIET PLEASE", speaker_id)
    assert await speaker.next(is_user_frame) == {**expected, "to": speaker_id}
    assert await listener.next(is_user_frame) == {**expected, "to": listener_id}


async def test_say_middleware_runs_by_ascending_priority(client):
    await client.request("roomAdd", room="mw-order")
    await client.request("say", room="mw-order", message="x")
    assert (await client.next(is_user_frame))["message"] == "x|early|default|late"


async def test_say_dropped_by_middleware_reaches_nobody(server, connect):
    speaker, listener = await connect(server), await connect(server)
    await speaker.request("roomAdd", room="mw-chat")
    await listener.request("roomAdd", room="mw-chat")
    await speaker.request("say", room="mw-chat", message="drop me")
    await speaker.request("say", room="mw-chat", message="after")
    # Messages of one sender keep their order, so "AFTER" arriving first proves the drop.
    assert (await listener.next(is_user_frame))["message"] == "AFTER"
    assert (await speaker.next(is_user_frame))["message"] == "AFTER"


async def test_room_destroyed_tells_members_and_removes_them(server, connect):
    member, other = await connect(server), await connect(server)
    room = await new_room(member, prefix="notify-")
    await member.request("roomAdd", room=room)
    await other.request("roomAdd", room=room)
    member_id = (await member.details())["id"]

    assert (await other.action("destroyRoomTest", name=room))["didDestroy"] is True

    notice = await member.next(is_user_frame)
    assert (notice["room"], notice["message"]) == (room, "this room has been deleted")
    assert (await member.details())["rooms"] == []
    assert (member_id, room) in leaves(server)
    assert await member.request("roomAdd", room=room) == failed("room does not exist")


async def test_disconnect_leaves_rooms_and_runs_leave_middleware(server, connect):
    stayer, leaver = await connect(server), await connect(server)
    await stayer.request("roomAdd", room="notify-room")
    await leaver.request("roomAdd", room="notify-room")
    leaver_id = (await leaver.details())["id"]
    await leaver.close()

    async def members():
        return (await stayer.request("roomView", room="notify-room"))["data"]["members"]

    await eventually(members, lambda found: leaver_id not in found)

    await eventually(lambda: leaves(server), lambda found: (leaver_id, "notify-room") in found)


# --- load: fan-out and abrupt disconnects ----------------------------------------------------


async def open_many(server, count: int) -> list:
    """``count`` clients, connected 50 at a time (the accept backlog is finite)."""
    gate = asyncio.Semaphore(50)

    async def one():
        async with gate:
            return await open_client(server)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_say_fans_out_to_500_members_complete_and_in_order(server, client):
    room = await new_room(client)
    members = await open_many(server, 500)
    try:
        await asyncio.gather(*(m.request("roomAdd", room=room) for m in members))
        senders = members[:3]
        per_sender = 10

        async def speak(index: int, sender) -> None:
            for n in range(per_sender):
                await sender.send({"event": "say", "room": room, "message": {"s": index, "n": n}})

        await asyncio.gather(*(speak(i, s) for i, s in enumerate(senders)))

        async def collect(member) -> dict:
            seen: dict[int, list[int]] = {0: [], 1: [], 2: []}
            for _ in range(len(senders) * per_sender):
                frame = await member.next(is_user_frame, timeout=TIMEOUT * 3)
                seen[frame["message"]["s"]].append(frame["message"]["n"])
            return seen

        everything = await asyncio.gather(*(collect(m) for m in members))
        in_order = {
            0: list(range(per_sender)),
            1: list(range(per_sender)),
            2: list(range(per_sender)),
        }
        assert [i for i, seen in enumerate(everything) if seen != in_order] == []
    finally:
        await asyncio.gather(*(m.close() for m in members), return_exceptions=True)


async def status_connections(client) -> int:
    """How many connections the status action reports."""
    reply = await client.action("status")
    return reply["connections"]["total"]


async def test_abrupt_disconnects_leave_no_trace(server, client):
    room = await new_room(client, prefix="notify-")
    await client.request("roomAdd", room=room)
    baseline = await status_connections(client)
    vanishing = await open_many(server, 200)
    await asyncio.gather(*(c.request("roomAdd", room=room) for c in vanishing))
    ids = {(await c.details())["id"] for c in vanishing}
    assert await status_connections(client) == baseline + 200
    assert (await client.request("roomView", room=room))["data"]["membersCount"] == 201

    for c in vanishing:
        c.reset()

    async def view():
        return (await client.request("roomView", room=room))["data"]

    final = await eventually(view, lambda data: data["membersCount"] == 1, timeout=TIMEOUT * 2)
    assert list(final["members"]) == [(await client.details())["id"]]
    await eventually(lambda: status_connections(client), lambda total: total <= baseline)
    assert {cid for cid, left in leaves(server) if left == room} == ids
    assert ids <= set(destroyed(server))  # connection middleware destroy ran for each
