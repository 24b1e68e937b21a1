"""Limits: maxMessageSize, the outbound buffer bound, simultaneousActions,
the per-connection rate limit, the connection cap and the action timeout; each refuses with the
exact error or close code, and the server keeps serving everyone else."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from testkit import (
    OP_CONT,
    OP_PING,
    OP_TEXT,
    Peer,
    UpgradeRefused,
    action_frame,
    eventually,
    failed,
    frame_bytes,
    is_reply,
)

from .support import assert_still_serving, http, running_server, settled

LIMIT = 1048576  # maxMessageSize of the main server (the default)
BUFFER = 1048576  # maxBufferedBytes of the main server
CAP = 3
RATE = 5  # rateLimit and rateBurst of the capped server
TOO_MANY_MESSAGES = "too many messages; slow down"
TOO_MANY_PENDING = "you have too many pending requests"
DROPPED = r"WARNING squall\.websocket: closing \S+: it stopped reading and \d+ bytes wait for it"


@pytest.fixture(scope="module")
def capped(tmp_path_factory):
    """A connection cap of three and a rate limit of five frames a second, burst five."""
    options = {
        "servers": {
            "websocket": {"server": {"maxConnections": CAP, "rateLimit": RATE, "rateBurst": RATE}}
        }
    }
    with running_server(tmp_path_factory, "capped", options) as server:
        yield server


def ping_padded_to(size: int) -> bytes:
    """A ping frame's text of exactly ``size`` bytes."""
    empty = json.dumps({"event": "ping", "messageId": 1, "pad": ""}).encode()
    return json.dumps({"event": "ping", "messageId": 1, "pad": "p" * (size - len(empty))}).encode()


# --- maxMessageSize -----------------------------------------------------------------------------


async def test_message_of_exactly_maxMessageSize_is_answered(main):
    peer = await Peer.open(main)
    payload = ping_padded_to(LIMIT)
    assert len(payload) == LIMIT
    await peer.send_frame(OP_TEXT, payload)
    assert (await peer.reply(1))["status"] == "OK"
    await assert_still_serving(main)


async def test_message_one_byte_over_maxMessageSize_closes_1009(main):
    peer = await Peer.open(main)
    await peer.send_frame(OP_TEXT, ping_padded_to(LIMIT + 1))
    code, reason = await peer.wait_closed()
    assert code == 1009, (code, reason)
    await assert_still_serving(main)


# --- the outbound buffer ------------------------------------------------------------------------


async def test_client_that_stops_reading_is_closed_1008_and_memory_stays_bounded(main):
    """One member of a room stops reading while 38 MiB are said in the room: the server closes
    it (1008) once maxBufferedBytes wait for it, its RSS grows by far less than what was sent,
    and the member that reads gets every message, in order."""
    count, pad = 600, "x" * (64 * 1024)
    stalled = await Peer.open(main, rcvbuf=4096)
    talker = await Peer.open(main)
    for peer in (stalled, talker):
        assert (await peer.request("roomAdd", room="flood"))["status"] == "OK"

    async def say(index: int) -> None:
        """Say one message and wait for the talker's own copy: the talker reads as it talks."""
        message_id = talker.new_id()
        await talker.send_json(
            {
                "event": "say",
                "messageId": message_id,
                "room": "flood",
                "message": {"index": index, "pad": pad},
            }
        )
        copy = await talker.next(lambda f: f.get("context") == "user")
        assert copy["message"]["index"] == index
        assert (await talker.reply(message_id))["status"] == "OK"

    # warm-up: two messages both read, so allocations made once are not counted
    for index in range(2):
        await say(index)
        assert (await stalled.next(lambda f: f.get("context") == "user"))["message"][
            "index"
        ] == index
    rss_before = main.rss()
    log_start = main.log_size()

    stalled.pause_reading()
    for index in range(count):
        await say(index)
        if index % 10 == 0 and main.logged(DROPPED, log_start):
            # dropped: read again at once, for the close frame waits only CLOSE_GRACE (5 s)
            stalled.resume_reading()
    rss_after = main.rss()

    await main.wait_log(DROPPED, log_start)
    stalled.resume_reading()
    code, reason = await stalled.wait_closed()
    assert (code, reason) == (1008, "outbound buffer full: the client is not reading")
    sent = count * len(pad)
    # what waits for the stalled client is bounded by maxBufferedBytes, not by what was said
    assert rss_after - rss_before < 8 * BUFFER, (rss_before, rss_after, sent)
    assert (await talker.request("roomView", room="flood"))["data"]["membersCount"] == 1
    await assert_still_serving(main)


