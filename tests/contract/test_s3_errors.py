"""PROTOCOL.md §3 from outside: every error text of the table over the socket (and over HTTP
where an action can cause it), the errors an app raises on purpose, what an unexpected
exception shows with ``general.exposeErrors`` on and off, and the HTTP statuses."""

from __future__ import annotations

import asyncio
import re

import pytest
from testkit import (
    TIMEOUT,
    Match,
    action_frame,
    action_reply,
    failed,
    http_request,
    open_stream,
    parse_response,
)

from .support import http_action, new_room, running_server

REF = re.compile(r"^internal error \(ref (\w+)\)$")


@pytest.fixture
async def client(server, connect):
    return await connect(server)


@pytest.fixture(scope="module")
def hidden(tmp_path_factory):
    """A server that hides unexpected errors and holds at most 3 rooms (defaultRoom is one)."""
    options = {"general": {"exposeErrors": False, "maxRooms": 3}}
    with running_server(tmp_path_factory, "hidden", options) as started:
        yield started


# --- action errors, over the socket and over HTTP -------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{"action": "noSuchAction"}, {"action": "versionTest", "apiVersion": 3}],
    ids=["unknown action", "unknown version"],
)
async def test_s3_unknown_action_or_version(server, client, params):
    text = "unknown action or invalid apiVersion"
    assert await client.request("action", params=params) == action_reply({"error": text}, 1, 1)
    response = http_action(server, params["action"], **params)
    assert (response.status, response.json()["error"]) == (404, text)


@pytest.mark.parametrize(
    "inputs, text",
    [
        ({}, "needed is a required parameter for this action"),
        ({"needed": 1, "even": 3}, 'Input for parameter "even" failed validation!'),
        ({"needed": 1, "word": "LOUD"}, "word must be lower case"),
    ],
    ids=["missing required input", "validator false: the default text", "validator message"],
)
async def test_s3_input_errors_are_422_with_their_text(server, client, inputs, text):
    assert await client.action("inputsTest", **inputs) == action_reply({"error": text}, 1, 1)
    response = http_action(server, "inputsTest", **inputs)
    assert (response.status, response.json()["error"]) == (422, text)


async def test_s3_more_than_simultaneousActions_5_in_flight_is_too_many_pending(client):
    for message_id in range(1, 6):
        await client.send(action_frame(message_id, "sleepTest", sleepDuration=1000))
    await client.send(action_frame(6, "randomNumber"))
    text = "you have too many pending requests"
    assert await client.next(lambda f: f.get("context") == "response") == action_reply(
        {"error": text}, 6, 6
    )
    for message_id in range(1, 6):
        assert "error" not in await client.reply(message_id)
    # the refused one still counts in totalActions (PROTOCOL.md §4)
    assert (await client.details())["totalActions"] == 6


# --- verb errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [{"message": "hi"}, {"room": "defaultRoom"}, {}],
    ids=["no room", "no message", "none"],
)
async def test_s3_say_without_room_or_message(client, fields):
    await client.join("defaultRoom")
    reply = await client.request("say", **fields)
    assert reply == failed("both room and message are required", 2, 2)


@pytest.mark.parametrize("verb", ["roomAdd", "roomLeave", "roomView", "roomHistory", "say"])
async def test_s3_room_missing(client, verb):
    extra = {"message": "hi"} if verb == "say" else {}
    reply = await client.request(verb, room="no-such-room", **extra)
    assert reply == failed("room does not exist", 1, 1)


async def test_s3_already_a_member(server, client):
    room = await new_room(server)
    await client.join(room)
    reply = await client.request("roomAdd", room=room)
    assert reply == failed(f"connection already in this room ({room})", 2, 2)


@pytest.mark.parametrize("verb", ["say", "roomLeave", "roomView", "roomHistory"])
async def test_s3_not_a_member(server, client, verb):
    room = await new_room(server)
    extra = {"message": "hi"} if verb == "say" else {}
    reply = await client.request(verb, room=room, **extra)
    assert reply == failed(f"connection not in this room ({room})", 1, 1)


async def test_s3_join_blocked_by_middleware_is_its_message(client):
    room = "mw-blocked"
    assert await client.request("roomAdd", room=room) == failed("this room is closed to you", 1, 1)
    assert (await client.details())["rooms"] == []


async def test_s3_leave_blocked_by_middleware_is_its_message(client):
    room = "mw-sticky"
    await client.join(room)
    assert await client.request("roomLeave", room=room) == failed(
        "you cannot leave this room", 2, 2
    )
    assert (await client.details())["rooms"] == [room]


async def test_s3_say_blocked_by_middleware_is_its_message(client):
    room = "mw-chat"
    await client.join(room)
    reply = await client.request("say", room=room, message="refuse me")
    assert reply == failed("that message is not allowed", 2, 2)
    assert not client.take(lambda f: f.get("context") == "user")


BAD_NAMES = {
    "empty": "",
    "129 characters": "r" * 129,
    "a number": 5,
    "null": None,
    "a list": ["defaultRoom"],
    "a newline": "a\nb",
    "a NUL": "a\x00b",
    "a tab": "a\tb",
    "DEL": "a\x7fb",
    "a C1 control": "a\x85b",
}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
@pytest.mark.parametrize("verb", ["roomAdd", "roomLeave", "roomView", "roomHistory", "say"])
async def test_s3_invalid_room_name(client, verb, name):
    extra = {"message": "hi"} if verb == "say" else {}
    reply = await client.request(verb, room=name, **extra)
    if verb == "say" and name is None:  # a say with a null room is a say without a room
        assert reply == failed("both room and message are required", 1, 1)
    else:
        assert reply == failed("invalid room name", 1, 1)


