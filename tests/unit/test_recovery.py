"""History and recovery through the socket verbs (PROTOCOL.md §9), memory broker, no socket:
numbered says, roomHistory, roomAdd with ``since``, and the recover-or-push race: a message
said while a joiner's history is read reaches it exactly once, in its reply or live after it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from testkit import TIMEOUT

from squall.broker import MemoryBroker
from squall.history import Recovery
from squall.room_options import RoomOptions

from .conftest import transport_of
from .test_presence import ask

ROOMS = {
    "defaultRoom": {},
    "log": {"history": {"size": 10, "ttl": 60_000}},
    "short": {"history": {"size": 2}},
    "both": {"presence": True, "history": {"size": 10}},
}


def said(member, room: str = "log") -> list[Any]:
    """The messages said in ``room`` that ``member`` received, as (offset, message)."""
    return [
        (frame.get("offset"), frame["message"])
        for frame in transport_of(member).pushed()
        if frame.get("context") == "user" and frame["room"] == room
    ]


def epoch_of(member) -> str:
    """The epoch of the last message ``member`` received."""
    return [f for f in transport_of(member).pushed() if "epoch" in f][-1]["epoch"]


async def speaker(core, room: str = "log"):
    member = core.connect("speaker")
    await ask(core, member, event="roomAdd", room=room)
    if ROOMS[room].get("presence"):
        await transport_of(member).until_frames(2)  # its reply, then its own join
    return member


async def say(core, member, *messages: str, room: str = "log") -> None:
    for message in messages:
        reply = await ask(core, member, event="say", room=room, message=message)
        assert reply["status"] == "OK", reply


async def test_says_in_a_room_with_history_are_numbered_under_one_epoch(make_core):
    core = await make_core(rooms=ROOMS)
    member = await speaker(core)

    await say(core, member, "one", "two", "three")

    frames = [f for f in transport_of(member).pushed() if f.get("context") == "user"]
    assert [(f["offset"], f["message"]) for f in frames] == [(1, "one"), (2, "two"), (3, "three")]
    assert len({f["epoch"] for f in frames}) == 1
    assert core.rooms.stats.history_stores == 3


async def test_says_in_a_room_without_history_carry_no_offset(make_core):
    core = await make_core(rooms=ROOMS)
    member = await speaker(core, "defaultRoom")

    await say(core, member, "plain", room="defaultRoom")

    (frame,) = [f for f in transport_of(member).pushed() if f.get("context") == "user"]
    assert "offset" not in frame and "epoch" not in frame


async def test_room_history_answers_the_last_kept_messages(make_core):
    core = await make_core(rooms=ROOMS)
    member = await speaker(core)
    await say(core, member, *"abcd")
    frames = [f for f in transport_of(member).pushed() if f.get("context") == "user"]

    everything = await ask(core, member, event="roomHistory", room="log")
    two = await ask(core, member, event="roomHistory", room="log", limit=2)
    too_many = await ask(core, member, event="roomHistory", room="short", limit=50)

    assert everything["data"] == {
        "room": "log",
        "epoch": frames[0]["epoch"],
        "offset": 4,
        "messages": frames,
    }
    assert two["data"]["messages"] == frames[2:]
    assert too_many["status"] == "connection not in this room (short)"


async def test_room_history_is_capped_at_the_room_size(make_core):
    core = await make_core(rooms=ROOMS)
    member = await speaker(core, "short")
    await say(core, member, *"abc", room="short")

    reply = await ask(core, member, event="roomHistory", room="short", limit=50)

    assert [m["message"] for m in reply["data"]["messages"]] == ["b", "c"]


async def test_room_history_of_a_room_without_history_is_empty(make_core):
    core = await make_core(rooms=ROOMS)
    member = await speaker(core, "defaultRoom")

    reply = await ask(core, member, event="roomHistory", room="defaultRoom")

    assert reply["data"] == {"room": "defaultRoom", "epoch": None, "offset": 0, "messages": []}


@pytest.mark.parametrize("limit", [0, -1, 1.5, "2", True, [1]])
async def test_room_history_refuses_a_limit_that_is_not_a_positive_integer(make_core, limit):
    core = await make_core(rooms=ROOMS)
    member = await speaker(core)

    reply = await ask(core, member, event="roomHistory", room="log", limit=limit)

    assert reply["error"] == "limit must be a positive integer"


async def test_room_history_of_a_missing_room(make_core):
    core = await make_core(rooms=ROOMS)

    reply = await ask(core, core.connect("c0"), event="roomHistory", room="nowhere")

    assert reply["error"] == "room does not exist"


async def test_a_member_back_within_the_history_recovers_what_it_missed(make_core):
    core = await make_core(rooms=ROOMS)
    talker = await speaker(core)
    await say(core, talker, "seen")
    epoch = epoch_of(talker)
    await say(core, talker, "missed 1", "missed 2")
    back = core.connect("back")

    reply = await ask(core, back, event="roomAdd", room="log", since={"offset": 1, "epoch": epoch})

    data = reply["data"]
    assert (data["recovered"], data["offset"], data["epoch"]) == (True, 3, epoch)
    assert [(m["offset"], m["message"]) for m in data["messages"]] == [
        (2, "missed 1"),
        (3, "missed 2"),
    ]
    assert core.rooms.stats.recoveries == {"recovered": 1}
    await say(core, talker, "live")
    await transport_of(back).until_frames(2)  # its reply, then the live message
    assert said(back) == [(4, "live")]


async def test_a_member_that_missed_more_than_the_room_keeps_is_told(make_core):
    core = await make_core(rooms=ROOMS)
    talker = await speaker(core, "short")
    await say(core, talker, "seen", room="short")
    epoch = epoch_of(talker)
    await say(core, talker, "lost", "kept 1", "kept 2", room="short")

    since = {"offset": 1, "epoch": epoch}
    reply = await ask(core, core.connect("back"), event="roomAdd", room="short", since=since)

    assert reply["data"]["recovered"] is False
    assert [m["message"] for m in reply["data"]["messages"]] == ["kept 1", "kept 2"]
    assert core.rooms.stats.recoveries == {"missed": 1}


async def test_a_member_of_a_lost_history_is_told_it_did_not_recover(make_core):
    core = await make_core(rooms=ROOMS)
    talker = await speaker(core)
    await say(core, talker, "new")

    since = {"offset": 40, "epoch": "from before"}
    reply = await ask(core, core.connect("back"), event="roomAdd", room="log", since=since)

    assert reply["data"]["recovered"] is False
    assert [m["message"] for m in reply["data"]["messages"]] == ["new"]
    assert reply["data"]["epoch"] != "from before"


async def test_since_in_a_room_without_history(make_core):
    core = await make_core(rooms=ROOMS)

    since = {"offset": 3, "epoch": "e"}
    reply = await ask(core, core.connect("c"), event="roomAdd", room="defaultRoom", since=since)

    assert reply["data"] == {"recovered": False, "messages": [], "offset": 0, "epoch": None}


@pytest.mark.parametrize(
    "since",
    [5, "1", [1, "e"], {"offset": 1}, {"epoch": "e"}, {"offset": -1, "epoch": "e"},
     {"offset": 1.5, "epoch": "e"}, {"offset": True, "epoch": "e"}, {"offset": 1, "epoch": 7}],
)  # fmt: skip
async def test_since_must_hold_an_offset_and_an_epoch(make_core, since):
    core = await make_core(rooms=ROOMS)
    member = core.connect("c")

    reply = await ask(core, member, event="roomAdd", room="log", since=since)

    assert reply["error"] == (
        "since must hold an offset (an integer, 0 or more) and an epoch (a string)"
    )
    assert member.rooms == []


async def test_a_joiner_with_presence_and_since_gets_reply_then_its_join_then_live(make_core):
    core = await make_core(rooms=ROOMS)
    talker = await speaker(core, "both")
    await say(core, talker, "one", room="both")
    epoch = epoch_of(talker)
    back = core.connect("back")

    since = {"offset": 0, "epoch": epoch}
    reply = await ask(core, back, event="roomAdd", room="both", since=since)
    await say(core, talker, "two", room="both")
    frames = await transport_of(back).until_frames(3)

    assert frames[0] == reply
    assert [m["message"] for m in reply["data"]["messages"]] == ["one"]
    assert (frames[1]["event"], frames[1]["id"]) == ("join", "back")
    assert (frames[2]["offset"], frames[2]["message"]) == (2, "two")


# -- the recover-or-push race ---------------------------------------------------------------------


class PausingBroker(MemoryBroker):
    """Holds every recovery before (or after) it reads the history, until told to go on."""

    def __init__(self, pause_after_read: bool) -> None:
        super().__init__()
        self.pause_after_read = pause_after_read
        self.reading = asyncio.Event()
        self.go_on = asyncio.Event()

    async def recover(self, room: str, offset: int, epoch: str, options: RoomOptions) -> Recovery:
        if not self.pause_after_read:
            await self._pause()
        recovery = await super().recover(room, offset, epoch, options)
        if self.pause_after_read:
            await self._pause()
        return recovery

    async def _pause(self) -> None:
        self.reading.set()
        await asyncio.wait_for(self.go_on.wait(), TIMEOUT)


@pytest.mark.parametrize(
    ("pause_after_read", "in_reply", "live"),
    [
        # said before the read: in the reply, and their live copies are dropped
        (False, ["two", "three", "four", "five"], ["six"]),
        # said after the read: not in the reply, pushed live after it
        (True, ["two", "three"], ["four", "five", "six"]),
    ],
)
async def test_a_message_said_while_a_joiner_recovers_reaches_it_exactly_once(
    make_core, pause_after_read, in_reply, live
):
    broker = PausingBroker(pause_after_read)
    core = await make_core(rooms=ROOMS, broker=broker)
    talker = await speaker(core)
    await say(core, talker, "one", "two", "three")
    epoch = epoch_of(talker)
    back = core.connect("back")

    since = {"offset": 1, "epoch": epoch}
    joining = asyncio.ensure_future(ask(core, back, event="roomAdd", room="log", since=since))
    await asyncio.wait_for(broker.reading.wait(), TIMEOUT)
    await say(core, talker, "four", "five")  # while the joiner's history is read
    broker.go_on.set()
    reply = await asyncio.wait_for(joining, TIMEOUT)
    await say(core, talker, "six")
    frames = await transport_of(back).until_frames(1 + len(live))

    assert frames[0] == reply
    assert [m["message"] for m in reply["data"]["messages"]] == in_reply
    assert reply["data"]["recovered"] is True
    pushed = [(f["offset"], f["message"]) for f in frames[1:]]
    assert [message for _, message in pushed] == live
    offsets = [m["offset"] for m in reply["data"]["messages"]] + [n for n, _ in pushed]
    assert offsets == list(range(2, 7))  # each once, in order, none missing
