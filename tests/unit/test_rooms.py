"""Rooms over the memory broker: server API, membership, fan-out and chat middleware (§5)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from squall import ChatMiddleware, codec
from squall.broker import Member, MemoryBroker
from squall.connections import ConnectionRegistry
from squall.errors import (
    AlreadyInRoom,
    ErrorMessages,
    InvalidRoomName,
    NotInRoom,
    RoomNotExist,
    TooManyRooms,
)
from squall.room_options import DEFAULT_OPTIONS
from squall.rooms import Rooms, valid_room_name

from .conftest import MESSAGES, bounded, socket_connection, transport_of

NOW = 1_700_000_000_123


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    monkeypatch.setattr("squall.rooms.now_ms", lambda: NOW)


def said(message, room="defaultRoom", sender="c0"):
    return {"context": "user", "message": message, "room": room, "from": sender, "sentAt": NOW}


DELETED = said("this room has been deleted", sender=0)


async def members_of(core, *ids, room="defaultRoom"):
    """Connections with the given ids, joined to ``room``."""
    connections = [core.connect(connection_id) for connection_id in ids]
    for connection in connections:
        await core.rooms.join(connection, room)
    return connections


def client_text(error: BaseException) -> str:
    return MESSAGES.text(error)


# -- server API -------------------------------------------------------------------------------


async def test_rooms_add_exists_list(make_core):
    core = await make_core(rooms=[])

    assert await core.rooms.add("b") is True
    assert await core.rooms.add("a") is True
    assert await core.rooms.add("a") is False
    assert await core.rooms.exists("a") is True
    assert await core.rooms.exists("c") is False
    assert await core.rooms.list() == ["a", "b"]


BAD_NAMES = [
    "",
    None,
    5,
    ["a"],
    "a" * 129,
    "nul\x00inside",
    "new\nline",
    "tab\t",
    "del\x7f",
    "c1\x85",
]


@pytest.mark.parametrize("room", BAD_NAMES)
async def test_rooms_add_refuses_an_invalid_room_name(make_core, room):
    core = await make_core(rooms=[])

    with pytest.raises(InvalidRoomName) as caught:
        await core.rooms.add(room)

    assert client_text(caught.value) == "invalid room name"
    assert caught.value.http_status == 422
    assert await core.rooms.list() == []


@pytest.mark.parametrize(
    "room", ["a", "a" * 128, "Salle de réunion", "房间", "emoji 🎉", "a b-c.d:e"]
)
def test_valid_room_names(room):
    assert valid_room_name(room, 128)


def test_room_name_length_is_counted_in_characters_and_configurable():
    assert valid_room_name("é" * 4, 4) and not valid_room_name("é" * 5, 4)


async def test_rooms_add_refuses_past_max_rooms_but_existing_names_still_answer(make_core):
    core = await make_core(rooms=["a", "b"])
    core.rooms.max_rooms = 3

    assert await core.rooms.add("c") is True
    with pytest.raises(TooManyRooms) as caught:
        await core.rooms.add("d")

    assert client_text(caught.value) == "too many rooms"
    assert await core.rooms.add("a") is False  # an existing room is no new room
    assert await core.rooms.list() == ["a", "b", "c"]
    await core.rooms.destroy("c")
    assert await core.rooms.add("d") is True


# -- temporary rooms left empty are reaped: clients cannot fill the server with rooms ---------

TTL_MS = 100  # general.emptyRoomTtl in these tests: the sweep then runs every 25 ms


class Reaped:
    """A memory broker's rooms, with an event per destroyed room."""

    def __init__(self) -> None:
        self.broker = MemoryBroker()
        self.rooms = Rooms(self.broker, [], MESSAGES, empty_room_ttl_ms=TTL_MS)
        self.destroyed: dict[str, asyncio.Event] = {}
        self.at: dict[str, float] = {}
        destroy_room = self.broker.destroy_room

        async def recording(room: str) -> bool:
            self.at[room] = time.monotonic()
            self.destroyed.setdefault(room, asyncio.Event()).set()
            return await destroy_room(room)

        self.broker.destroy_room = recording  # type: ignore[method-assign]

    async def wait_destroyed(self, room: str) -> float:
        await bounded(self.destroyed.setdefault(room, asyncio.Event()).wait())
        return self.at[room]


@pytest.fixture
async def reaped():
    found = Reaped()
    await found.broker.start(found.rooms, ConnectionRegistry())
    yield found
    found.rooms.stop()
    await found.broker.stop()


