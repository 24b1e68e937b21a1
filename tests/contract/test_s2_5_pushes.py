"""PROTOCOL.md §2.5 from outside: the welcome, room messages, ``connection.send`` frames and
error pushes, each compared whole."""

from __future__ import annotations

import pytest
from testkit import NON_EMPTY_STR, Match, Peer, is_reply, now_ms, ok

from .support import new_room

#: general.welcomeMessage's default (config/default.yaml)
WELCOME = "Hello! Welcome to the Squall api"


def is_push(frame) -> bool:
    return not is_reply(frame)


async def test_s2_5_welcome_is_the_first_frame_right_after_the_connection_opens(server, connect):
    client = await connect(server, await_welcome=False)
    assert await client.next() == {"context": "api", "welcome": WELCOME}


async def test_s2_5_welcome_follows_general_welcomeMessage(renamed, connect):
    client = await connect(renamed, await_welcome=False)
    assert await client.next() == {"context": "api", "welcome": "Welcome to the renamed server"}


async def test_s2_5_say_reaches_every_member_the_sender_too(server, connect):
    room = await new_room(server)
    alice, bob = await connect(server), await connect(server)
    alice_id = (await alice.details())["id"]
    await alice.join(room)
    await bob.join(room)
    await alice.say(room, "hello")
    expected = {
        "context": "user",
        "message": "hello",
        "room": room,
        "from": alice_id,
        "sentAt": now_ms(),
    }
    assert await alice.next(is_push) == expected
    assert await bob.next(is_push) == expected


async def test_s2_5_say_in_a_room_with_history_adds_offset_and_epoch(server, connect):
    room = await new_room(server, history={"size": 5, "ttl": 60000})
    client = await connect(server)
    me = (await client.details())["id"]
    await client.join(room)
    await client.say(room, {"k": "v"})
    assert await client.next(is_push) == {
        "context": "user",
        "message": {"k": "v"},
        "room": room,
        "from": me,
        "sentAt": now_ms(),
        "offset": 1,
        "epoch": NON_EMPTY_STR,
    }


async def test_s2_5_say_reaches_no_one_outside_the_room(server, connect):
    room = await new_room(server)
    member, outsider = await connect(server), await connect(server)
    await member.join(room)
    await member.say(room, "inside")
    await member.next(is_push)
    assert await outsider.request("ping") == ok({"pong": now_ms()}, 1, 1)
    assert outsider.inbox == []


FRAMES = [
    {"context": "alert", "message": "look up"},
    {"any": "shape", "nested": {"a": [1, 2]}},
    {"context": "response", "messageId": "not a reply"},
    {"context": "user", "message": "from nobody"},
    {},
]


async def test_s2_5_connection_send_frames_arrive_with_no_keys_added(server, connect):
    client = await connect(server)
    await client.send({"event": "action", "messageId": 1,
                       "params": {"action": "pushTest", "frames": FRAMES}})  # fmt: skip
    received = [await client.next() for _ in range(len(FRAMES) + 1)]
    reply = next(f for f in received if f.get("messageCount") == 1)
    received.remove(reply)
    assert reply["pushed"] == len(FRAMES)
    assert received == FRAMES


NOT_OBJECTS = ["[]", "[1, 2]", "1", '"text"', "null", "true"]


@pytest.mark.parametrize("text", NOT_OBJECTS)
async def test_s2_5_a_frame_that_is_not_a_json_object_gets_an_error_push(server, connect, text):
    client = await connect(server)
    await client.send_raw(text)
    assert await client.next() == {"context": "error", "error": "a frame must be a JSON object"}
    assert (await client.request("ping"))["messageCount"] == 2  # the socket stays open


@pytest.mark.parametrize("text", ["{", "not json", '{"event": "ping",}', "\ufeff{}"])
async def test_s2_5_a_frame_that_is_not_json_gets_an_error_push(server, connect, text):
    client = await connect(server)
    await client.send_raw(text)
    invalid = Match("<invalid JSON: ...>", lambda e: e.startswith("invalid JSON: "))
    assert await client.next() == {"context": "error", "error": invalid}


async def test_s2_5_a_binary_frame_gets_an_error_push(server):
    peer = await Peer.open(server)
    try:
        await peer.send_frame(0x2, b'{"event": "ping", "messageId": 1}')
        assert await peer.next() == {
            "context": "error",
            "error": "binary frames are not supported; send JSON text",
        }
        await peer.send_json({"event": "ping", "messageId": 2})
        assert (await peer.reply(2))["messageCount"] == 2
    finally:
        await peer.close()
