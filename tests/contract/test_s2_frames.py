"""PROTOCOL.md §2.1-§2.3 from outside: the client frame, messageId, every verb's success reply,
the reply envelope and messageCount, reply order, and action replies."""

from __future__ import annotations

import asyncio

import pytest
from testkit import (
    NON_EMPTY_STR,
    TIMEOUT,
    UUID4,
    Match,
    Peer,
    action_frame,
    action_reply,
    failed,
    is_reply,
    now_ms,
    ok,
)

from .support import new_room

MESSAGE_ID_TYPE = "messageId must be a string or a number"


@pytest.fixture
async def client(server, connect):
    return await connect(server)


# --- §2: every frame is one UTF-8 text frame holding one JSON object ---------------------------


async def test_s2_every_server_frame_is_a_text_frame_holding_a_json_object(server):
    peer = await Peer.open(server, welcome=False)
    try:
        room = await new_room(server)
        await peer.send_json({"event": "roomAdd", "messageId": 1, "room": room})
        await peer.send_json({"event": "say", "messageId": 2, "room": room, "message": "hi"})
        await peer.send_json(action_frame(3, "randomNumber"))
        await peer.send_text("[]")  # answered with an error push
        await peer.send_json({"event": "ping", "messageId": 4})
        frames = [await peer.next(lambda f: isinstance(f, bytes) or f.get("context") == "api")]
        frames += [await peer.reply(message_id) for message_id in (1, 2, 3, 4)]
        frames.append(await peer.next(lambda f: isinstance(f, bytes) or "room" in f))
        frames.append(await peer.next(lambda f: isinstance(f, bytes) or "error" in f))
        # Peer decodes a text frame as JSON and keeps a binary one as bytes
        assert all(isinstance(frame, dict) for frame in frames), frames
        assert peer.inbox == []
    finally:
        await peer.close()


# --- §2.1 messageId ------------------------------------------------------------------------------


@pytest.mark.parametrize("message_id", ["abc", "", 0, 7, -3, 2.5, 10**15])
async def test_s2_1_messageId_string_or_number_is_echoed_as_sent(client, message_id):
    await client.send({"event": "ping", "messageId": message_id})
    reply = await client.next(is_reply)
    assert reply == ok({"pong": now_ms()}, message_id=message_id, count=1)
    assert type(reply["messageId"]) is type(message_id)


@pytest.mark.parametrize("frame", [{}, {"messageId": None}], ids=["absent", "null"])
async def test_s2_1_messageId_absent_or_null_is_made_by_the_server_as_a_uuid4(client, frame):
    await client.send({"event": "ping", **frame})
    await client.send({"event": "ping", **frame})
    first, second = await client.next(is_reply), await client.next(is_reply)
    assert first == ok({"pong": now_ms()}, message_id=UUID4, count=1)
    assert second == ok({"pong": now_ms()}, message_id=UUID4, count=2)
    assert first["messageId"] != second["messageId"]


@pytest.mark.parametrize("message_id", [{}, {"a": 1}, [], [1], True, False])
async def test_s2_1_messageId_of_another_type_is_an_error_with_no_messageId(client, message_id):
    await client.send({"event": "ping", "messageId": message_id})
    reply = await client.next(is_reply)
    assert reply == {
        "status": MESSAGE_ID_TYPE,
        "error": MESSAGE_ID_TYPE,
        "context": "response",
        "messageCount": 1,
    }


@pytest.mark.parametrize("message_id", [{}, True])
async def test_s2_1_messageId_of_another_type_runs_no_verb(server, client, message_id):
    room = await new_room(server)
    await client.send({"event": "roomAdd", "room": room, "messageId": message_id})
    await client.next(is_reply)
    assert await client.request("detailsView") == ok(Match("<no rooms>", _no_rooms), 1, 2)


def _no_rooms(data):
    return data["rooms"] == []


# --- §2.1 the verbs and their success data --------------------------------------------------


async def test_s2_1_action_verb_runs_params_action_with_its_inputs(client):
    reply = await client.request("action", params={"action": "echo", "hello": "world"})
    assert reply == action_reply({"action": "echo", "hello": "world"}, 1, 1)