async def test_temporary_room_never_joined_is_destroyed_after_the_ttl(reaped):
    created = time.monotonic()
    await reaped.rooms.add("lasting")
    await reaped.rooms.add("passing", temporary=True)

    destroyed_at = await reaped.wait_destroyed("passing")

    assert destroyed_at - created >= TTL_MS / 1000
    assert await reaped.rooms.list() == ["lasting"]


async def test_temporary_room_is_kept_while_it_has_a_member(reaped):
    member = socket_connection("c0")
    await reaped.rooms.add("passing", temporary=True)
    await reaped.rooms.join(member, "passing")

    await asyncio.sleep(3 * TTL_MS / 1000)  # time is the behaviour: three TTLs with a member
    assert await reaped.rooms.exists("passing")
    await reaped.rooms.leave(member, "passing")
    left = time.monotonic()

    assert await reaped.wait_destroyed("passing") - left >= TTL_MS / 1000
    assert await reaped.rooms.list() == []


async def test_rooms_that_are_not_temporary_are_never_reaped(reaped):
    """Configured rooms and rooms that server code adds stay, empty or not."""
    await reaped.rooms.add("configured")
    await reaped.rooms.add("passing", temporary=True)
    await reaped.wait_destroyed("passing")

    await asyncio.sleep(3 * TTL_MS / 1000)  # time is the behaviour: three more TTLs
    assert await reaped.rooms.list() == ["configured"]
    assert "configured" not in reaped.destroyed


async def test_temporary_room_destroyed_early_is_forgotten(reaped):
    await reaped.rooms.add("passing", temporary=True)
    assert await reaped.rooms.destroy("passing") is True
    await reaped.rooms.add("passing")  # the same name again, now by server code

    await asyncio.sleep(3 * TTL_MS / 1000)  # time is the behaviour: the old TTL is long past
    assert await reaped.rooms.list() == ["passing"]


async def test_without_ttl_temporary_rooms_stay(make_core):
    core = await make_core(rooms=[])

    assert await core.rooms.add("passing", temporary=True) is True
    assert await core.rooms.list() == ["passing"]


@pytest.mark.parametrize("room", ["", None, 5, "a" * 129, "nul\x00"])
async def test_rooms_exists_false_for_non_names(make_core, room):
    core = await make_core()

    assert await core.rooms.exists(room) is False


async def test_rooms_destroy(make_core):
    core = await make_core(rooms=["a", "b"])

    assert await core.rooms.destroy("a") is True
    assert await core.rooms.destroy("a") is False
    assert await core.rooms.exists("a") is False
    assert await core.rooms.list() == ["b"]


async def test_rooms_members_of_empty_and_missing_rooms(make_core):
    core = await make_core()

    assert await core.rooms.members("defaultRoom") == {}
    assert await core.rooms.members("nowhere") == {}


async def test_rooms_members_with_joined_at(make_core):
    core = await make_core()
    await members_of(core, "c0", "c1")

    assert await core.rooms.members("defaultRoom") == {
        "c0": {"id": "c0", "joinedAt": NOW},
        "c1": {"id": "c1", "joinedAt": NOW},
    }


async def test_rooms_broadcast_from_server_code(make_core):
    core = await make_core()
    connections = await members_of(core, "c0", "c1")

    await core.rooms.broadcast("defaultRoom", {"alert": "maintenance"})

    for connection in connections:
        assert transport_of(connection).pushed() == [said({"alert": "maintenance"}, sender=0)]


async def test_rooms_broadcast_with_a_sender(make_core):
    core = await make_core()
    (member,) = await members_of(core, "c0")

    await core.rooms.broadcast("defaultRoom", "hi", sender="bot")

    assert transport_of(member).pushed() == [said("hi", sender="bot")]


# -- membership -------------------------------------------------------------------------------


async def test_join_records_membership_everywhere(make_core):
    core = await make_core(rooms=["defaultRoom", "other"])
    (member,) = await members_of(core, "c0")
    await core.rooms.join(member, "other")

    assert member.rooms == ["defaultRoom", "other"]
    assert core.rooms.local_members("defaultRoom") == 1
    assert sorted(core.rooms.local_rooms()) == ["defaultRoom", "other"]
    assert await core.broker.members("other") == {"c0": Member(NOW)}


