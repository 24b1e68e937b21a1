"""PROTOCOL.md §5 from outside: starting rooms, createChatRoom and the server API on rooms,
room options and their defaults, chat middleware (order, once where said, once per recipient)
and what leaving does."""

from __future__ import annotations

import pytest
from testkit import eventually, is_reply, now_ms, ok, unique

from .support import new_room, running_server


def said(frame) -> bool:
    return frame.get("context") == "user"


def presence(frame) -> bool:
    return frame.get("context") == "presence"


@pytest.fixture(scope="module")
def defaults(tmp_path_factory):
    """Rooms are presence rooms with a history of 3 unless their options say otherwise."""
    options = {
        "general": {
            "roomDefaults": {"presence": True, "history": {"size": 3, "ttl": 60000}},
            "startingChatRooms": {
                "defaultRoom": {},
                "plainRoom": {"presence": False, "history": {"size": 0}},
                "oneKept": {"history": {"size": 1}},
            },
        }
    }
    with running_server(tmp_path_factory, "defaults", options) as started:
        yield started


async def rooms_api(server, op, **params):
    return (await server.action("contractRoomsApi", op=op, **params))["result"]


# --- rooms exist before anyone joins -------------------------------------------------------------


async def test_s5_startingChatRooms_default_is_defaultRoom_alone(renamed):
    # nobody makes rooms on the renamed server: its rooms are the starting ones
    assert await rooms_api(renamed, "list") == ["defaultRoom"]


async def test_s5_defaultRoom_by_default_is_a_plain_room(server, connect):
    client = await connect(server)
    me = (await client.details())["id"]
    assert await client.request("roomAdd", room="defaultRoom") == ok(True, 2, 2)
    await client.say("defaultRoom", "plain")
    assert await client.next(lambda f: not is_reply(f)) == {
        "context": "user",
        "message": "plain",
        "room": "defaultRoom",
        "from": me,
        "sentAt": now_ms(),
    }  # fmt: skip  (no presence frame came before it, no offset or epoch in it)
    await client.request("roomLeave", room="defaultRoom")


async def test_s5_createChatRoom_creates_a_room_that_can_be_joined(server, connect):
    name = unique("made")
    made = await server.action("createChatRoom", name=name)
    assert (made["name"], made["didCreate"]) == (name, True)
    again = await server.action("createChatRoom", name=name)
    assert (again["name"], again["didCreate"]) == (name, False)
    client = await connect(server)
    await client.join(name)


async def test_s5_server_api_add_exists_list_destroy(server, connect):
    name = unique("api")
    assert await rooms_api(server, "exists", name=name) is False
    assert await rooms_api(server, "add", name=name) is True
    assert await rooms_api(server, "add", name=name) is False
    assert await rooms_api(server, "exists", name=name) is True
    assert name in await rooms_api(server, "list")
    client = await connect(server)
    await client.join(name)
    assert await rooms_api(server, "destroy", name=name) is True
    assert await rooms_api(server, "destroy", name=name) is False
    assert await rooms_api(server, "exists", name=name) is False
    assert name not in await rooms_api(server, "list")
    await eventually(client.details, lambda d: d["rooms"] == [], what="membership dropped")
    assert (await client.request("roomAdd", room=name))["error"] == "room does not exist"


async def test_s5_server_api_add_takes_room_options(server, connect):
    name = unique("api-options")
    assert await rooms_api(server, "add", name=name, options={"presence": True}) is True
    client = await connect(server)
    me = (await client.details())["id"]
    await client.join(name)
    assert await client.next(presence) == {
        "context": "presence", "event": "join", "room": name, "id": me, "joinedAt": now_ms(),
    }  # fmt: skip


# --- room options and general.roomDefaults -------------------------------------------------------


async def test_s5_room_options_default_to_general_roomDefaults(defaults, connect):
    name = await new_room(defaults)
    client = await connect(defaults)
    await client.join(name)
    assert (await client.next(presence))["event"] == "join"
    for n in range(4):
        await client.say(name, f"m{n}")
    offsets = [(await client.next(said))["offset"] for _ in range(4)]
    assert offsets == [1, 2, 3, 4]
    history = (await client.request("roomHistory", room=name))["data"]
    assert [m["offset"] for m in history["messages"]] == [2, 3, 4]  # size 3


async def test_s5_startingChatRooms_options_apply_over_the_defaults(defaults, connect):
    client = await connect(defaults)
    await client.join("defaultRoom")  # {}: the defaults
    assert (await client.next(presence))["event"] == "join"
    await client.join("plainRoom")  # presence false, history size 0 (off)
    await client.say("plainRoom", "plain")
    frame = await client.next(said)
    assert "offset" not in frame and "epoch" not in frame
    assert client.take(lambda f: presence(f) and f["room"] == "plainRoom") == []
    history = (await client.request("roomHistory", room="plainRoom"))["data"]
    assert history == {"room": "plainRoom", "epoch": None, "offset": 0, "messages": []}


