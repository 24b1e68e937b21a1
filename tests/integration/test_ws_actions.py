"""The action verb over a real socket: reply shapes, every action error of PROTOCOL.md §3,
out-of-order replies, params that are never sticky, the simultaneousActions limit, and the
documentation verb (PROTOCOL.md §2.1-§2.3, §3, §4)."""

from __future__ import annotations

import pytest
from testkit import POSITIVE_INT, action_frame, action_reply, is_reply, now_ms, ok


async def test_action_sleepTest_reply_shape(client):
    reply = await client.action("sleepTest", sleepDuration=20)
    assert reply == action_reply(
        {
            "sleepStarted": now_ms(),
            "sleepEnded": now_ms(),
            "sleepDelta": reply["sleepEnded"] - reply["sleepStarted"],
            "sleepDuration": 20,
        },
        message_id=1,
        count=1,
    )
    assert reply["sleepDelta"] >= 20


async def test_action_echo_returns_its_params(client):
    reply = await client.action("echo", hello="world", n=3, nested={"a": [1]})
    assert reply == action_reply(
        {"action": "echo", "hello": "world", "n": 3, "nested": {"a": [1]}}, message_id=1, count=1
    )


async def test_action_reply_keys_win_over_returned_fields(client):
    reply = await client.action("echo", context="user", messageId="spoof", messageCount=999)
    assert (reply["context"], reply["messageId"], reply["messageCount"]) == ("response", 1, 1)


async def test_action_randomNumber_has_no_error(client):
    reply = await client.action("randomNumber")
    assert "error" not in reply
    assert 0 <= reply["randomNumber"] < 1


async def test_action_unknown_fails(client):
    assert await client.action("noSuchAction") == action_reply(
        {"error": "unknown action or invalid apiVersion"}, message_id=1, count=1
    )


async def test_action_without_name_fails(client):
    assert await client.request("action", params={}) == action_reply(
        {"error": "unknown action or invalid apiVersion"}, message_id=1, count=1
    )


async def test_action_highest_version_by_default(client):
    assert (await client.action("versionTest"))["version"] == 2


async def test_action_apiVersion_selects_a_version(client):
    assert (await client.action("versionTest", apiVersion=1))["version"] == 1


async def test_action_unknown_apiVersion_fails(client):
    assert await client.action("versionTest", apiVersion=3) == action_reply(
        {"error": "unknown action or invalid apiVersion"}
    )


async def test_action_missing_required_input_fails(client):
    assert await client.action("inputsTest") == action_reply(
        {"error": "needed is a required parameter for this action"}, message_id=1, count=1
    )


async def test_action_validator_false_fails_with_default_text(client):
    assert await client.action("inputsTest", needed=1, even=3) == action_reply(
        {"error": 'Input for parameter "even" failed validation!'}
    )


async def test_action_validator_message_is_the_error(client):
    assert await client.action("inputsTest", needed=1, word="LOUD") == action_reply(
        {"error": "word must be lower case"}
    )


async def test_action_validator_exception_message_is_the_error(client):
    assert await client.action("inputsTest", needed=1, answer="41") == action_reply(
        {"error": "the answer is 42"}
    )


async def test_action_valid_inputs_are_formatted(client):
    reply = await client.action("inputsTest", needed="x", even="4", word="calm", answer="42")
    assert reply == action_reply(
        {"accepted": {"needed": "x", "even": 4, "word": "calm", "answer": 42}}
    )


@pytest.mark.server_errors("this action fails on purpose")
async def test_action_exception_becomes_error_and_server_lives(client):
    assert await client.action("failTest") == action_reply(
        {"error": "this action fails on purpose"}, message_id=1, count=1
    )
    assert (await client.request("ping"))["status"] == "OK"


async def test_action_slow_reply_does_not_delay_a_fast_verb(client):
    await client.send(action_frame("slow", "sleepTest", sleepDuration=400))
    await client.send({"event": "ping", "messageId": "fast"})
    first, second = await client.next(is_reply), await client.next(is_reply)
    assert (first["messageId"], second["messageId"]) == ("fast", "slow")
    assert "error" not in second