async def test_join_missing_room(make_core):
    core = await make_core()
    member = core.connect("c0")

    with pytest.raises(RoomNotExist) as caught:
        await core.rooms.join(member, "nowhere")

    assert client_text(caught.value) == "room does not exist"
    assert member.rooms == []


async def test_join_twice(make_core):
    core = await make_core()
    (member,) = await members_of(core, "c0")

    with pytest.raises(AlreadyInRoom) as caught:
        await core.rooms.join(member, "defaultRoom")

    assert client_text(caught.value) == "connection already in this room (defaultRoom)"
    assert member.rooms == ["defaultRoom"]


async def test_leave(make_core):
    core = await make_core()
    stay, go = await members_of(core, "c0", "c1")

    await core.rooms.leave(go, "defaultRoom")

    assert go.rooms == []
    assert list(await core.rooms.members("defaultRoom")) == ["c0"]
    assert core.rooms.local_members("defaultRoom") == 1
    assert stay.rooms == ["defaultRoom"]


async def test_leave_last_member_drops_the_local_index(make_core):
    core = await make_core()
    (member,) = await members_of(core, "c0")

    await core.rooms.leave(member, "defaultRoom")

    assert core.rooms.local_rooms() == []
    assert await core.rooms.exists("defaultRoom") is True


async def test_leave_not_a_member(make_core):
    core = await make_core()

    with pytest.raises(NotInRoom) as caught:
        await core.rooms.leave(core.connect("c0"), "defaultRoom")

    assert client_text(caught.value) == "connection not in this room (defaultRoom)"


async def test_leave_missing_room(make_core):
    core = await make_core()

    with pytest.raises(RoomNotExist):
        await core.rooms.leave(core.connect("c0"), "nowhere")


async def test_view(make_core):
    core = await make_core()
    viewer, _ = await members_of(core, "c0", "c1")

    assert await core.rooms.view(viewer, "defaultRoom") == {
        "room": "defaultRoom",
        "membersCount": 2,
        "members": {"c0": {"id": "c0", "joinedAt": NOW}, "c1": {"id": "c1", "joinedAt": NOW}},
    }


async def test_view_not_a_member(make_core):
    core = await make_core()
    await members_of(core, "c1")

    with pytest.raises(NotInRoom):
        await core.rooms.view(core.connect("c0"), "defaultRoom")


async def test_say_not_a_member(make_core):
    core = await make_core()
    (member,) = await members_of(core, "c1")

    with pytest.raises(NotInRoom):
        await core.rooms.say(core.connect("c0"), "defaultRoom", "hi")

    assert transport_of(member).frames == []


async def test_leave_all(make_core):
    core = await make_core(rooms=["a", "b", "c"])
    member = core.connect("c0")
    for room in ("a", "b"):
        await core.rooms.join(member, room)

    await core.rooms.leave_all(member)

    assert member.rooms == []
    assert core.rooms.local_rooms() == []
    assert await core.broker.members("a") == {}
    assert await core.broker.members("b") == {}


# -- fan-out ----------------------------------------------------------------------------------


async def test_say_reaches_every_member_including_the_sender(make_core):
    core = await make_core(rooms=["defaultRoom", "other"])
    members = await members_of(core, "c0", "c1", "c2")
    outsider = core.connect("c3")
    await core.rooms.join(outsider, "other")

    await core.rooms.say(members[0], "defaultRoom", "hello")

    for member in members:
        assert transport_of(member).pushed() == [said("hello")]
    assert transport_of(outsider).frames == []


async def test_say_encodes_the_payload_once_for_every_member(make_core, monkeypatch):
    encoded = []
    original = codec.dumps

    def counting_dumps(value):
        encoded.append(value)
        return original(value)

    core = await make_core()
    members = await members_of(core, *(f"c{i}" for i in range(50)))
    monkeypatch.setattr(codec, "dumps", counting_dumps)  # whoever encodes, rooms or broker

    await core.rooms.say(members[0], "defaultRoom", "once")

    frames = [transport_of(member).frames for member in members]
    assert all(len(written) == 1 for written in frames)
    first = frames[0][0]
    assert all(written[0] is first for written in frames)  # one bytes object for all
    assert encoded == [said("once")]
    assert transport_of(members[49]).pushed() == [said("once")]


async def test_say_to_closed_member_is_skipped(make_core):
    core = await make_core()
    sender, gone = await members_of(core, "c0", "c1")
    gone.closed = True

    await core.rooms.say(sender, "defaultRoom", "hi")

    assert transport_of(gone).frames == []
    assert transport_of(sender).pushed() == [said("hi")]