async def test_s2_1_action_verb_apiVersion_selects_a_version_and_the_highest_is_the_default(
    client,
):
    assert await client.action("versionTest") == action_reply({"version": 2}, 1, 1)
    assert await client.action("versionTest", apiVersion=1) == action_reply({"version": 1}, 2, 2)


async def test_s2_1_say_succeeds_without_data(server, client):
    room = await new_room(server)
    await client.join(room)
    assert await client.request("say", room=room, message="hello") == ok(message_id=2, count=2)


async def test_s2_1_say_message_may_be_a_json_object(server, client):
    room = await new_room(server)
    await client.join(room)
    reply = await client.request("say", room=room, message={"text": "hi", "n": [1, 2]})
    assert reply == ok(message_id=2, count=2)
    said = await client.next(lambda f: f.get("context") == "user")
    assert said["message"] == {"text": "hi", "n": [1, 2]}


@pytest.mark.parametrize("message", ["", 5, True, None, [1]])
async def test_s2_1_say_message_that_is_neither_a_non_empty_string_nor_an_object_fails(
    server, client, message
):
    room = await new_room(server)
    await client.join(room)
    reply = await client.request("say", room=room, message=message)
    assert reply == failed("both room and message are required", 2, 2)


async def test_s2_1_roomAdd_and_roomLeave_answer_true(server, client):
    room = await new_room(server)
    assert await client.request("roomAdd", room=room) == ok(True, 1, 1)
    assert await client.request("roomLeave", room=room) == ok(True, 2, 2)


async def test_s2_1_roomHistory_answers_room_epoch_offset_messages(server, client):
    room = await new_room(server, history={"size": 10, "ttl": 60000})
    await client.join(room)
    await client.say(room, "one")
    said = await client.next(lambda f: f.get("context") == "user")
    reply = await client.request("roomHistory", room=room)
    assert reply == ok(
        {"room": room, "epoch": said["epoch"], "offset": 1, "messages": [said]}, 3, 3
    )


async def test_s2_1_detailsView_answers_exactly_the_listed_keys(server, client):
    room = await new_room(server)
    await client.join(room)
    await client.action("randomNumber")
    reply = await client.request("detailsView")
    assert reply == ok(
        {
            "id": NON_EMPTY_STR,
            "fingerprint": NON_EMPTY_STR,
            "type": "webSocket",
            "remoteIP": "127.0.0.1",
            "remotePort": client.local_port,
            "params": {},
            "connectedAt": now_ms(),
            "rooms": [room],
            "totalActions": 1,
            "pendingActions": 0,
        },
        3,
        3,
    )


async def test_s2_1_detailsView_id_is_the_from_of_its_says(server, client):
    room = await new_room(server)
    await client.join(room)
    await client.say(room, "who am i")
    said = await client.next(lambda f: f.get("context") == "user")
    assert said["from"] == (await client.details())["id"]


async def test_s2_1_documentation_entries_hold_only_the_listed_keys(client):
    reply = await client.request("documentation")
    assert reply == ok(Match("<documentation>", lambda d: isinstance(d, dict)), 1, 1)
    docs = reply["data"]
    assert docs["versionTest"] == {
        "1": {"name": "versionTest", "version": 1, "description": "Version one", "inputs": {}},
        "2": {"name": "versionTest", "version": 2, "description": "Version two", "inputs": {}},
    }
    sleep_input = {"required": False, "default": 1000, "description": "how long to sleep, in ms"}
    assert docs["sleepTest"]["1"]["inputs"] == {"sleepDuration": sleep_input}
    assert docs["randomNumber"]["1"]["outputExample"] == {
        "randomNumber": 0.123,
        "stringRandomNumber": "Your random number is 0.123",
    }
    allowed = {"name", "version", "description", "inputs", "outputExample"}
    for name, versions in docs.items():
        for version, entry in versions.items():
            assert set(entry) <= allowed, (name, version, entry)
            assert entry["name"] == name and str(entry["version"]) == version


async def test_s2_1_ping_answers_pong_with_the_server_time_in_ms(client):
    assert await client.request("ping") == ok({"pong": now_ms(5_000)}, 1, 1)


async def test_s2_1_quit_closes_the_connection_with_4000(client):
    await client.send({"event": "quit", "messageId": 1})
    assert (await client.wait_closed())[0] == 4000


# --- §2.1 params are never sticky ------------------------------------------------------------