async def test_s5_each_room_option_left_out_comes_from_the_defaults(defaults, connect):
    # oneKept names only history.size: presence and history.ttl are the defaults'
    client = await connect(defaults)
    await client.join("oneKept")
    assert (await client.next(presence))["event"] == "join"
    frames = [await say_and_take(client, "oneKept", text) for text in ("a", "b")]
    history = (await client.request("roomHistory", room="oneKept"))["data"]
    assert history["messages"] == frames[1:]


async def say_and_take(client, room, text):
    await client.say(room, text)
    return await client.next(said)


async def test_s5_createChatRoom_options_apply_over_the_defaults(defaults, connect):
    name = await new_room(defaults, presence=False, history={"size": 0, "ttl": 60000})
    client = await connect(defaults)
    await client.join(name)
    await client.say(name, "plain")
    frame = await client.next(said)
    assert "offset" not in frame
    assert client.take(presence) == []


# --- chat middleware -----------------------------------------------------------------------------


async def test_s5_chat_middleware_runs_in_ascending_priority_default_100(server, connect):
    room = "mw-order"  # tagged by hooks of priority 150, 100 (the default) and 50
    client = await connect(server)
    await client.join(room)
    await client.say(room, "m")
    assert (await client.next(said))["message"] == "m|early|default|late"


async def test_s5_on_say_receive_runs_once_where_said(server, connect):
    room = await new_room(server, "cmw-say")
    members = [await connect(server) for _ in range(3)]
    for member in members:
        await member.join(room)
    await members[0].say(room, "hello")
    for member in members:
        assert (await member.next(said))["message"] == "hello"
    assert server.events("receive").count(f"{room} hello") == 1


async def test_s5_on_say_receive_may_change_it_and_say_changes_each_recipients_copy(
    server, connect
):
    room = "mw-chat"  # on_say_receive upper-cases, say adds "to": the recipient
    members = [await connect(server) for _ in range(3)]
    ids = [(await member.details())["id"] for member in members]
    for member in members:
        await member.join(room)
    await members[0].say(room, "hello")
    for member, me in zip(members, ids, strict=True):
        assert await member.next(said) == {
            "context": "user", "message": "HELLO", "room": room, "from": ids[0],
            "sentAt": now_ms(), "to": me,
        }  # fmt: skip


async def test_s5_on_say_receive_returning_None_drops_the_message(server, connect):
    room = "mw-chat"
    sender, other = await connect(server), await connect(server)
    await sender.join(room)
    await other.join(room)
    await sender.say(room, "drop me")
    await sender.say(room, "after")
    assert (await other.next(said))["message"] == "AFTER"
    assert (await sender.next(said))["message"] == "AFTER"


async def test_s5_say_middleware_may_drop_one_recipients_copy(server, connect):
    room = await new_room(server, "cmw-say")
    sender, other = await connect(server), await connect(server)
    await sender.join(room)
    await other.join(room)
    await sender.say(room, "not for the sender")
    await sender.say(room, "for all")
    assert (await other.next(said))["message"] == "not for the sender"
    assert (await other.next(said))["message"] == "for all"
    assert (await sender.next(said))["message"] == "for all"


# --- leaving -------------------------------------------------------------------------------------


async def test_s5_leaving_explicitly_by_disconnect_or_by_destroy_runs_leave_middleware(
    server, connect
):
    room = await new_room(server, "notify-")  # its leave middleware records each call
    leaver, dropper, stayer, watcher = [await connect(server) for _ in range(4)]
    ids = [(await c.details())["id"] for c in (leaver, dropper, stayer)]
    for client in (leaver, dropper, stayer, watcher):
        await client.join(room)

    def members():
        return watcher.request("roomView", room=room)

    await leaver.request("roomLeave", room=room)
    assert (await leaver.details())["rooms"] == []
    await dropper.close()
    view = await eventually(members, lambda v: v["data"]["membersCount"] == 2, what="dropped")
    assert set(view["data"]["members"]) == {ids[2], (await watcher.details())["id"]}
    assert await rooms_api(server, "destroy", name=room) is True
    await eventually(stayer.details, lambda d: d["rooms"] == [], what="destroyed")
    left = [line for line in server.events("leave") if line.endswith(f" {room}")]
    assert sorted(left) == sorted(f"{i} {room}" for i in [*ids, (await watcher.details())["id"]])


async def test_s5_a_member_whose_leave_middleware_refuses_still_leaves_by_disconnect(
    server, connect
):
    room = "mw-sticky"  # its leave middleware refuses every roomLeave
    sticky, watcher = await connect(server), await connect(server)
    await sticky.join(room)
    await watcher.join(room)
    await sticky.close()
    view = await eventually(
        lambda: watcher.request("roomView", room=room),
        lambda v: v["data"]["membersCount"] == 1,
        what="the disconnected member gone",
    )
    assert list(view["data"]["members"]) == [(await watcher.details())["id"]]