# -- chat middleware --------------------------------------------------------------------------


async def test_join_middleware_blocks(make_core):
    def members_only(connection, room):
        if connection.session.get("vip") is not True:
            raise PermissionError("vip members only")

    core = await make_core(chat_middleware=[ChatMiddleware("vip", join=members_only)])
    guest, vip = core.connect("c0"), core.connect("c1")
    vip.session["vip"] = True

    with pytest.raises(PermissionError) as caught:
        await core.rooms.join(guest, "defaultRoom")
    await core.rooms.join(vip, "defaultRoom")

    assert str(caught.value) == "vip members only"
    assert guest.rooms == []
    assert list(await core.rooms.members("defaultRoom")) == ["c1"]


async def test_join_middleware_async_and_in_priority_order(make_core):
    calls = []

    def hook(name):
        async def join(connection, room):
            calls.append((name, connection.id, room))

        return join

    middleware = [
        ChatMiddleware("late", join=hook("late"), priority=300),
        ChatMiddleware("early", join=hook("early"), priority=1),
        ChatMiddleware("default", join=hook("default")),
    ]
    core = await make_core(chat_middleware=middleware)

    await members_of(core, "c0")

    assert calls == [
        ("early", "c0", "defaultRoom"),
        ("default", "c0", "defaultRoom"),
        ("late", "c0", "defaultRoom"),
    ]


async def test_join_middleware_not_run_for_refused_joins(make_core):
    calls = []
    core = await make_core(chat_middleware=[ChatMiddleware("r", join=lambda c, r: calls.append(r))])
    (member,) = await members_of(core, "c0")

    for room in ("defaultRoom", "nowhere", ""):
        with pytest.raises((AlreadyInRoom, RoomNotExist, InvalidRoomName)):
            await core.rooms.join(member, room)

    assert calls == ["defaultRoom"]


async def test_join_of_a_connection_closed_during_middleware_leaves_no_trace(make_core):
    async def slow_check(connection, room):
        connection.closed = True  # the socket went away while the check ran

    core = await make_core(chat_middleware=[ChatMiddleware("slow", join=slow_check)])
    member = core.connect("c0")

    await core.rooms.join(member, "defaultRoom")

    assert member.rooms == []
    assert await core.rooms.members("defaultRoom") == {}
    assert core.rooms.local_rooms() == []


async def test_concurrent_joins_of_one_room_admit_once(make_core):
    waiting = 0
    both_waiting = asyncio.Event()
    release = asyncio.Event()

    async def slow_check(connection, room):
        nonlocal waiting
        waiting += 1
        if waiting == 2:
            both_waiting.set()
        await release.wait()

    core = await make_core(chat_middleware=[ChatMiddleware("slow", join=slow_check)])
    member = core.connect("c0")
    joins = [asyncio.create_task(core.rooms.join(member, "defaultRoom")) for _ in "12"]
    await bounded(both_waiting.wait())
    release.set()

    outcomes = await bounded(asyncio.gather(*joins, return_exceptions=True))

    assert outcomes[0] is None
    assert isinstance(outcomes[1], AlreadyInRoom)
    assert member.rooms == ["defaultRoom"]
    assert await core.broker.members("defaultRoom") == {"c0": Member(NOW)}
    assert core.rooms.local_members("defaultRoom") == 1


async def test_leave_middleware_blocks(make_core):
    def stay(connection, room):
        raise PermissionError("you cannot leave")

    core = await make_core(chat_middleware=[ChatMiddleware("stay", leave=stay)])
    (member,) = await members_of(core, "c0")

    with pytest.raises(PermissionError) as caught:
        await core.rooms.leave(member, "defaultRoom")

    assert str(caught.value) == "you cannot leave"
    assert member.rooms == ["defaultRoom"]
    assert list(await core.rooms.members("defaultRoom")) == ["c0"]


async def test_on_say_receive_changes_the_message_once(make_core):
    calls = []

    def censor(connection, room, payload):
        calls.append((connection.id, room))
        return {**payload, "message": payload["message"].replace("darn", "d**n")}

    core = await make_core(chat_middleware=[ChatMiddleware("censor", on_say_receive=censor)])
    members = await members_of(core, "c0", "c1", "c2")

    await core.rooms.say(members[1], "defaultRoom", "oh darn")

    assert calls == [("c1", "defaultRoom")]
    for member in members:
        assert transport_of(member).pushed() == [said("oh d**n", sender="c1")]