async def test_s2_1_params_are_never_sticky_from_one_action_to_the_next(client):
    assert await client.action("paramsTest", a=1) == action_reply({"seen": {"a": 1}}, 1, 1)
    assert await client.action("paramsTest", b=2) == action_reply({"seen": {"b": 2}}, 2, 2)
    assert await client.action("paramsTest") == action_reply({"seen": {}}, 3, 3)


async def test_s2_1_concurrent_actions_on_one_connection_never_see_each_others_params(client):
    await client.send(action_frame(1, "paramsTest", a="slow", delay=300))
    await client.send(action_frame(2, "paramsTest", b="fast"))
    await client.send(action_frame(3, "paramsTest", delay=100))
    assert await client.reply(1) == action_reply({"seen": {"a": "slow"}}, 1, 1)
    assert await client.reply(2) == action_reply({"seen": {"b": "fast"}}, 2, 2)
    assert await client.reply(3) == action_reply({"seen": {}}, 3, 3)


# --- §2.2 the reply envelope -------------------------------------------------------------------


async def test_s2_2_failure_reply_carries_status_and_error_both_the_message(client):
    assert await client.request("fly") == {
        "status": "verb not found or not allowed (fly)",
        "error": "verb not found or not allowed (fly)",
        "context": "response",
        "messageId": 1,
        "messageCount": 1,
    }


async def test_s2_2_reply_carries_messageCount_of_frames_sent_so_far(server, client):
    # the frames the client sent this connection, the answered one included: pushes the
    # server sent in between (the welcome, the say's own copy, an error push) do not count
    room = await new_room(server)
    assert (await client.request("roomAdd", room=room))["messageCount"] == 1
    assert (await client.request("say", room=room, message="x"))["messageCount"] == 2
    await client.send_raw("not json")
    assert (await client.next(lambda f: f.get("context") == "error"))["context"] == "error"
    assert (await client.request("ping"))["messageCount"] == 4
    assert (await client.action("randomNumber"))["messageCount"] == 5


async def test_s2_2_a_slow_action_never_delays_a_fast_verb_sent_after_it(client):
    await client.send(action_frame(1, "sleepTest", sleepDuration=int(TIMEOUT * 1000 / 2)))
    await client.send({"event": "ping", "messageId": 2})
    await client.send(action_frame(3, "randomNumber"))
    first = await client.next(is_reply)
    second = await client.next(is_reply)
    assert (first["messageId"], second["messageId"]) == (2, 3)
    assert (await client.reply(1))["sleepDuration"] == int(TIMEOUT * 1000 / 2)


# --- §2.3 action replies -----------------------------------------------------------------------


async def test_s2_3_action_reply_is_its_fields_plus_the_reply_keys_and_no_error(client):
    reply = await client.action("randomNumber")
    number = reply["randomNumber"]
    assert reply == action_reply(
        {"randomNumber": number, "stringRandomNumber": f"Your random number is {number}"}, 1, 1
    )
    assert "error" not in reply and "status" not in reply


RAISED = [
    ("RuntimeError", "a bug on purpose"),
    ("SystemExit", "exit on purpose"),
    ("CancelledError", "cancelled on purpose"),
    ("KeyboardInterrupt", "interrupted on purpose"),
    ("GeneratorExit", "generator exit on purpose"),
]


@pytest.mark.server_errors(*(text for _, text in RAISED))
@pytest.mark.parametrize("kind, text", RAISED, ids=[kind for kind, _ in RAISED])
async def test_s2_3_any_exception_in_an_action_becomes_error_logged_and_the_server_lives(
    server, client, kind, text
):
    start = server.log_size()
    assert await client.action("contractRaise", kind=kind) == action_reply({"error": text}, 1, 1)
    assert "error" not in await client.action("randomNumber")
    log = server.log_text(start)
    assert "Traceback" in log and text in log, log
    assert server.alive()


async def test_s2_3_replies_to_concurrent_actions_each_carry_their_own_messageId(client):
    for message_id in ("a", "b", "c"):
        await client.send(action_frame(message_id, "paramsTest", a=message_id))
    replies = await asyncio.gather(*(client.reply(m) for m in ("a", "b", "c")))
    assert [r["seen"] for r in replies] == [{"a": "a"}, {"a": "b"}, {"a": "c"}]
