"""PROTOCOL.md §4 from outside: connection types, where the fingerprint comes from and who sees
it, the fingerprint cookie on every HTTP response, sessions shared per fingerprint and kept
``sessionTtl``, ``connection.send``, and the actions in flight per connection."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from testkit import (
    NON_EMPTY_STR,
    Peer,
    UpgradeRefused,
    action_frame,
    action_reply,
    eventually,
    http_request,
    is_reply,
)

from .support import http_action, new_room

FINGERPRINT = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
COOKIE = re.compile(r"^sessionID=([^;]*); Path=/; HttpOnly; SameSite=Lax$")


def set_cookie(response) -> str:
    """The fingerprint the response's one Set-Cookie sets, checked against PROTOCOL.md §4."""
    [header] = response.cookies()
    match = COOKIE.match(header)
    assert match, header
    assert FINGERPRINT.match(match[1]), header
    return match[1]


# --- type ----------------------------------------------------------------------------------------


async def test_s4_type_is_webSocket_for_sockets(server, connect):
    client = await connect(server)
    reply = await client.action("contractWhoAmI")
    assert reply["type"] == "webSocket"
    assert (await client.details())["type"] == "webSocket"


def test_s4_type_is_web_for_http_requests(server):
    assert http_action(server, "contractWhoAmI").json()["type"] == "web"


# --- fingerprint ---------------------------------------------------------------------------------


async def test_s4_fingerprint_is_the_cookie_sent_with_the_upgrade(server, connect):
    client = await connect(server, headers={"Cookie": "sessionID=from-the-cookie"})
    assert (await client.details())["fingerprint"] == "from-the-cookie"
    assert (await client.action("contractWhoAmI"))["fingerprint"] == "from-the-cookie"


async def test_s4_fingerprint_else_the_sessionID_query(server, connect):
    client = await connect(server, query="?sessionID=from-the-query")
    assert (await client.details())["fingerprint"] == "from-the-query"


async def test_s4_fingerprint_cookie_wins_over_the_query(server, connect):
    client = await connect(
        server, query="?sessionID=from-the-query", headers={"Cookie": "sessionID=from-the-cookie"}
    )
    assert (await client.details())["fingerprint"] == "from-the-cookie"


async def test_s4_fingerprint_else_a_new_random_id_never_the_connection_id(server, connect):
    first, second = await connect(server), await connect(server)
    one, two = await first.details(), await second.details()
    assert FINGERPRINT.match(one["fingerprint"]) and FINGERPRINT.match(two["fingerprint"])
    assert one["fingerprint"] != two["fingerprint"]
    assert one["fingerprint"] != one["id"] and two["fingerprint"] != two["id"]


async def test_s4_fingerprint_of_128_allowed_characters_is_taken(server, connect):
    value = ("Az09_-" * 22)[:128]
    client = await connect(server, headers={"Cookie": f"sessionID={value}"})
    assert (await client.details())["fingerprint"] == value


INVALID = {
    "129 characters": "a" * 129,
    "a space": "a%20b",
    "a dot": "a.b",
    "non-ASCII": "%C3%A9t%C3%A9",
    "a quote": "a%22b",
    "empty": "",
}


@pytest.mark.parametrize("value", INVALID.values(), ids=INVALID.keys())
async def test_s4_invalid_query_fingerprint_is_ignored_as_if_absent(server, value):
    peer = await Peer.open(server, query=f"?sessionID={value}")
    try:
        await peer.send_json({"event": "detailsView", "messageId": 1})
        fingerprint = (await peer.reply(1))["data"]["fingerprint"]
        assert FINGERPRINT.match(fingerprint) and fingerprint != value
        headers = str(peer.response.headers).replace("sessionID=" + fingerprint, "")
        assert not value or value not in headers
    finally:
        await peer.close()


COOKIE_INVALID = {"129 characters": "a" * 129, "a dot": "a.b", "non-ASCII": "\u00e9t\u00e9"}