async def test_action_slow_reply_does_not_delay_a_fast_action(client):
    await client.send(action_frame(1, "sleepTest", sleepDuration=400))
    await client.send(action_frame(2, "sleepTest", sleepDuration=0))
    first, second = await client.next(is_reply), await client.next(is_reply)
    assert (first["messageId"], second["messageId"]) == (2, 1)
    assert (first["sleepDuration"], second["sleepDuration"]) == (0, 400)


async def test_action_plain_function_does_not_block_the_loop(client):
    await client.send(action_frame("sync", "syncTest", duration=400))
    await client.send({"event": "ping", "messageId": "fast"})
    first, second = await client.next(is_reply), await client.next(is_reply)
    assert (first["messageId"], second["messageId"]) == ("fast", "sync")
    assert second == action_reply({"slept": 400}, message_id="sync")


async def test_action_params_are_not_sticky(client):
    assert (await client.action("paramsTest", a=1))["seen"] == {"a": 1}
    assert (await client.action("paramsTest", b=2))["seen"] == {"b": 2}
    assert (await client.action("paramsTest"))["seen"] == {}
    assert (await client.details())["params"] == {}


async def test_action_concurrent_params_stay_apart(client):
    await client.send(action_frame(1, "paramsTest", a="first", delay=300))
    await client.send(action_frame(2, "paramsTest", b="second"))
    fast, slow = await client.next(is_reply), await client.next(is_reply)
    assert (fast["messageId"], fast["seen"]) == (2, {"b": "second"})
    assert (slow["messageId"], slow["seen"]) == (1, {"a": "first"})


async def test_action_sixth_in_flight_fails_at_once(client):
    for message_id in range(1, 6):
        await client.send(action_frame(message_id, "sleepTest", sleepDuration=1000))
    await client.send(action_frame(6, "sleepTest", sleepDuration=0))

    first = await client.next(is_reply)
    assert first == action_reply(
        {"error": "you have too many pending requests"}, message_id=6, count=6
    )
    details = await client.details()
    assert (details["pendingActions"], details["totalActions"]) == (5, 6)
    assert [f for f in client.inbox if is_reply(f)] == []

    finished = [await client.next(is_reply) for _ in range(5)]
    assert sorted(f["messageId"] for f in finished) == [1, 2, 3, 4, 5]
    assert [f.get("error") for f in finished] == [None] * 5
    details = await client.details()
    assert (details["pendingActions"], details["totalActions"]) == (0, 6)


async def test_action_limit_is_per_connection(server, connect):
    first, second = await connect(server), await connect(server)
    for client in (first, second):
        for message_id in range(1, 6):
            await client.send(action_frame(message_id, "sleepTest", sleepDuration=300))
    replies = [await c.reply(n) for c in (first, second) for n in range(1, 6)]
    assert [r.get("error") for r in replies] == [None] * 10


async def test_action_after_limit_clears_runs_again(client):
    for message_id in range(1, 7):
        await client.send(action_frame(message_id, "sleepTest", sleepDuration=200))
    replies = [await client.next(is_reply) for _ in range(6)]
    assert sum(1 for r in replies if "error" in r) == 1
    assert "error" not in await client.action("sleepTest", sleepDuration=0)


async def test_documentation_lists_every_action_by_version(client):
    reply = await client.request("documentation")
    assert reply == ok(reply["data"], message_id=1, count=1)
    docs = reply["data"]
    shipped = {"status", "showDocumentation", "createChatRoom", "randomNumber", "sleepTest", "echo"}
    assert shipped <= set(docs)
    assert set(docs["versionTest"]) == {"1", "2"}
    assert docs["docTest"] == {
        "3": {
            "name": "docTest",
            "version": 3,
            "description": "Documented on purpose",
            "inputs": {
                "x": {"required": True, "description": "an x"},
                "y": {"required": False, "default": 7},
            },
            "outputExample": {"ok": True},
        }
    }
    sleep_duration = docs["sleepTest"]["1"]["inputs"]["sleepDuration"]
    assert (sleep_duration["required"], sleep_duration["default"]) == (False, 1000)


async def test_documentation_equals_showDocumentation(client):
    verb = (await client.request("documentation"))["data"]
    action = await client.action("showDocumentation")
    assert action == action_reply({"documentation": verb}, message_id=POSITIVE_INT)
