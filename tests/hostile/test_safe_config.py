"""Config that fails closed, over a real server: the default origin
is the page's own host, one address cannot hold every socket, and plain-def actions that
outlive their timeout are counted in ``status`` with a warning when they fill the pool."""

from __future__ import annotations

import asyncio
import json

import pytest
from testkit import Peer, UpgradeRefused, eventually

from .support import assert_still_serving, http, running_server, settled

PER_ADDRESS = 3
TIMED_OUT = "the action timed out after 300 ms"
SATURATED = (
    r"WARNING squall\.actions: all 2 action threads are busy \(2 of them still running past "
    r"general\.actionTimeout\)"
)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A cap per address, a pool of two action threads and a short action timeout."""
    options = {
        "general": {"actionThreads": 2, "actionTimeout": 300},
        "servers": {"websocket": {"server": {"maxConnectionsPerAddress": PER_ADDRESS}}},
    }
    with running_server(tmp_path_factory, "guarded", options) as server:
        yield server


@pytest.fixture(scope="module")
def open_to_all(tmp_path_factory):
    options = {"servers": {"websocket": {"server": {"origins": "*"}}}}
    with running_server(tmp_path_factory, "open", options) as server:
        yield server


# --- origins --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "http://127.0.0.1:1", "null", "http://localhost.evil.example"]
)
async def test_default_origin_check_refuses_other_sites(main, origin):
    with pytest.raises(UpgradeRefused) as refused:
        await Peer.open(main, headers={"Origin": origin})

    assert refused.value.response.status == 403
    await assert_still_serving(main)


async def test_default_origin_check_admits_the_pages_own_host(main):
    peer = await Peer.open(main, headers={"Origin": f"http://127.0.0.1:{main.port}"})
    assert (await peer.request("ping"))["status"] == "OK"


async def test_star_admits_any_origin_where_it_is_written(open_to_all):
    peer = await Peer.open(open_to_all, headers={"Origin": "http://evil.example"})
    assert (await peer.request("ping"))["status"] == "OK"


# --- sockets per address --------------------------------------------------------------------------


async def test_upgrade_past_maxConnectionsPerAddress_is_503_until_one_leaves(guarded):
    await settled(guarded, 0)
    peers = [await Peer.open(guarded) for _ in range(PER_ADDRESS)]

    with pytest.raises(UpgradeRefused) as refused:
        await Peer.open(guarded)
    assert refused.value.response.status == 503
    assert json.loads(refused.value.response.body) == {
        "error": "too many connections from your address"
    }
    assert (await http(guarded, "GET", "/api/status")).status == 200  # HTTP is not capped

    await peers[0].close()
    await settled(guarded, PER_ADDRESS - 1)
    again = await Peer.open(guarded)
    assert (await again.request("ping"))["status"] == "OK"


async def test_burst_of_upgrades_from_one_address_admits_no_more_than_the_cap(guarded):
    await settled(guarded, 0)

    outcomes = await asyncio.gather(
        *(Peer.open(guarded) for _ in range(12)), return_exceptions=True
    )

    admitted = [o for o in outcomes if isinstance(o, Peer)]
    refused = [o for o in outcomes if isinstance(o, UpgradeRefused)]
    assert (len(admitted), len(refused)) == (PER_ADDRESS, 12 - PER_ADDRESS)
    assert {r.response.status for r in refused} == {503}
    for peer in admitted:
        await peer.close()
    await settled(guarded, 0)
    assert len([await Peer.open(guarded) for _ in range(PER_ADDRESS)]) == PER_ADDRESS


# --- threads of plain-def actions -----------------------------------------------------------------


@pytest.mark.server_errors(
    "action hostileHangThread timed out", "action hostileQuickThread timed out"
)
async def test_threads_past_their_timeout_are_counted_and_a_full_pool_warns_once(guarded):
    log_start = guarded.log_size()
    hung = await asyncio.gather(*(http(guarded, "GET", "/api/hostileHangThread") for _ in range(2)))
    assert [(r.status, r.json()["error"]) for r in hung] == [(500, TIMED_OUT)] * 2
    threads = (await guarded.status())["actionThreads"]
    assert threads == {"size": 2, "busy": 2, "waiting": 0, "timedOut": 2}

    # both threads still run their hung calls: quick plain-def calls wait, and time out
    waiting = await asyncio.gather(
        *(http(guarded, "GET", "/api/hostileQuickThread") for _ in range(3))
    )
    assert [r.json()["error"] for r in waiting] == [TIMED_OUT] * 3
    await guarded.wait_log(SATURATED, log_start)

    # the hung calls return (hostileHangThread sleeps 3 s), and the pool serves again
    await eventually(
        guarded.status,
        lambda reply: reply["actionThreads"] == {"size": 2, "busy": 0, "waiting": 0, "timedOut": 0},
        timeout=10,
    )
    quick = await http(guarded, "GET", "/api/hostileQuickThread")
    assert (quick.status, quick.json()["quick"]) == (200, True)
    assert len(guarded.log_text(log_start).split("action threads are busy")) == 2  # one warning