async def test_on_say_receive_returning_none_drops_the_message(make_core):
    core = await make_core(
        chat_middleware=[ChatMiddleware("drop", on_say_receive=lambda c, r, p: None)]
    )
    members = await members_of(core, "c0", "c1")

    await core.rooms.say(members[0], "defaultRoom", "spam")

    assert [transport_of(m).frames for m in members] == [[], []]


async def test_on_say_receive_hooks_chain_by_priority(make_core):
    def tag(name):
        async def hook(connection, room, payload):
            return {**payload, "message": payload["message"] + f"+{name}"}

        return hook

    middleware = [
        ChatMiddleware("c", on_say_receive=tag("c"), priority=3),
        ChatMiddleware("a", on_say_receive=tag("a"), priority=1),
        ChatMiddleware("b", on_say_receive=tag("b"), priority=2),
    ]
    core = await make_core(chat_middleware=middleware)
    (member,) = await members_of(core, "c0")

    await core.rooms.say(member, "defaultRoom", "m")

    assert transport_of(member).pushed() == [said("m+a+b+c")]


async def test_on_say_receive_drop_stops_later_hooks(make_core):
    later = []
    middleware = [
        ChatMiddleware("drop", on_say_receive=lambda c, r, p: None, priority=1),
        ChatMiddleware("later", on_say_receive=lambda c, r, p: later.append(p) or p, priority=2),
    ]
    core = await make_core(chat_middleware=middleware)
    (member,) = await members_of(core, "c0")

    await core.rooms.say(member, "defaultRoom", "m")

    assert later == []


async def test_say_middleware_runs_per_recipient(make_core):
    calls = []

    def address(connection, room, payload):
        calls.append(connection.id)
        return {**payload, "to": connection.id}

    core = await make_core(chat_middleware=[ChatMiddleware("address", say=address)])
    members = await members_of(core, "c0", "c1", "c2")

    await core.rooms.say(members[0], "defaultRoom", "hi")

    assert sorted(calls) == ["c0", "c1", "c2"]
    for member in members:
        assert transport_of(member).pushed() == [{**said("hi"), "to": member.id}]


async def test_say_middleware_drops_one_recipient(make_core):
    def mute_c1(connection, room, payload):
        return None if connection.id == "c1" else payload

    core = await make_core(chat_middleware=[ChatMiddleware("mute", say=mute_c1)])
    members = await members_of(core, "c0", "c1", "c2")

    await core.rooms.say(members[0], "defaultRoom", "hi")

    assert [transport_of(m).pushed() for m in members] == [[said("hi")], [], [said("hi")]]


async def test_say_middleware_copy_is_per_recipient(make_core):
    def scribble(connection, room, payload):
        payload["seenBy"] = connection.id  # changing its copy must not reach the others
        return payload

    core = await make_core(chat_middleware=[ChatMiddleware("scribble", say=scribble)])
    members = await members_of(core, "c0", "c1")

    await core.rooms.say(members[0], "defaultRoom", "hi")

    for member in members:
        assert transport_of(member).pushed() == [{**said("hi"), "seenBy": member.id}]


async def test_say_middleware_in_priority_order(make_core):
    order = []

    def hook(name):
        def say(connection, room, payload):
            order.append(name)
            return payload

        return say

    middleware = [
        ChatMiddleware("z", say=hook("z"), priority=200),
        ChatMiddleware("a", say=hook("a"), priority=10),
    ]
    core = await make_core(chat_middleware=middleware)
    (member,) = await members_of(core, "c0")

    await core.rooms.say(member, "defaultRoom", "hi")

    assert order == ["a", "z"]


async def test_say_middleware_failing_skips_that_recipient_only(make_core, caplog):
    def fragile(connection, room, payload):
        if connection.id == "c1":
            raise RuntimeError("hook bug")
        return payload

    core = await make_core(chat_middleware=[ChatMiddleware("fragile", say=fragile)])
    members = await members_of(core, "c0", "c1", "c2")

    with caplog.at_level(logging.ERROR, "squall.rooms"):
        await core.rooms.say(members[0], "defaultRoom", "hi")

    assert [transport_of(m).pushed() for m in members] == [[said("hi")], [], [said("hi")]]
    assert [r.getMessage() for r in caplog.records] == [
        "say middleware failed for c1 in defaultRoom"
    ]
    assert caplog.records[0].exc_info[0] is RuntimeError


