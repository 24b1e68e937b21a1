"""One socket's life: welcome, identity, messageId/messageCount, ping, quit, destroy, pushes and
frames that are not verbs (PROTOCOL.md §2.1, §2.2, §2.5, §4, §6)."""

from __future__ import annotations

import json

import pytest
from testkit import (
    NON_EMPTY_STR,
    UUID4,
    action_frame,
    action_reply,
    eventually,
    failed,
    is_reply,
    now_ms,
    ok,
)

from .support import WELCOME, destroyed, leaves
from .test_ws_admission import refused


async def test_welcome_comes_before_replies_to_frames_sent_at_once(server, connect):
    client = await connect(server, await_welcome=False)
    await client.send({"event": "ping", "messageId": 1})
    first, second = await client.next(), await client.next()
    assert first == {"context": "api", "welcome": WELCOME}
    assert second == ok({"pong": now_ms()}, message_id=1, count=1)


async def test_ping_burst_gets_every_reply_with_its_count(client):
    for message_id in range(1, 201):
        await client.send({"event": "ping", "messageId": message_id})
    replies = [await client.reply(message_id) for message_id in range(1, 201)]
    assert [(r["messageId"], r["messageCount"]) for r in replies] == [(n, n) for n in range(1, 201)]


async def test_detailsView_of_a_fresh_connection_has_no_rooms_and_counts_no_action(client):
    """Every key and its type are the contract tier's (test_s2_frames.py, after a join and an
    action); here: what a socket starts with."""
    details = await client.details()
    assert (details["rooms"], details["totalActions"], details["pendingActions"]) == ([], 0, 0)
    assert (details["params"], details["connectedAt"]) == ({}, now_ms())


@pytest.mark.parametrize("query", ["", "?sessionID="], ids=["no-sessionID", "empty-sessionID"])
async def test_detailsView_fingerprint_defaults_to_a_new_random_id_not_the_connection_id(
    server, connect, query
):
    client = await connect(server, query=query)
    details = await client.details()
    assert NON_EMPTY_STR == details["fingerprint"] != details["id"]


async def test_detailsView_fingerprint_from_cookie(server, connect):
    client = await connect(server, headers={"Cookie": "a=1; sessionID=cookie-fp; b=2"})
    assert (await client.details())["fingerprint"] == "cookie-fp"


