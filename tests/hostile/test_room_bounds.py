"""Rooms with bounds and sockets that cannot pin memory, over a real
server: room names are checked everywhere a name is taken, the number of rooms is bounded,
rooms clients create are destroyed once left empty, and one socket cannot have more than
``general.simultaneousRequests`` verbs in flight (PROTOCOL.md §3, §5)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from testkit import OP_TEXT, Peer, eventually, frame_bytes, is_reply

from .support import assert_still_serving, http, running_server

INVALID = "invalid room name"
TOO_MANY_PENDING = "you have too many pending requests"
TTL_MS = 400
MAX_ROOMS = 8  # the four rooms of the tier's BASE_OPTIONS, GATE and three more
PENDING = 50  # general.simultaneousRequests of the bounded server
GATE = "hostile-gate-bounded"  # a configured room whose joins wait for hostileOpenGate


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    options = {
        "general": {
            "maxRooms": MAX_ROOMS,
            "emptyRoomTtl": TTL_MS,
            "simultaneousRequests": PENDING,
            "startingChatRooms": {GATE: {}},
        }
    }
    with running_server(tmp_path_factory, "bounded", options) as server:
        yield server


async def rooms_count(server) -> int:
    return (await server.status())["broker"]["rooms"]


async def create_room(server, name: str):
    return await http(
        server,
        "POST",
        "/api/createChatRoom",
        json.dumps({"name": name}),
        {"Content-Type": "application/json"},
    )


# --- names ----------------------------------------------------------------------------------------

BAD_NAMES = ["", "nul\x00inside", "new\nline", "carriage\rreturn", "esc\x1b[2J", "x" * 129]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_invalid_room_name_is_refused_by_every_verb(main, name):
    peer = await Peer.open(main)
    for verb in ("roomAdd", "roomLeave", "roomView"):
        reply = await peer.request(verb, room=name)
        assert (reply["status"], reply["error"]) == (INVALID, INVALID), (verb, reply)
    said = await peer.request("say", room=name, message="hi")
    assert said["error"] == INVALID
    created = await create_room(main, name)
    expected = INVALID if name else "name is a required parameter for this action"
    assert (created.status, created.json()["error"]) == (422, expected)
    assert (await peer.request("detailsView"))["data"]["rooms"] == []


async def test_say_without_a_room_still_needs_room_and_message(main):
    peer = await Peer.open(main)
    assert (await peer.request("say", message="hi"))[
        "error"
    ] == "both room and message are required"


async def test_room_name_of_128_characters_is_a_name(main):
    name = "é" * 128
    created = await create_room(main, name)
    assert (created.status, created.json()["didCreate"]) == (200, True)
    peer = await Peer.open(main)
    assert (await peer.request("roomAdd", room=name))["status"] == "OK"
    assert (await peer.request("roomView", room=name))["data"]["room"] == name


async def test_megabyte_room_names_neither_create_rooms_nor_grow_the_server(bounded):
    """Anonymous createChatRoom POSTs with 1 MB names: a cheap attack on memory."""
    before_rooms = await rooms_count(bounded)
    await create_room(bounded, "w" * 1_000_000)  # warm-up: buffers sized once are not counted
    rss_before = bounded.rss()
    for index in range(40):
        response = await create_room(bounded, f"{index}" + "x" * 1_000_000)
        assert (response.status, response.json()["error"]) == (422, INVALID)
        assert "name" not in response.json()  # the reply carries no room name
    assert await rooms_count(bounded) == before_rooms
    assert bounded.rss() - rss_before < 20 * 2**20


# --- maxRooms -------------------------------------------------------------------------------------


async def test_rooms_past_maxRooms_are_refused(bounded):
    base = await rooms_count(bounded)
    made = [f"max-{n}" for n in range(MAX_ROOMS - base)]
    for name in made:
        assert (await create_room(bounded, name)).json()["didCreate"] is True

    refused = await create_room(bounded, "one-too-many")
    again = await create_room(bounded, made[0])

    assert (refused.status, refused.json()["error"]) == (500, "too many rooms")
    assert (again.status, again.json()["didCreate"]) == (200, False)
    # the rooms nobody joins go after emptyRoomTtl, and there is room again
    await eventually(lambda: rooms_count(bounded), lambda count: count == base, TTL_MS / 1000 + 5)
    assert (await create_room(bounded, "one-too-many")).json()["didCreate"] is True


# --- emptyRoomTtl ---------------------------------------------------------------------------------


async def test_room_created_by_a_client_is_destroyed_once_left_empty(bounded):
    peer = await Peer.open(bounded)
    assert (await create_room(bounded, "passing")).json()["didCreate"] is True
    assert (await peer.request("roomAdd", room="passing"))["status"] == "OK"

    await asyncio.sleep(2 * TTL_MS / 1000)  # time is the behaviour: a member keeps it alive
    assert (await peer.request("roomView", room="passing"))["data"]["membersCount"] == 1
    assert (await peer.request("roomLeave", room="passing"))["status"] == "OK"
    left = time.monotonic()

    await eventually(
        lambda: peer.request("roomView", room="passing"),  # a look that does not join
        lambda reply: reply.get("error") == "room does not exist",
    )
    assert time.monotonic() - left >= TTL_MS / 1000
    assert (await peer.request("roomAdd", room="passing"))["error"] == "room does not exist"


async def test_configured_rooms_are_never_destroyed_for_being_empty(bounded):
    peer = await Peer.open(bounded)
    await asyncio.sleep(3 * TTL_MS / 1000)  # time is the behaviour: several TTLs, nobody in
    for room in ("defaultRoom", "flood"):
        assert (await peer.request("roomAdd", room=room))["status"] == "OK"


# --- what one socket may have in flight -----------------------------------------------------------


async def flood(peer: Peer, frames: list[bytes], held: int = 0, batch: int = 2000) -> None:
    """Send ``frames`` in batches, each as fast as TCP takes it; the next batch goes once every
    frame of the last one but ``held`` is answered, so the test's own slow reading cannot get
    it dropped as a reader that stopped (1008)."""
    for sent in range(batch, len(frames) + batch, batch):
        await peer.send_raw(b"".join(frames[sent - batch : sent]))
        await received(peer, min(sent, len(frames)) - held)


async def received(peer: Peer, total: int) -> None:
    """Wait until ``total`` frames have arrived; fail at once if the server closed the socket."""
    got = await eventually(
        lambda: -1 if peer.closed else len(peer.inbox), lambda n: n < 0 or n >= total
    )
    assert got >= total, (peer.close_code, peer.close_reason)


def text_frames(count: int, make) -> list[bytes]:
    return [frame_bytes(OP_TEXT, json.dumps(make(n)).encode()) for n in range(1, count + 1)]


async def test_verbs_held_past_the_bound_are_refused_at_once(bounded):
    """20 000 roomAdd frames whose join hook waits: PENDING of them wait, every other one is
    refused at once (before, each one was a task holding its frame, and none was answered)."""
    room = GATE
    peer = await Peer.open(bounded)
    rss_before = bounded.rss()
    count = 20_000

    await flood(
        peer,
        text_frames(count, lambda n: {"event": "roomAdd", "room": room, "messageId": f"flood-{n}"}),
        held=PENDING,
    )

    refused = [f for f in peer.inbox if is_reply(f)]
    assert {r["error"] for r in refused} == {TOO_MANY_PENDING}
    assert len(refused) == count - PENDING
    assert bounded.rss() - rss_before < 30 * 2**20
    # a verb answered at once still is, and other sockets are served
    assert (await peer.request("ping"))["status"] == "OK"
    other = await Peer.open(bounded)
    assert (await other.request("roomView", room=room))[
        "error"
    ] == f"connection not in this room ({room})"

    opened = await http(bounded, "GET", f"/api/hostileOpenGate?room={room}")
    assert opened.status == 200
    held = await eventually(
        lambda: [f for f in peer.inbox if is_reply(f) and f.get("error") != TOO_MANY_PENDING],
        lambda replies: len(replies) == PENDING,
    )
    assert sorted(r.get("error", "OK") for r in held) == ["OK"] + [
        f"connection already in this room ({room})"
    ] * (PENDING - 1)
    # the bound is free again
    assert (await peer.request("roomView", room=room))["data"]["membersCount"] == 1


async def test_a_hundred_thousand_room_views_on_one_socket_are_answered_in_bounded_memory(main):
    peer = await Peer.open(main)
    assert (await peer.request("roomAdd", room="defaultRoom"))["status"] == "OK"
    rss_before = main.rss()
    count = 100_000
    frames = text_frames(
        count, lambda n: {"event": "roomView", "room": "defaultRoom", "messageId": f"flood-{n}"}
    )

    await flood(peer, frames)

    assert len(peer.inbox) == count and all(is_reply(f) for f in peer.inbox)
    ok = [f for f in peer.inbox if f.get("status") == "OK"]
    assert all(f["data"]["room"] == "defaultRoom" for f in ok)
    assert {f["error"] for f in peer.inbox if "error" in f} <= {TOO_MANY_PENDING}
    assert main.rss() - rss_before < 40 * 2**20
    await assert_still_serving(main)
