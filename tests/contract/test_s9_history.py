"""PROTOCOL.md §9 from outside (one server, in memory): offsets and epochs, what is kept and for
how long, recovery with ``since``, its exactness against live messages, and roomHistory."""

from __future__ import annotations

import asyncio

import pytest
from testkit import NON_EMPTY_STR, is_reply, now_ms, ok

from .support import new_room

KEEP = {"size": 3, "ttl": 60000}


def said(frame) -> bool:
    return frame.get("context") == "user"


async def say_all(client, room, messages) -> list[dict]:
    """Say each message; the frames the sayer got back, in order."""
    frames = []
    for message in messages:
        await client.say(room, message)
        frames.append(await client.next(said))
    return frames


async def said_in_a_new_room(server, connect, messages, history=KEEP) -> tuple:
    """A new room with ``history``, a member and what it said there: (member, room, frames)."""
    room = await new_room(server, history=history)
    client = await connect(server)
    await client.join(room)
    return client, room, await say_all(client, room, messages)


async def seen_then_gone(server, connect, history=KEEP) -> tuple:
    """A new room where ``away`` saw one message said and then left: (sayer, away, room, seen)."""
    room = await new_room(server, history=history)
    sayer, away = await connect(server), await connect(server)
    await sayer.join(room)
    await away.join(room)
    [seen] = await say_all(sayer, room, ["seen"])
    await away.next(said)
    await away.request("roomLeave", room=room)
    return sayer, away, room, seen


async def test_s9_every_say_gets_offsets_1_2_3_per_room_and_the_rooms_epoch(server, connect):
    first, second = await new_room(server, history=KEEP), await new_room(server, history=KEEP)
    client = await connect(server)
    me = (await client.details())["id"]
    await client.join(first)
    await client.join(second)
    frames = await say_all(client, first, ["a", "b"]) + await say_all(client, second, ["c"])
    frames += await say_all(client, first, ["d"])
    assert [(f["room"], f["offset"]) for f in frames] == [(first, 1), (first, 2), (second, 1),
                                                         (first, 3)]  # fmt: skip
    epochs = {f["room"]: f["epoch"] for f in frames}
    assert all(f["epoch"] == epochs[f["room"]] for f in frames)
    assert frames[0] == {
        "context": "user", "message": "a", "room": first, "from": me, "sentAt": now_ms(),
        "offset": 1, "epoch": NON_EMPTY_STR,
    }  # fmt: skip


async def test_s9_offsets_have_no_gaps_across_senders(server, connect):
    room = await new_room(server, history={"size": 100, "ttl": 60000})
    senders = [await connect(server) for _ in range(3)]
    for sender in senders:
        await sender.join(room)
    await asyncio.gather(
        *(s.say(room, f"{n}-{i}") for n, s in enumerate(senders) for i in range(5))
    )
    frames = [await senders[0].next(said) for _ in range(15)]
    assert [f["offset"] for f in frames] == list(range(1, 16))


async def test_s9_the_last_size_messages_are_kept(server, connect):
    client, room, frames = await said_in_a_new_room(server, connect, ["1", "2", "3", "4", "5"])
    reply = await client.request("roomHistory", room=room)
    assert reply["data"] == {
        "room": room, "epoch": frames[0]["epoch"], "offset": 5, "messages": frames[2:],
    }  # fmt: skip


async def test_s9_kept_messages_expire_after_ttl(server, connect):
    history = {"size": 10, "ttl": 1000}
    client, room, [frame] = await said_in_a_new_room(server, connect, ["soon gone"], history)
    assert (await client.request("roomHistory", room=room))["data"]["messages"] == [frame]
    await asyncio.sleep(1.3)  # the behaviour under test is time passing
    reply = await client.request("roomHistory", room=room)
    assert reply["data"] == {"room": room, "epoch": frame["epoch"], "offset": 1, "messages": []}


async def test_s9_the_epoch_changes_when_the_rooms_history_is_lost(server, connect):
    client, room, [old] = await said_in_a_new_room(server, connect, ["old"])
    assert (await server.action("contractRoomsApi", op="destroy", name=room))["result"] is True
    assert await client.next(said) == {  # the notice of README's server API (rooms.destroy)
        "context": "user", "message": "this room has been deleted", "room": room, "from": 0,
        "sentAt": now_ms(),
    }  # fmt: skip
    assert (await server.action("createChatRoom", name=room, history=KEEP))["didCreate"] is True
    await client.join(room)
    [new] = await say_all(client, room, ["new"])
    assert new["offset"] == 1 and new["epoch"] != old["epoch"]
    reply = await rejoin(client, room, old["offset"], old["epoch"])
    assert reply["data"] == {
        "recovered": False, "messages": [new], "offset": 1, "epoch": new["epoch"],
    }  # fmt: skip


# --- recovery -----------------------------------------------------------------------------------


async def rejoin(client, room, offset, epoch) -> dict:
    await client.request("roomLeave", room=room)
    return await client.request("roomAdd", room=room, since={"offset": offset, "epoch": epoch})