async def test_peer_that_pings_and_never_reads_is_closed_1008_and_memory_stays_bounded(main):
    """Pongs are written to the socket like any frame, so they count in maxBufferedBytes: a
    peer that floods pings without reading gets 1008, not a server that grows without end."""
    peer = await Peer.open(main, rcvbuf=4096)
    peer.pause_reading()
    rss_before = main.rss()
    log_start = main.log_size()
    batch = frame_bytes(OP_PING, b"p" * 125) * 1000  # 131 kB of pings, 125 kB of pongs
    for _ in range(400):  # at most 50 MB of pongs: far past any buffer the kernel holds
        await peer.send_raw(batch)
        if main.logged(DROPPED, log_start):
            break
    rss_after = main.rss()
    await main.wait_log(DROPPED, log_start)
    peer.resume_reading()
    code, reason = await peer.wait_closed()
    assert (code, reason) == (1008, "outbound buffer full: the client is not reading")
    assert rss_after - rss_before < 8 * BUFFER, (rss_before, rss_after)
    await assert_still_serving(main)


# --- fragmented messages ------------------------------------------------------------------------


FRAGMENTED = {
    # a legal 1 MB message in 1-byte fragments once grew the server by 54 MB
    "a million 1-byte fragments": (
        b'{"event": "ping", "messageId": 1, "pad": "',
        b"p",
        1_000_000,
        b'"}',
        12 * 1024 * 1024,
    ),
    # empty fragments add nothing to the message (4 million once grew the server by 31 MB)
    "two million empty fragments": (
        b'{"event": "ping", "messageId": 1}',
        b"",
        2_000_000,
        b"",
        6 * 1024 * 1024,
    ),
}


@pytest.mark.parametrize(
    "head, fragment, count, tail, bound", FRAGMENTED.values(), ids=FRAGMENTED.keys()
)
async def test_reassembling_a_fragmented_message_costs_about_its_size(
    main, head, fragment, count, tail, bound
):
    """Reassembly must cost about the message's size, not one object per fragment: the growth
    is measured once the server has read every fragment but the last (a ping sent after them
    is answered only then)."""
    peer = await Peer.open(main)
    frames = frame_bytes(OP_TEXT, head, fin=False)
    frames += frame_bytes(OP_CONT, fragment, fin=False) * count
    rss_before = main.rss()
    await peer.send_raw(frames)
    await peer.send_frame(OP_PING, b"after")
    await eventually(lambda: list(peer.pongs), lambda pongs: b"after" in pongs, timeout=60)
    growth = main.rss() - rss_before
    await peer.send_frame(OP_CONT, tail)
    assert (await peer.reply(1, timeout=30))["status"] == "OK"
    assert growth < bound, growth
    await assert_still_serving(main)


# --- simultaneousActions ------------------------------------------------------------------------


async def test_sixth_action_in_flight_is_refused_at_once_and_the_five_finish(main):
    peer = await Peer.open(main)
    for n in range(1, 7):
        await peer.send_json(action_frame(n, "sleepTest", sleepDuration=600))
    first = await peer.next(is_reply)
    assert first == {
        "error": TOO_MANY_PENDING,
        "context": "response",
        "messageId": 6,
        "messageCount": 6,
    }
    finished = [await peer.reply(n) for n in range(1, 6)]
    assert all("error" not in reply for reply in finished), finished
    assert "error" not in await peer.action("sleepTest", sleepDuration=0)  # room again
    await assert_still_serving(main)


async def test_a_hundred_actions_at_once_get_a_hundred_replies(main):
    peer = await Peer.open(main)
    burst = [action_frame(n, "sleepTest", sleepDuration=300) for n in range(100)]
    for frame in burst:
        await peer.send_json(frame)
    replies = {(r := await peer.next(is_reply))["messageId"]: r for _ in range(100)}
    assert sorted(replies) == list(range(100))
    refused = [n for n, r in replies.items() if r.get("error") == TOO_MANY_PENDING]
    assert len(refused) == 95 and all("error" not in replies[n] for n in range(5))
    details = (await peer.request("detailsView"))["data"]
    assert (details["totalActions"], details["pendingActions"]) == (100, 0)
    await assert_still_serving(main)


# --- rateLimit ---------------------------------------------------------------------------------


