"""Malformed input over the WebSocket: every bad frame gets the error of
PROTOCOL.md §2.5/§3 or a close with the RFC 6455 code, and the server keeps serving others.

Frames are built by hand (testkit.frame_bytes, sent by testkit.Peer), so nothing here depends
on a client library refusing to send what a hostile peer would. The rules of RFC 6455 itself
(every 1002, 1007 and 1009, reassembly, close codes) are test_ws_conformance.py's; this tier
keeps what only an attacker does: absurd lengths, floods, dribbles, bombs.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import re
import struct

import pytest
from testkit import (
    OP_CONT,
    OP_PING,
    OP_TEXT,
    Peer,
    UpgradeRefused,
    action_frame,
    failed,
    frame_bytes,
    is_reply,
    open_stream,
    parse_response,
)

from .support import assert_still_serving, deflate_message, raw_http

LIMIT = 1048576  # maxMessageSize of the main server (the default)
INVALID_JSON = "invalid JSON: "
NOT_OBJECT = {"context": "error", "error": "a frame must be a JSON object"}
UNKNOWN_ACTION = "unknown action or invalid apiVersion"


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


# --- not JSON, not an object -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["{not json", "", " ", "{", '{"event": "ping",}', "\x00", "NaN", '{"a": Infinity}', "'x'"],
)
async def test_invalid_json_gets_an_error_push_and_the_socket_stays_open(main, text):
    peer = await Peer.open(main)
    await peer.send_text(text)
    push = await peer.error_push()
    assert set(push) == {"context", "error"}, push
    assert push["error"].startswith(INVALID_JSON), push
    reply = await peer.request("ping")
    assert (reply["status"], reply["messageCount"]) == ("OK", 2)
    await assert_still_serving(main)


@pytest.mark.parametrize("text", ["[1, 2]", "[]", '"ping"', "42", "null", "true", "1e400"])
async def test_json_that_is_not_an_object_gets_an_error_push(main, text):
    peer = await Peer.open(main)
    await peer.send_text(text)
    assert await peer.error_push() == NOT_OBJECT
    assert (await peer.request("ping"))["status"] == "OK"
    await assert_still_serving(main)


@pytest.mark.parametrize("shape", ["array", "object"])
async def test_json_nested_100000_levels_is_refused_as_invalid_json(main, shape):
    if shape == "array":
        text = '{"event": "ping", "x": ' + nested(100_000) + "}"
    else:
        text = '{"event": "ping", "x": ' + '{"a":' * 100_000 + "1" + "}" * 100_000 + "}"
    peer = await Peer.open(main)
    await peer.send_text(text)
    push = await peer.error_push()
    assert push["error"].startswith(INVALID_JSON), push
    assert (await peer.request("ping"))["status"] == "OK"
    await assert_still_serving(main)


@pytest.mark.server_errors("maximum recursion depth", "Recursion limit reached")
async def test_json_nested_just_under_the_parser_limit_still_gets_a_reply(main):
    """Parsed (the parser allows 1024 levels) but too deep for the reply encoder: the client
    must still get a reply to its messageId, the echo or an error, never silence."""
    peer = await Peer.open(main)
    params = '{"action": "echo", "x": ' + nested(1000) + "}"
    await peer.send_text('{"event": "action", "messageId": 7, "params": ' + params + "}")
    reply = await peer.reply(7, timeout=2)  # an echo takes milliseconds
    assert reply["messageCount"] == 1
    # (comparing 1000 levels with == would itself overflow the test's stack)
    assert isinstance(reply.get("x"), list) or isinstance(reply.get("error"), str)
    await assert_still_serving(main)


# --- huge values -------------------------------------------------------------------------------


async def test_huge_string_round_trips_just_under_maxMessageSize(main):
    peer = await Peer.open(main)
    text = "é" * ((LIMIT - 200) // 2)  # two UTF-8 bytes each
    reply = await peer.action("echo", text=text)
    assert reply["text"] == text
    await assert_still_serving(main)


async def test_huge_verb_name_is_an_unknown_verb(main):
    peer = await Peer.open(main)
    verb = "v" * 200_000
    await peer.send_json({"event": verb, "messageId": 1})
    assert await peer.reply(1) == failed(f"verb not found or not allowed ({verb})", 1, 1)
    await assert_still_serving(main)


async def test_integer_of_10000_digits_is_invalid_json(main):
    peer = await Peer.open(main)
    await peer.send_text('{"event": "ping", "messageId": ' + "9" * 10_000 + "}")
    push = await peer.error_push()
    assert push["error"].startswith(INVALID_JSON), push
    assert "digits" in push["error"], push
    await assert_still_serving(main)


async def test_integer_of_4000_digits_is_echoed_exactly_as_a_messageId(main):
    peer = await Peer.open(main)
    big = int("7" * 4000)
    await peer.send_text('{"event": "ping", "messageId": ' + str(big) + "}")
    reply = await peer.reply(big)
    assert reply["status"] == "OK"
    await assert_still_serving(main)


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1e-400", "123456789012345678901234567890"])
async def test_out_of_range_numbers_in_params_do_not_break_the_reply(main, number):
    peer = await Peer.open(main)
    params = '{"action": "echo", "n": ' + number + "}"
    await peer.send_text('{"event": "action", "messageId": 1, "params": ' + params + "}")
    reply = await peer.reply(1)
    assert "error" not in reply, reply
    assert "n" in reply  # JSON has no infinity: it may come back as null
    await assert_still_serving(main)


# --- bytes that are not UTF-8 text --------------------------------------------------------------


# --- verbs and params of the wrong kind --------------------------------------------------------


@pytest.mark.parametrize("verb", ["nope", "", "__init__", "constructor", "ACTION", "action "])
async def test_unknown_verb_fails_with_its_name(main, verb):
    peer = await Peer.open(main)
    await peer.send_json({"event": verb, "messageId": "m"})
    assert await peer.reply("m") == failed(f"verb not found or not allowed ({verb})", "m", 1)
    await assert_still_serving(main)


@pytest.mark.parametrize("verb", [None, 42, ["action"], {"event": "action"}, True])
async def test_verb_that_is_not_a_string_fails(main, verb):
    frame = {"messageId": "m"} if verb is None else {"event": verb, "messageId": "m"}
    peer = await Peer.open(main)
    await peer.send_json(frame)
    reply = await peer.reply("m")
    assert reply["error"].startswith("verb not found or not allowed ("), reply
    assert reply["status"] == reply["error"]
    await assert_still_serving(main)


@pytest.mark.parametrize(
    "params",
    [
        "status",
        ["status"],
        None,
        42,
        {"action": ["status"]},
        {"action": {"name": "status"}},
        {"action": 42},
        {"action": None},
        {"action": "status", "apiVersion": {"v": 1}},
        {"action": "status", "apiVersion": [1]},
        {"action": "status", "apiVersion": "one"},
        {"action": "status", "apiVersion": 1e308},
        {"action": "status", "apiVersion": True},
    ],
)
async def test_action_params_of_the_wrong_type_are_an_unknown_action(main, params):
    peer = await Peer.open(main)
    await peer.send_json({"event": "action", "messageId": 1, "params": params})
    reply = await peer.reply(1)
    assert reply == {
        "error": UNKNOWN_ACTION,
        "context": "response",
        "messageId": 1,
        "messageCount": 1,
    }
    await assert_still_serving(main)


@pytest.mark.parametrize("duration", [{"ms": 5}, [5], "five", "9" * 5000, -5])
async def test_input_of_the_wrong_type_fails_validation(main, duration):
    peer = await Peer.open(main)
    reply = await peer.action("sleepTest", sleepDuration=duration)
    assert reply["error"] == 'Input for parameter "sleepDuration" failed validation!', reply
    await assert_still_serving(main)


@pytest.mark.parametrize("verb", ["roomAdd", "roomLeave", "roomView"])
@pytest.mark.parametrize("room", [42, {"name": "defaultRoom"}, ["defaultRoom"], "", None])
async def test_room_of_the_wrong_type_fails(main, verb, room):
    """PROTOCOL §3: an empty, absent or non-string room name is an invalid room name."""
    peer = await Peer.open(main)
    reply = await peer.request(verb, room=room)
    assert (reply["status"], reply["error"]) == ("invalid room name", "invalid room name")
    await assert_still_serving(main)


@pytest.mark.parametrize("message", [42, ["hi"], "", None, True, {}])
async def test_say_message_of_the_wrong_type_fails(main, message):
    peer = await Peer.open(main)
    assert (await peer.request("roomAdd", room="defaultRoom"))["status"] == "OK"
    reply = await peer.request("say", room="defaultRoom", message=message)
    assert reply["error"] == "both room and message are required", reply
    await assert_still_serving(main)


@pytest.mark.parametrize("name", [42, None, {"path": "index.html"}, ["index.html"], True])
async def test_file_of_the_wrong_type_is_not_found(main, name):
    peer = await Peer.open(main)
    reply = await peer.request("file", file=name)
    found = (reply["error"], reply["content"], reply["length"])
    assert found == ("That file is not found", None, 22)
    await assert_still_serving(main)


@pytest.mark.parametrize("message_id", ["x" * 10_000, -1, 0.5, 2**53, ""])
async def test_any_string_or_number_messageId_is_echoed(main, message_id):
    peer = await Peer.open(main)
    await peer.send_json({"event": "ping", "messageId": message_id})
    reply = await peer.next(is_reply)
    assert reply["messageId"] == message_id
    await assert_still_serving(main)


@pytest.mark.parametrize("message_id", [{"nested": [1, 2]}, {}, [None], [], False, True])
@pytest.mark.parametrize("verb", ["ping", "roomAdd", "action", "quit"])
async def test_messageId_of_another_type_is_refused_and_never_echoed(main, message_id, verb):
    """PROTOCOL §2.1: the verb does not run and the id is not echoed."""
    peer = await Peer.open(main)
    await peer.send_json(
        {"event": verb, "messageId": message_id, "room": "defaultRoom", "params": {}}
    )
    reply = await peer.next(is_reply)
    text = "messageId must be a string or a number"
    assert reply == {"status": text, "error": text, "context": "response", "messageCount": 1}
    assert (await peer.request("detailsView"))["data"]["rooms"] == []
    await assert_still_serving(main)


HOSTILE_ACTION_NAMES = [
    "../status",
    "..",
    "./status",
    "/status",
    "status/",
    "status/../echo",
    "status/./",
    "..\\status",
    "status\\..\\echo",
    "%2e%2e/status",
    "__init__",
    "__class__",
    "__proto__",
    "__import__",
    "constructor",
    "toString",
    "STATUS",
    "status ",
    " status",
    "status\n",
    "status\x00",
    "status\x00../echo",
    "actions.status",
    "squall_app.actions.status",
]


@pytest.mark.parametrize("name", HOSTILE_ACTION_NAMES)
async def test_action_names_with_separators_or_dunders_are_unknown(main, name):
    peer = await Peer.open(main)
    reply = await peer.action(name)
    assert reply["error"] == UNKNOWN_ACTION, reply
    assert set(reply) == {"error", "context", "messageId", "messageCount"}
    await assert_still_serving(main)


# --- frames that break RFC 6455 ----------------------------------------------------------------

PING = json.dumps({"event": "ping", "messageId": 1}).encode()


@pytest.mark.parametrize("claimed", [LIMIT + 1, 2**32, 2**63 - 1, 2**64 - 1])
async def test_frame_claiming_a_huge_length_closes_1009_at_once(main, claimed):
    """The header alone is enough: the server must not wait for (or buffer) the payload."""
    peer = await Peer.open(main)
    await peer.send_raw(frame_bytes(OP_TEXT, b"", length=claimed)[:14])
    code, _ = await peer.wait_closed()
    assert code == 1009
    await assert_still_serving(main)


# --- fragmentation and pipelining --------------------------------------------------------------


async def test_message_split_into_one_byte_writes_is_reassembled(main):
    peer = await Peer.open(main)
    data = frame_bytes(OP_TEXT, json.dumps(action_frame(1, "echo", word="dribbled")).encode())
    for index in range(len(data)):
        await peer.send_raw(data[index : index + 1])
    assert (await peer.reply(1))["word"] == "dribbled"
    await assert_still_serving(main)


async def test_a_thousand_frames_in_one_write_are_all_answered_in_order(main):
    peer = await Peer.open(main)
    burst = b"".join(
        frame_bytes(OP_TEXT, json.dumps({"event": "ping", "messageId": n}).encode())
        for n in range(1000)
    )
    await peer.send_raw(burst)
    replies = [await peer.next(is_reply) for _ in range(1000)]
    assert [r["messageId"] for r in replies] == list(range(1000))
    assert [r["messageCount"] for r in replies] == list(range(1, 1001))
    await assert_still_serving(main)


async def test_a_thousand_protocol_pings_in_one_write_get_a_thousand_pongs(main):
    peer = await Peer.open(main)
    await peer.send_raw(b"".join(frame_bytes(OP_PING, str(n).encode()) for n in range(1000)))
    assert (await peer.request("ping"))["status"] == "OK"  # after every pong, in order
    assert peer.pongs == [str(n).encode() for n in range(1000)]
    await assert_still_serving(main)


async def test_frames_sent_with_the_handshake_are_answered_or_refused(main):
    """A client that does not wait for the 101 (RFC 6455 4.1 says it must) and sends a frame in
    the same write as its upgrade request: the frame must be answered, or the connection closed
    with 1002, never silently lost."""
    reader, writer = await open_stream(main)
    request = (
        f"GET /primus HTTP/1.1\r\nHost: 127.0.0.1:{main.port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    writer.write(request + frame_bytes(OP_TEXT, PING))
    received = b""
    try:
        async with asyncio.timeout(2):  # a ping reply takes milliseconds
            while b'"messageId":1' not in received:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                received += chunk
    except TimeoutError:
        pass
    finally:
        writer.transport.abort()
    answered = b'"messageId":1' in received
    refused = b"\x88" in received and struct.pack("!H", 1002) in received
    assert answered or refused, f"the frame was silently lost; received {received[-300:]!r}"
    await assert_still_serving(main)


async def test_frames_before_the_welcome_are_answered_after_it(main):
    peer = await Peer.open(main, welcome=False)
    await peer.send_json({"event": "ping", "messageId": 1})
    first = await peer.next()
    assert first.get("context") == "api", first
    assert (await peer.reply(1))["status"] == "OK"
    await assert_still_serving(main)


# --- permessage-deflate ---------------------------------------------------------------------


@functools.cache
def zip_bomb() -> bytes:
    return deflate_message(b'{"event": "ping", "pad": "' + b"0" * (32 * 1024 * 1024) + b'"}')


@pytest.mark.parametrize("fragmented", [False, True], ids=["one frame", "fragments"])
async def test_zip_bomb_inflating_past_maxMessageSize_closes_1009(main, fragmented):
    bomb = zip_bomb()
    assert len(bomb) < LIMIT // 4  # small on the wire: ~32 KiB inflating to 32 MiB
    peer = await Peer.open(main, compress=True)
    rss_before = main.rss()
    if fragmented:
        half = len(bomb) // 2
        await peer.send_raw(
            frame_bytes(OP_TEXT, bomb[:half], fin=False, rsv=4) + frame_bytes(OP_CONT, bomb[half:])
        )
    else:
        await peer.send_frame(OP_TEXT, bomb, rsv=4)
    code, _ = await peer.wait_closed()
    assert code == 1009
    assert main.rss() - rss_before < 16 * 1024 * 1024  # it never inflated the whole bomb
    await assert_still_serving(main)


# --- the upgrade request ------------------------------------------------------------------------


async def test_upgrade_with_a_60_kb_cookie_gets_a_new_fingerprint(main):
    """Only 1 to 128 characters of [A-Za-z0-9_-] are a fingerprint (PROTOCOL.md §4)."""
    peer = await Peer.open(main, headers={"Cookie": "sessionID=" + "f" * 60_000})
    fingerprint = (await peer.request("detailsView"))["data"]["fingerprint"]
    assert fingerprint != "f" * 60_000 and FINGERPRINT.fullmatch(fingerprint)
    assert peer.response.cookies() == [session_cookie(fingerprint)]
    await assert_still_serving(main)


async def test_upgrade_with_a_cookie_past_maxHeaderSize_is_431(main):
    """Answered before the connection closes, never a silent close (PROTOCOL.md §3)."""
    with pytest.raises(UpgradeRefused) as refused:
        await Peer.open(main, headers={"Cookie": "sessionID=" + "f" * 100_000})
    response = refused.value.response
    assert (response.status, response.json()) == (
        431,
        {"error": "the request head is larger than servers.web.maxHeaderSize (65536 bytes)"},
    )
    await assert_still_serving(main)


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"Sec-WebSocket-Version": "8"}, 426),
        ({"Sec-WebSocket-Key": ""}, 426),
        ({"Upgrade": "h2c"}, 400),
        ({"Connection": "keep-alive"}, 400),
        ({"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits=1" * 500}, 101),
    ],
    ids=["version 8", "empty key", "not websocket", "no upgrade token", "absurd extensions"],
)
async def test_broken_upgrade_requests_are_refused(main, headers, status):
    try:
        peer = await Peer.open(main, headers=headers)
    except UpgradeRefused as refused:
        assert refused.response is not None and refused.response.status == status
    else:
        assert status == 101
        assert (await peer.request("ping"))["status"] == "OK"
    await assert_still_serving(main)


@pytest.mark.parametrize(
    "key",
    [
        "short",
        "!!!!!!!!!!!!!!!!!!!!!!!!",
        base64.b64encode(b"x" * 15).decode(),
        base64.b64encode(b"x" * 17).decode(),
        "dGhlIHNhbXBsZSBub25jZQ==\u00e9",
        "\u00e9t\u00e9 dGhlIHNhbXBsZSBub25jZQ==",
    ],
    ids=["short", "not base64", "15 bytes", "17 bytes", "trailing non-ASCII", "non-ASCII"],
)
async def test_upgrade_with_a_key_that_is_not_base64_of_16_bytes_is_400(main, key):
    """RFC 6455 §4.1; a non-ASCII key once answered 500 with a traceback in the log."""
    request = (
        f"GET /primus HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    ).encode()
    response = parse_response(await raw_http(main, request))
    assert response is not None and response.status == 400, response
    await assert_still_serving(main)


# --- the fingerprint (PROTOCOL.md §4) -------------------------------------------------------------

#: What a fingerprint made by the server looks like, and the cookie that carries it.
FINGERPRINT = re.compile(r"[A-Za-z0-9_-]{16,128}")


def session_cookie(fingerprint: str) -> str:
    return f"sessionID={fingerprint}; Path=/; HttpOnly; SameSite=Lax"


HOSTILE_SESSION_IDS = {
    "header injection": "abc%0d%0aX-Injected:%20yes",
    "cookie attributes": "x;%20Domain=evil.example;%20Max-Age=99999;%20Path=/admin",
    "non-Latin-1": "%E2%98%83",
    "Latin-1": "caf%E9",
    "space": "a%20b",
    "quote": "%22abc%22",
    "129 characters": "a" * 129,
    "empty": "",
}


@pytest.mark.parametrize("session_id", HOSTILE_SESSION_IDS.values(), ids=HOSTILE_SESSION_IDS.keys())
async def test_upgrade_with_a_hostile_sessionID_gets_a_new_fingerprint_and_clean_headers(
    main, session_id
):
    """Nothing of the value reaches a header: no injected header, no cookie attribute, no 500."""
    peer = await Peer.open(main, query=f"?sessionID={session_id}")
    details = (await peer.request("detailsView"))["data"]
    fingerprint = details["fingerprint"]
    assert FINGERPRINT.fullmatch(fingerprint) and fingerprint != details["id"], details
    assert peer.response.headers.get("X-Injected") is None
    assert peer.response.cookies() == [session_cookie(fingerprint)]
    await assert_still_serving(main)


@pytest.mark.parametrize("cookie", ["a b", "caf\u00e9", "x" * 129, "a,b"])
async def test_upgrade_with_a_hostile_cookie_takes_the_query_value(main, cookie):
    query_value = "Q-" + "q" * 126  # 128 characters: the longest fingerprint
    peer = await Peer.open(
        main, query=f"?sessionID={query_value}", headers={"Cookie": f"sessionID={cookie}"}
    )
    assert (await peer.request("detailsView"))["data"]["fingerprint"] == query_value
    assert peer.response.cookies() == [session_cookie(query_value)]
    await assert_still_serving(main)


async def test_socket_without_cookie_gets_a_random_fingerprint_never_its_id(main):
    """Every member of a room sees the id as ``from``: were it the fingerprint, replaying it as
    a cookie would take the session over."""
    first, second = await Peer.open(main), await Peer.open(main)
    seen = []
    for peer in (first, second):
        details = (await peer.request("detailsView"))["data"]
        assert FINGERPRINT.fullmatch(details["fingerprint"]), details
        assert details["fingerprint"] != details["id"]
        assert peer.response.cookies() == [session_cookie(details["fingerprint"])]
        seen.append(details["fingerprint"])
    assert seen[0] != seen[1]
    await assert_still_serving(main)


async def test_socket_with_a_valid_cookie_keeps_it_and_sets_none(main):
    peer = await Peer.open(main, headers={"Cookie": "other=1; sessionID=My_Session-42"})
    assert (await peer.request("detailsView"))["data"]["fingerprint"] == "My_Session-42"
    assert peer.response.cookies() == []
    await assert_still_serving(main)