async def test_detailsView_ignores_forwarded_for_without_trustProxy(server, connect):
    client = await connect(
        server, headers={"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "1.2.3.4"}
    )
    assert (await client.details())["remoteIP"] == "127.0.0.1"


async def test_upgrade_from_the_pages_own_host_only_is_admitted_by_default(server, connect):
    """PROTOCOL §6: without ``origins``, only the page's own host, as
    Tornado's check_origin; another site's page is refused."""
    client = await connect(server, origin=server.base_url)
    assert (await client.request("ping"))["status"] == "OK"
    status, _ = await refused(server, origin="http://anywhere.example")
    assert status == 403


async def test_close_runs_connection_destroy_middleware(server, connect):
    client = await connect(server)
    client_id = (await client.details())["id"]
    await client.close()

    await eventually(lambda: destroyed(server), lambda ids: client_id in ids)


async def test_detailsView_ids_are_unique_per_socket(server, connect):
    first, second = await connect(server), await connect(server)
    assert (await first.details())["id"] != (await second.details())["id"]


async def test_ping_answers_pong_with_server_time(client):
    assert await client.request("ping") == ok({"pong": now_ms()}, message_id=1, count=1)


async def test_ping_string_messageId_is_echoed(client):
    await client.send({"event": "ping", "messageId": "abc-1"})
    assert await client.reply("abc-1") == ok({"pong": now_ms()}, message_id="abc-1", count=1)


async def test_ping_number_messageId_is_echoed(client):
    await client.send({"event": "ping", "messageId": 42})
    reply = await client.next(is_reply)
    assert reply["messageId"] == 42
    assert isinstance(reply["messageId"], int)


async def test_ping_zero_messageId_is_echoed(client):
    await client.send({"event": "ping", "messageId": 0})
    assert (await client.next(is_reply))["messageId"] == 0


async def test_ping_without_messageId_gets_a_uuid4(client):
    await client.send({"event": "ping"})
    await client.send({"event": "ping", "messageId": None})
    first, second = await client.next(is_reply), await client.next(is_reply)
    assert first == ok({"pong": now_ms()}, message_id=UUID4, count=1)
    assert second == ok({"pong": now_ms()}, message_id=UUID4, count=2)
    assert first["messageId"] != second["messageId"]


async def test_messageCount_counts_frames_sent_including_this_one(client):
    counts = []
    for verb in ("ping", "detailsView", "documentation", "ping"):
        counts.append((await client.request(verb))["messageCount"])
    counts.append((await client.action("randomNumber"))["messageCount"])
    assert counts == [1, 2, 3, 4, 5]


async def test_messageCount_counts_frames_that_were_not_verbs(client):
    await client.send_raw("[]")
    await client.send_raw(b"binary")
    assert [(await client.next())["context"] for _ in range(2)] == ["error", "error"]
    assert (await client.request("ping"))["messageCount"] == 3


async def test_unknown_verb_fails_with_its_name(client):
    assert await client.request("fly") == failed(
        "verb not found or not allowed (fly)", message_id=1, count=1
    )


async def test_quit_closes_with_4000(client):
    await client.send({"event": "quit", "messageId": 1})
    code, _ = await client.wait_closed()
    assert code == 4000


async def test_quit_with_an_action_in_flight_drops_its_reply_quietly(server, client, connect):
    watcher = await connect(server)
    await client.send(action_frame(1, "sleepTest", sleepDuration=200))
    await client.send({"event": "quit", "messageId": 2})
    assert (await client.wait_closed())[0] == 4000
    # started after the first one, so when it answers the orphaned action has finished too
    assert "error" not in await watcher.action("sleepTest", sleepDuration=250)
    assert (await watcher.request("ping"))["status"] == "OK"


async def test_reset_with_an_action_in_flight_leaves_no_trace(server, client, connect):
    watcher = await connect(server)
    client_id = (await client.details())["id"]
    await client.send(action_frame(1, "sleepTest", sleepDuration=200))
    await client.request("ping")  # the action is running
    client.reset()
    assert "error" not in await watcher.action("sleepTest", sleepDuration=250)
    await eventually(lambda: destroyed(server), lambda ids: client_id in ids)


async def test_destroy_from_an_action_closes_with_4000_and_leaves_rooms(server, client):
    await client.request("roomAdd", room="notify-room")
    client_id = (await client.details())["id"]
    await client.send(action_frame(9, "destroyTest"))
    code, _ = await client.wait_closed()
    assert code == 4000

    await eventually(lambda: leaves(server), lambda found: (client_id, "notify-room") in found)


async def test_send_pushes_frames_with_no_keys_added(client):
    frames = [
        {"context": "alert", "text": "hi"},
        {"anything": [1, {"b": None}]},
        {"context": "api"},
    ]
    await client.send(action_frame(7, "pushTest", frames=frames))
    received = [await client.next() for _ in range(4)]
    assert received == [*frames, action_reply({"pushed": 3}, message_id=7, count=1)]


async def test_frame_json_array_gets_error_frame(client):
    await client.send_raw("[1, 2]")
    assert await client.next() == {"context": "error", "error": "a frame must be a JSON object"}


async def test_frame_json_scalars_get_error_frames(client):
    for text in ("42", '"ping"', "null", "true"):
        await client.send_raw(text)
        assert await client.next() == {"context": "error", "error": "a frame must be a JSON object"}


async def test_frame_invalid_json_gets_error_frame(client):
    await client.send_raw("{not json")
    frame = await client.next()
    assert set(frame) == {"context", "error"}
    assert frame["context"] == "error"
    assert frame["error"].startswith("invalid JSON: ")


async def test_frame_binary_gets_error_frame(client):
    await client.send_raw(json.dumps({"event": "ping", "messageId": 1}).encode())
    assert await client.next() == {
        "context": "error",
        "error": "binary frames are not supported; send JSON text",
    }


async def test_frame_errors_keep_the_socket_open(client):
    await client.send_raw("[]")
    await client.send_raw(b"\x00\x01")
    await client.send_raw("{")
    errors = [await client.next() for _ in range(3)]
    assert [frame["context"] for frame in errors] == ["error"] * 3
    reply = await client.request("ping")
    assert reply["status"] == "OK"