async def test_frame_past_the_burst_is_rate_limited_then_allowed_again(capped):
    peer = await Peer.open(capped)
    for n in range(1, RATE + 2):
        await peer.send_json({"event": "ping", "messageId": n})
    replies = [await peer.reply(n) for n in range(1, RATE + 2)]
    assert [r["status"] for r in replies[:RATE]] == ["OK"] * RATE
    assert replies[RATE] == failed(TOO_MANY_MESSAGES, RATE + 1, RATE + 1)
    # A token comes back every 1/RATE s: time is the behaviour here, so wait on it (bounded).
    deadline = time.monotonic() + 2
    while True:
        reply = await peer.request("ping")
        if reply["status"] == "OK":
            break
        assert reply["error"] == TOO_MANY_MESSAGES
        assert time.monotonic() < deadline, "no token came back within 2 s"
        await asyncio.sleep(0.05)
    # others were never limited by this connection's flood
    other = await Peer.open(capped)
    assert (await other.request("ping"))["status"] == "OK"
    await other.close()
    await peer.close()
    await assert_still_serving(capped)


async def test_frames_that_are_not_verbs_count_against_the_rate_limit(capped):
    """rateLimit is "inbound frames per second per connection": frames that are not JSON or
    name no verb cost the server a parse and a reply too, so they spend tokens like any."""
    peer = await Peer.open(capped)
    await peer.send_text("not json")
    await peer.send_text("[1, 2]")
    await peer.send_json({"event": "nope", "messageId": "a"})
    await peer.send_json({"event": "nope", "messageId": "b"})
    await peer.send_json({"event": "nope", "messageId": "c"})
    await peer.send_json({"event": "ping", "messageId": "d"})
    assert await peer.reply("d") == failed(TOO_MANY_MESSAGES, "d", RATE + 1)
    await peer.close()
    await assert_still_serving(capped)


# --- maxConnections -----------------------------------------------------------------------------


async def test_upgrade_past_maxConnections_is_503_until_one_leaves(capped):
    await settled(capped, 0)
    peers = [await Peer.open(capped) for _ in range(CAP)]
    with pytest.raises(UpgradeRefused) as refused:
        await Peer.open(capped)
    response = refused.value.response
    assert response is not None
    assert (response.status, response.json()) == (
        503,
        {"error": "the server has too many connections"},
    )
    assert (await http(capped, "GET", "/api/randomNumber")).status == 200  # HTTP is not capped
    await peers.pop().close()
    await settled(capped, CAP - 1)
    peers.append(await Peer.open(capped))
    for peer in peers:
        await peer.close()
    await settled(capped, 0)
    await assert_still_serving(capped)


async def test_burst_of_upgrades_admits_no_more_than_maxConnections(capped):
    """Twenty upgrades arriving at once, none open before: exactly three are admitted."""
    await settled(capped, 0)
    outcomes = await asyncio.gather(
        *(Peer.open(capped, welcome=False) for _ in range(20)), return_exceptions=True
    )
    admitted = [o for o in outcomes if isinstance(o, Peer)]
    statuses = sorted(o.response.status for o in outcomes if isinstance(o, UpgradeRefused))
    others = [o for o in outcomes if not isinstance(o, (Peer, UpgradeRefused))]
    live = (await capped.status())["connections"].get("webSocket", 0)
    for peer in admitted:
        await peer.close()
    assert not others, others
    assert (len(admitted), statuses, live) == (CAP, [503] * (20 - CAP), CAP)
    await settled(capped, 0)
    await assert_still_serving(capped)


# --- actionTimeout ------------------------------------------------------------------------------


@pytest.mark.server_errors("action hostileHang timed out after 1500 ms")
async def test_action_past_actionTimeout_gets_an_error_and_the_log_names_it(main):
    peer = await Peer.open(main)
    log_start = main.log_size()
    started = time.monotonic()
    reply = await peer.action("hostileHang")
    took = time.monotonic() - started
    assert reply == {
        "error": "the action timed out after 1500 ms",
        "context": "response",
        "messageId": 1,
        "messageCount": 1,
    }
    assert 1.4 <= took <= 3.5, took
    await main.wait_log(
        r"ERROR squall\.actions: action hostileHang timed out after 1500 ms", log_start
    )
    details = (await peer.request("detailsView"))["data"]
    assert details["pendingActions"] == 0
    await assert_still_serving(main)


@pytest.mark.server_errors("action hostileHang timed out", "action hostileHangThread timed out")
@pytest.mark.parametrize("name", ["hostileHang", "hostileHangThread"])
async def test_action_past_actionTimeout_over_http_is_500(main, name):
    response = await http(main, "GET", f"/api/{name}")
    assert (response.status, response.json()["error"]) == (
        500,
        "the action timed out after 1500 ms",
    )
    await assert_still_serving(main)