@pytest.mark.parametrize("value", COOKIE_INVALID.values(), ids=COOKIE_INVALID.keys())
async def test_s4_invalid_cookie_fingerprint_is_ignored_as_if_absent(server, connect, value):
    # as if absent: the query is taken next
    client = await connect(
        server, query="?sessionID=the-query", headers={"Cookie": f"sessionID={value}"}
    )
    assert (await client.details())["fingerprint"] == "the-query"


@pytest.mark.parametrize("value", COOKIE_INVALID.values(), ids=COOKIE_INVALID.keys())
def test_s4_invalid_cookie_is_never_echoed_into_a_header(server, value):
    response = http_request(server, "GET", "/api/status", headers={"Cookie": f"sessionID={value}"})
    fingerprint = set_cookie(response)
    assert fingerprint != value
    assert value not in str(response.headers)


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/status"),
        ("POST", "/api/randomNumber"),
        ("GET", "/api/noSuchAction"),
        ("GET", "/api/inputsTest"),
        ("GET", "/"),
        ("GET", "/public/index.html"),
        ("GET", "/public/no-such-file.html"),
        ("GET", "/public/javascript/actionheroClient.js"),
        ("HEAD", "/public/index.html"),
        ("OPTIONS", "/api/status"),
        ("GET", "/primus"),
    ],
)
def test_s4_every_http_response_without_the_cookie_sets_it(server, method, path):
    response = http_request(server, method, path)
    set_cookie(response)
    with_cookie = http_request(server, method, path, headers={"Cookie": "sessionID=known"})
    assert with_cookie.cookies() == []


def test_s4_a_body_refused_as_too_large_without_the_cookie_sets_it(server):
    # answered by the HTTP protocol itself, before any handler: the head was read all the same
    too_large = {"Content-Length": "10485761", "Content-Type": "application/json"}
    response = http_request(server, "POST", "/api/randomNumber", b"{}", too_large)
    assert response.status == 413
    set_cookie(response)
    with_cookie = {**too_large, "Cookie": "sessionID=known"}
    assert http_request(server, "POST", "/api/randomNumber", b"{}", with_cookie).cookies() == []


def test_s4_the_cookie_set_is_the_fingerprint_of_that_request(server):
    response = http_action(server, "contractWhoAmI")
    assert response.json()["fingerprint"] == set_cookie(response)


async def test_s4_the_upgrade_response_without_the_cookie_sets_the_sockets_fingerprint(server):
    # "every HTTP response": the 101 is one
    peer = await Peer.open(server)
    try:
        await peer.send_json({"event": "detailsView", "messageId": 1})
        fingerprint = (await peer.reply(1))["data"]["fingerprint"]
        assert set_cookie(peer.response) == fingerprint
    finally:
        await peer.close()


async def test_s4_a_refused_upgrade_without_the_cookie_sets_it(server):
    with pytest.raises(UpgradeRefused) as refused:
        await Peer.open(server, headers={"Sec-WebSocket-Version": "7"})
    set_cookie(refused.value.response)


async def test_s4_a_browsers_page_requests_and_socket_share_one_fingerprint(server, connect):
    fingerprint = set_cookie(http_request(server, "GET", "/"))
    client = await connect(server, headers={"Cookie": f"sessionID={fingerprint}"})
    assert (await client.details())["fingerprint"] == fingerprint


async def test_s4_the_fingerprint_is_shown_to_nobody_else(server, connect):
    secret = "the-fingerprint-nobody-else-sees"
    room = await new_room(server, presence=True, history={"size": 5, "ttl": 60000})
    owner = await connect(server, headers={"Cookie": f"sessionID={secret}"})
    other = await connect(server)
    await other.join(room)
    await owner.join(room)
    await owner.say(room, "hello")
    await other.next(lambda f: f.get("context") == "user")
    view = await other.request("roomView", room=room)
    history = await other.request("roomHistory", room=room)
    seen = json.dumps([other.inbox, view, history])
    assert secret not in seen
    assert (await owner.details())["fingerprint"] == secret