async def test_on_say_receive_not_run_for_server_broadcasts(make_core):
    calls = []
    core = await make_core(
        chat_middleware=[ChatMiddleware("r", on_say_receive=lambda c, r, p: calls.append(p) or p)]
    )
    (member,) = await members_of(core, "c0")

    await core.rooms.broadcast("defaultRoom", "notice")

    assert calls == []
    assert transport_of(member).pushed() == [said("notice", sender=0)]


# -- destroy and forced leaves ----------------------------------------------------------------


async def test_destroy_tells_members_and_removes_them(make_core):
    left = []
    core = await make_core(
        rooms=["defaultRoom", "other"],
        chat_middleware=[ChatMiddleware("log", leave=lambda c, r: left.append((c.id, r)))],
    )
    members = await members_of(core, "c0", "c1")
    await core.rooms.join(members[0], "other")

    assert await core.rooms.destroy("defaultRoom") is True

    for member in members:
        assert transport_of(member).pushed() == [DELETED]
    assert sorted(left) == [("c0", "defaultRoom"), ("c1", "defaultRoom")]
    assert [m.rooms for m in members] == [["other"], []]
    assert await core.rooms.exists("defaultRoom") is False
    assert await core.rooms.members("defaultRoom") == {}
    assert core.rooms.local_rooms() == ["other"]


async def test_destroy_notice_text_is_configurable(make_core):
    core = await make_core(messages=ErrorMessages({"roomDeleted": "gone"}))
    (member,) = await members_of(core, "c0")

    await core.rooms.destroy("defaultRoom")

    assert transport_of(member).pushed() == [said("gone", sender=0)]


async def test_destroy_cannot_be_blocked_by_leave_middleware(make_core, caplog):
    def stay(connection, room):
        raise PermissionError("you cannot leave")

    core = await make_core(chat_middleware=[ChatMiddleware("stay", leave=stay)])
    (member,) = await members_of(core, "c0")

    with caplog.at_level(logging.WARNING, "squall.rooms"):
        await core.rooms.destroy("defaultRoom")

    assert member.rooms == []
    assert await core.rooms.exists("defaultRoom") is False
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            "leave middleware refused c0 leaving defaultRoom while it must: you cannot leave",
        )
    ]


async def test_leave_all_runs_leave_middleware_that_cannot_block(make_core, caplog):
    seen = []

    def stay(connection, room):
        seen.append(room)
        raise PermissionError("no")

    core = await make_core(rooms=["a", "b"], chat_middleware=[ChatMiddleware("stay", leave=stay)])
    member = core.connect("c0")
    await core.rooms.join(member, "a")
    await core.rooms.join(member, "b")

    with caplog.at_level(logging.WARNING, "squall.rooms"):
        await core.rooms.leave_all(member)

    assert seen == ["a", "b"]
    assert member.rooms == []
    assert core.rooms.local_rooms() == []
    assert len(caplog.records) == 2


async def test_destroy_empty_room_tells_nobody(make_core):
    core = await make_core()
    bystander = core.connect("c0")

    assert await core.rooms.destroy("defaultRoom") is True
    assert transport_of(bystander).frames == []


# -- memory broker ----------------------------------------------------------------------------


async def test_memory_broker_status():
    broker = MemoryBroker()
    await broker.create_room("a", DEFAULT_OPTIONS)

    assert broker.status() == {"kind": "memory", "state": "ok", "rooms": 1}


async def test_memory_broker_without_delegate_delivers_nothing():
    broker = MemoryBroker()
    await broker.create_room("a", DEFAULT_OPTIONS)

    await broker.publish("a", {"message": "x"})
    await broker.send_all({"x": 1})
    assert await broker.send_to("someone", {"x": 1}) is False
    assert await broker.destroy_room("a") is True


async def test_memory_broker_membership_of_missing_room_is_ignored():
    broker = MemoryBroker()

    await broker.add_member("nowhere", "c0", 1, None)
    await broker.remove_member("nowhere", "c0")

    assert await broker.members("nowhere") == {}
    assert await broker.list_rooms() == []


async def test_memory_broker_members_is_a_copy():
    broker = MemoryBroker()
    await broker.create_room("a", DEFAULT_OPTIONS)
    await broker.add_member("a", "c0", 5, None)

    (await broker.members("a"))["c9"] = Member(1)

    assert await broker.members("a") == {"c0": Member(5)}
