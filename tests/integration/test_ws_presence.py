"""Presence and history over real sockets (PROTOCOL.md §8, §9): join and leave frames in the
order a client sees them, public info, numbered says, roomHistory, recovery after a dropped
membership while another client keeps talking, and a restart that loses the history."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from testkit import Client, Server, failed, is_reply, now_ms, ok, open_client

from .support import running_server

ROOMS = {
    "presence-lobby": {"presence": True},
    "history-log": {"history": {"size": 5, "ttl": 60_000}},
    "history-race": {"history": {"size": 1000, "ttl": 60_000}},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    options = {"general": {"startingChatRooms": ROOMS}}
    with running_server(tmp_path_factory, "presence", options) as started:
        yield started


def is_presence(frame: Any) -> bool:
    return isinstance(frame, dict) and frame.get("context") == "presence"


def said_in(room: str):
    return lambda frame: (
        isinstance(frame, dict) and frame.get("room") == room and (frame.get("context") == "user")
    )


def joined(room: str, member: str, name: str) -> dict:
    return {
        "context": "presence",
        "event": "join",
        "room": room,
        "id": member,
        "joinedAt": now_ms(),
        "info": {"name": name},
    }


def left(room: str, member: str, reason: str) -> dict:
    return {"context": "presence", "event": "leave", "room": room, "id": member, "reason": reason}


async def member(server: Server, connect, room: str, name: str | None = None) -> Client:
    """A client that joined ``room`` (its reply and its own join taken out)."""
    client = await connect(server)
    client.id = (await client.details())["id"]
    if name is not None:
        await client.action("nameTest", name=name)
    assert await client.request("roomAdd", room=room) == ok(True)
    await client.next(lambda f: is_presence(f) and f["id"] == client.id)
    return client


async def test_the_joiner_gets_its_reply_before_its_own_join(server, connect):
    ada = await connect(server)
    ada_id = (await ada.details())["id"]
    await ada.action("nameTest", name="Ada")

    message_id = ada.new_id()
    await ada.send({"event": "roomAdd", "messageId": message_id, "room": "presence-lobby"})
    first = await ada.next(lambda f: is_reply(f) or is_presence(f))
    second = await ada.next(is_presence)

    assert first == ok(True, message_id=message_id)
    assert second == joined("presence-lobby", ada_id, "Ada")


async def test_members_see_each_join_and_leave_once_with_its_reason(server, connect):
    room = "presence-lobby"
    ada = await member(server, connect, room, "Ada")
    bo = await member(server, connect, room)
    assert await ada.next(is_presence) == joined(room, bo.id, "guest")

    view = await bo.request("roomView", room=room)
    assert view["data"]["members"][ada.id] == {
        "id": ada.id,
        "joinedAt": now_ms(),
        "info": {"name": "Ada"},
    }
    assert await bo.request("roomLeave", room=room) == ok(True)
    assert await ada.next(is_presence) == left(room, bo.id, "left")

    cy = await member(server, connect, room, "Cy")
    assert await ada.next(is_presence) == joined(room, cy.id, "Cy")
    await cy.close()
    assert await ada.next(is_presence) == left(room, cy.id, "disconnected")

    await ada.request("ping")  # every frame about bo and cy came before this reply
    assert [f for f in ada.inbox if is_presence(f)] == []
    assert [f for f in bo.inbox if is_presence(f)] == []  # it left: no frame of its own leave


async def test_says_in_a_room_with_history_are_numbered_and_kept(server, connect):
    room = "history-log"
    talker = await connect(server)
    await talker.request("roomAdd", room=room)
    before = (await talker.request("roomHistory", room=room))["data"]["offset"]
    for text in ("one", "two", "three"):
        assert await talker.request("say", room=room, message=text) == ok()
    frames = [await talker.next(said_in(room)) for _ in range(3)]

    assert [f["offset"] for f in frames] == [before + 1, before + 2, before + 3]
    history = await talker.request("roomHistory", room=room, limit=2)
    assert history["data"] == {
        "room": room,
        "epoch": frames[0]["epoch"],
        "offset": before + 3,
        "messages": frames[1:],
    }
    assert (await talker.request("roomHistory", room=room, limit=0))["error"] == (
        "limit must be a positive integer"
    )


async def test_a_client_back_with_since_recovers_exactly_what_it_missed(server, connect):
    room = "history-log"
    talker, listener = await connect(server), await connect(server)
    for client in (talker, listener):
        await client.request("roomAdd", room=room)
    await talker.request("say", room=room, message="seen")
    seen = await listener.next(said_in(room))
    await listener.close()
    for text in ("missed 1", "missed 2"):
        await talker.request("say", room=room, message=text)

    back = await connect(server)
    since = {"offset": seen["offset"], "epoch": seen["epoch"]}
    reply = await back.request("roomAdd", room=room, since=since)

    assert reply["data"]["recovered"] is True
    assert [m["message"] for m in reply["data"]["messages"]] == ["missed 1", "missed 2"]
    assert reply["data"]["offset"] == seen["offset"] + 2
    assert reply["data"]["epoch"] == seen["epoch"]

    for text in "abcd":  # the room keeps 5: "missed 1" is gone now
        await talker.request("say", room=room, message=text)
    late = await connect(server)
    reply = await late.request("roomAdd", room=room, since=since)
    assert reply["data"]["recovered"] is False
    assert [m["message"] for m in reply["data"]["messages"]] == ["missed 2", *"abcd"]


async def test_since_that_is_not_an_offset_and_an_epoch_is_refused(client):
    reply = await client.request("roomAdd", room="history-log", since={"offset": "1"})

    assert reply == failed(
        "since must hold an offset (an integer, 0 or more) and an epoch (a string)"
    )


async def test_every_message_said_while_a_member_was_away_arrives_once_in_order(server, connect):
    """The recover-or-push race on a real socket: one client says 400 messages while another
    leaves and comes back with ``since`` in the middle of them; it gets each offset exactly
    once, recovered ones in its reply, the rest live after it."""
    room = "history-race"
    talker, listener = await connect(server), await connect(server)
    for client in (talker, listener):
        await client.request("roomAdd", room=room)
    first = (await talker.request("roomHistory", room=room))["data"]["offset"] + 1
    last = first + 399

    async def talk() -> None:
        for n in range(400):
            assert await talker.request("say", room=room, message=f"m{n}") == ok()

    talking = asyncio.ensure_future(talk())
    received = []
    while len(received) < 50:  # the listener follows for a while...
        received.append(await listener.next(said_in(room)))
    assert await listener.request("roomLeave", room=room) == ok(True)
    seen = [f for f in listener.inbox if said_in(room)(f)]  # ...then leaves
    listener.inbox = [f for f in listener.inbox if not said_in(room)(f)]
    received += seen
    since = {"offset": received[-1]["offset"], "epoch": received[-1]["epoch"]}
    while (await talker.request("roomHistory", room=room, limit=1))["data"]["offset"] < (
        since["offset"] + 100
    ):
        pass  # ...while at least 100 more are said
    reply = await listener.request("roomAdd", room=room, since=since)
    await asyncio.wait_for(talking, 30)
    recovered = reply["data"]["messages"]
    live = []
    while not live or live[-1]["offset"] < last:
        live.append(await listener.next(said_in(room)))

    assert reply["data"]["recovered"] is True
    offsets = [f["offset"] for f in received + recovered + live]
    assert offsets == list(range(first, last + 1))
    assert [f["message"] for f in received + recovered + live] == [f"m{n}" for n in range(400)]


async def test_a_restart_loses_the_history_and_changes_the_epoch(tmp_path_factory, connect):
    options = {"general": {"startingChatRooms": {"history-log": ROOMS["history-log"]}}}
    with running_server(tmp_path_factory, "restarted", options) as restarted:
        talker = await open_client(restarted)
        await talker.request("roomAdd", room="history-log")
        await talker.request("say", room="history-log", message="before")
        before = await talker.next(said_in("history-log"))
        await talker.close()
        restarted.signal()
        assert restarted.wait_exit() == 0
        restarted.start()

        back = await connect(restarted)
        since = {"offset": before["offset"], "epoch": before["epoch"]}
        reply = await back.request("roomAdd", room="history-log", since=since)

    assert reply["data"]["recovered"] is False
    assert reply["data"]["messages"] == []
    assert reply["data"]["epoch"] != before["epoch"]