# --- session ---------------------------------------------------------------------------------


async def test_s4_session_is_one_dict_per_fingerprint_shared_by_http_and_sockets(server, connect):
    fingerprint = "contract-session-shared"
    set_over_http = http_action(server, "contractSession", fingerprint, set={"http": 1}).json()
    assert set_over_http["session"] == {"http": 1}
    first = await connect(server, headers={"Cookie": f"sessionID={fingerprint}"})
    second = await connect(server, query=f"?sessionID={fingerprint}")
    assert (await first.action("contractSession", set={"socket": 2}))["session"] == {
        "http": 1,
        "socket": 2,
    }
    assert (await second.action("contractSession"))["session"] == {"http": 1, "socket": 2}
    assert http_action(server, "contractSession", fingerprint).json()["session"] == {
        "http": 1,
        "socket": 2,
    }
    other = await connect(server)
    assert (await other.action("contractSession"))["session"] == {}


async def test_s4_session_is_kept_across_reconnects(server, connect):
    fingerprint = "contract-session-reconnect"
    first = await connect(server, query=f"?sessionID={fingerprint}")
    await first.action("contractSession", set={"kept": True})
    await first.close()
    again = await connect(server, query=f"?sessionID={fingerprint}")
    assert (await again.action("contractSession"))["session"] == {"kept": True}


async def test_s4_session_is_kept_sessionTtl_after_its_last_use_then_dropped(brisk):
    # brisk: sessionTtl 1000 ms. Used every 0.6 s it lives past its ttl; left alone, it goes.
    used, idle = "contract-ttl-used", "contract-ttl-idle"
    for fingerprint in (used, idle):
        http_action(brisk, "contractSession", fingerprint, set={"v": fingerprint})
    for _ in range(3):
        await asyncio.sleep(0.6)  # the behaviour under test is time passing
        assert http_action(brisk, "contractSession", used).json()["session"] == {"v": used}
    assert http_action(brisk, "contractSession", idle).json()["session"] == {}


@pytest.mark.server_errors("is not JSON")
async def test_s4_session_values_must_be_json(server, connect):
    client = await connect(server)
    await client.action("contractSession", set={"before": 1})
    reply = await client.action("contractSessionNotJson")
    assert reply == action_reply({"error": NON_EMPTY_STR}, 2, 2)
    assert (await client.action("contractSession"))["session"] == {"before": 1}


# --- connection.send -------------------------------------------------------------------------


async def test_s4_connection_send_pushes_a_frame_to_that_connection_only(server, connect):
    client, other = await connect(server), await connect(server)
    frame = {"context": "alert", "text": "only you"}
    assert (await client.action("pushTest", frames=[frame]))["pushed"] == 1
    assert await client.next(lambda f: not is_reply(f)) == frame
    await other.request("ping")
    assert other.inbox == []


async def test_s4_connection_send_from_middleware(server, connect):
    room = await new_room(server, "cmw-greet")
    client = await connect(server)
    await client.join(room)
    assert await client.next(lambda f: f.get("context") == "alert") == {
        "context": "alert",
        "greeting": room,
    }


# --- simultaneousActions ---------------------------------------------------------------------


async def test_s4_pendingActions_counts_actions_in_flight(server, connect):
    client = await connect(server)
    for message_id in (1, 2):
        await client.send(action_frame(message_id, "sleepTest", sleepDuration=1000))
    # an action is counted once it starts: a verb read in the same batch may see it not yet
    details = await eventually(client.details, lambda d: d["pendingActions"] == 2)
    assert details["totalActions"] == 2
    await client.reply(1)
    await client.reply(2)
    details = await client.details()
    assert (details["pendingActions"], details["totalActions"]) == (0, 2)