async def test_s3_room_name_of_128_characters_is_a_name(client):
    reply = await client.request("roomAdd", room="r" * 128)
    assert reply == failed("room does not exist", 1, 1)


@pytest.mark.parametrize("name", ["r" * 129, "a\nb"], ids=["129", "newline"])
def test_s3_invalid_room_name_over_http(server, name):
    response = http_action(server, "createChatRoom", name=name)
    assert (response.status, response.json()["error"]) == (422, "invalid room name")


def test_s3_more_than_maxRooms_rooms_is_too_many_rooms(hidden):
    made = [http_action(hidden, "createChatRoom", name=f"max-{n}") for n in range(2)]
    assert [response.json()["didCreate"] for response in made] == [True, True]
    response = http_action(hidden, "createChatRoom", name="max-2")
    # PROTOCOL.md §3 names no status for it: "500 anything else"
    assert (response.status, response.json()["error"]) == (500, "too many rooms")


# --- errors an app raises on purpose ------------------------------------------------------------

ON_PURPOSE = [
    ("ActionError", 400, "plain action error"),
    ("ActionError418", 418, "a teapot"),
    ("BadRequest", 400, "bad request on purpose"),
    ("Unauthorized", 401, "unauthorized on purpose"),
    ("Forbidden", 403, "forbidden on purpose"),
    ("NotFound", 404, "not found on purpose"),
    ("Conflict", 409, "conflict on purpose"),
    ("InvalidParams", 422, "invalid on purpose"),
    ("TooManyRequests", 429, "too many on purpose"),
    ("PermissionError", 403, "permission denied on purpose"),
]


@pytest.mark.parametrize("kind, status, text", ON_PURPOSE, ids=[k for k, _, _ in ON_PURPOSE])
@pytest.mark.parametrize("which", ["exposed", "hidden"])
async def test_s3_errors_raised_on_purpose_reach_the_client_with_their_status(
    server, hidden, connect, which, kind, status, text
):
    target = server if which == "exposed" else hidden
    client = await connect(target)
    reply = await client.action("contractRaise", kind=kind)
    assert reply == action_reply({"error": text}, 1, 1)
    response = http_action(target, "contractRaise", kind=kind)
    assert (response.status, response.json()["error"]) == (status, text)


async def test_s2_3_an_action_answering_with_an_error_fails_like_an_action_error(server, client):
    reply = await client.action("contractAnswerError", error="not today")
    assert reply == action_reply({"error": "not today", "answered": True}, 1, 1)
    response = http_action(server, "contractAnswerError", error="not today")
    assert (response.status, response.json()["error"]) == (400, "not today")


async def test_s2_3_an_action_answering_with_a_null_error_succeeds_without_the_key(server, client):
    reply = await client.action("contractAnswerError")
    assert reply == action_reply({"answered": True}, 1, 1)
    response = http_action(server, "contractAnswerError")
    assert response.status == 200 and "error" not in response.json()


@pytest.mark.server_errors("a bug on purpose")
async def test_s3_any_other_exception_shows_its_text_when_exposeErrors_is_true(server, client):
    assert await client.action("contractRaise", kind="RuntimeError") == action_reply(
        {"error": "a bug on purpose"}, 1, 1
    )
    response = http_action(server, "contractRaise", kind="RuntimeError")
    assert (response.status, response.json()["error"]) == (500, "a bug on purpose")


@pytest.mark.server_errors("on purpose")
@pytest.mark.parametrize("kind", ["SystemExit", "CancelledError", "KeyboardInterrupt"])
async def test_s3_an_exception_outside_Exception_is_internal_error_ref_too(hidden, connect, kind):
    client = await connect(hidden)
    reply = await client.action("contractRaise", kind=kind)
    assert reply == action_reply({"error": Match("<internal error (ref id)>", REF.match)}, 1, 1)


@pytest.mark.server_errors("a bug on purpose")
async def test_s3_any_other_exception_is_internal_error_ref_when_exposeErrors_is_false(
    hidden, connect
):
    client = await connect(hidden)
    start = hidden.log_size()
    reply = await client.action("contractRaise", kind="RuntimeError")
    assert reply == action_reply({"error": Match("<internal error (ref id)>", REF.match)}, 1, 1)
    response = http_action(hidden, "contractRaise", kind="RuntimeError")
    body = response.json()
    assert response.status == 500 and REF.match(body["error"]), body
    refs = [REF.match(reply["error"])[1], REF.match(body["error"])[1]]
    assert refs[0] != refs[1]
    log = hidden.log_text(start)
    for ref in refs:
        [line] = [ln for ln in log.splitlines() if ref in ln]
        record = log[log.index(line) :]
        assert "Traceback" in record and "a bug on purpose" in record
    assert "a bug on purpose" not in str(reply) + str(body)


# --- HTTP statuses -----------------------------------------------------------------------------


def test_s3_http_malformed_request_is_400_with_a_json_error(server):
    response = http_request(
        server, "POST", "/api/echo", "{not json", {"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert isinstance(response.json()["error"], str) and response.json()["error"]


def test_s3_http_unknown_action_is_404_with_a_json_error(server):
    response = http_request(server, "GET", "/api/noSuchAction")
    assert (response.status, response.json()["error"]) == (
        404,
        "unknown action or invalid apiVersion",
    )


async def test_s3_http_request_head_over_the_limit_is_431_never_a_silent_close(server):
    reader, writer = await open_stream(server)
    try:
        writer.write(
            b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
        )
        await writer.drain()
        raw = b""
        async with asyncio.timeout(TIMEOUT):
            while (response := parse_response(raw)) is None:
                chunk = await reader.read(65536)
                assert chunk, f"closed without an answer after {raw!r}"
                raw += chunk
        assert response.status in (431, 400)
    finally:
        writer.transport.abort()