async def test_s9_since_answers_exactly_the_missed_messages_recovered_true(server, connect):
    sayer, away, room, seen = await seen_then_gone(server, connect)
    missed = await say_all(sayer, room, ["missed 1", "missed 2"])
    reply = await away.request(
        "roomAdd", room=room, since={"offset": seen["offset"], "epoch": seen["epoch"]}
    )
    assert reply == ok(
        {"recovered": True, "messages": missed, "offset": 3, "epoch": seen["epoch"]},
        reply["messageId"],
        reply["messageCount"],
    )


async def test_s9_since_past_what_was_kept_is_recovered_false_with_what_is_kept(server, connect):
    client, room, frames = await said_in_a_new_room(server, connect, ["1", "2", "3", "4", "5"])
    reply = await rejoin(client, room, 1, frames[0]["epoch"])
    assert reply["data"] == {
        "recovered": False, "messages": frames[2:], "offset": 5, "epoch": frames[0]["epoch"],
    }  # fmt: skip


async def test_s9_since_with_another_epoch_is_recovered_false(server, connect):
    client, room, frames = await said_in_a_new_room(server, connect, ["1", "2"])
    reply = await rejoin(client, room, 1, "not-this-rooms-epoch")
    assert reply["data"]["recovered"] is False
    assert (reply["data"]["offset"], reply["data"]["epoch"]) == (2, frames[0]["epoch"])
    # another epoch numbers other messages: every kept one is after what the client saw
    assert reply["data"]["messages"] == frames


async def test_s9_since_at_the_last_offset_is_recovered_true_with_nothing(server, connect):
    client, room, frames = await said_in_a_new_room(server, connect, ["1", "2"])
    reply = await rejoin(client, room, 2, frames[0]["epoch"])
    assert reply["data"] == {
        "recovered": True, "messages": [], "offset": 2, "epoch": frames[0]["epoch"],
    }  # fmt: skip


async def test_s9_no_message_is_both_recovered_and_pushed_live_and_none_falls_between(
    server, connect
):
    sayer, joiner, room, seen = await seen_then_gone(server, connect, {"size": 100, "ttl": 60000})
    total = 60
    for n in range(total):  # says in flight while the joiner comes back
        await sayer.send({"event": "say", "messageId": f"s{n}", "room": room, "message": f"m{n}"})
        if n == 20:
            await sayer.reply("s20")  # 21 kept for sure; the rest races the recovery
            since = {"offset": seen["offset"], "epoch": seen["epoch"]}
            await joiner.send(
                {"event": "roomAdd", "messageId": "back", "room": room, "since": since}
            )
    reply = await joiner.reply("back")
    recovered = reply["data"]["messages"]
    live = [await joiner.next(said) for _ in range(total - len(recovered))]
    offsets = [f["offset"] for f in recovered + live]
    assert reply["data"]["recovered"] is True and len(recovered) >= 21
    assert offsets == list(range(2, total + 2))
    await joiner.request("ping")
    assert joiner.take(said) == []


async def test_s9_since_in_a_room_without_history(server, connect):
    room = await new_room(server)
    client = await connect(server)
    reply = await client.request("roomAdd", room=room, since={"offset": 3, "epoch": "e"})
    assert reply["data"] == {"recovered": False, "messages": [], "offset": 0, "epoch": None}


@pytest.mark.parametrize(
    "since",
    [{"offset": -1, "epoch": "e"}, {"offset": "1", "epoch": "e"}, {"offset": 1}, {"epoch": "e"},
     {"offset": 1, "epoch": 5}, [], "1"],
)  # fmt: skip
async def test_s9_since_that_is_not_offset_and_epoch_is_an_error(server, connect, since):
    room = await new_room(server, history=KEEP)
    client = await connect(server)
    reply = await client.request("roomAdd", room=room, since=since)
    text = "since must hold an offset (an integer, 0 or more) and an epoch (a string)"
    assert reply == {"status": text, "error": text, "context": "response", "messageId": 1,
                     "messageCount": 1}  # fmt: skip
    assert (await client.details())["rooms"] == []


# --- roomHistory ----------------------------------------------------------------------------


@pytest.mark.parametrize("limit, kept", [(None, 3), (1, 1), (2, 2), (3, 3), (50, 3)])
async def test_s9_roomHistory_answers_the_last_limit_default_and_at_most_size(
    server, connect, limit, kept
):
    room = await new_room(server, history=KEEP)
    client = await connect(server)
    await client.join(room)
    frames = await say_all(client, room, ["1", "2", "3", "4"])
    fields = {} if limit is None else {"limit": limit}
    reply = await client.request("roomHistory", room=room, **fields)
    assert reply["data"] == {
        "room": room, "epoch": frames[0]["epoch"], "offset": 4, "messages": frames[-kept:],
    }  # fmt: skip


@pytest.mark.parametrize("limit", [0, -1, "2", 1.5, True])
async def test_s9_roomHistory_limit_that_is_not_a_positive_integer_is_an_error(
    server, connect, limit
):
    room = await new_room(server, history=KEEP)
    client = await connect(server)
    await client.join(room)
    reply = await client.request("roomHistory", room=room, limit=limit)
    text = "limit must be a positive integer"
    assert reply == {"status": text, "error": text, "context": "response", "messageId": 2,
                     "messageCount": 2}  # fmt: skip
    assert is_reply(reply)
