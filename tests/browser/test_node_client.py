"""The same client file under Node (>= 20), where there is no page: ``module.exports``, an
injected WebSocket constructor, and a process that exits once the client disconnects."""

from __future__ import annotations

import json
import subprocess

import pytest
from testkit import BOOT_TIMEOUT, ROOT, node_command

from .support import HERE, WELCOME


@pytest.mark.parametrize("script", ["actionheroClient.js", "actionheroClient.min.js"])
def test_client_under_node(server, script):
    client = ROOT / "public" / "javascript" / script
    command = [
        *node_command(),
        str(HERE / "node_client.js"),
        str(client),
        server.base_url,
        "otherRoom",
    ]

    run = subprocess.run(command, capture_output=True, text=True, timeout=BOOT_TIMEOUT)

    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["withoutWebSocket"] == "no global WebSocket here: pass one as options.WebSocket"
    assert out["overHttp"]["via"] == "http"
    assert out["details"]["data"]["type"] == "webSocket"
    assert out["welcomeMessage"] == WELCOME
    assert out["roomAdd"]["data"] is True
    assert out["sayReply"]["status"] == "OK"
    assert out["say"]["message"] == "from node"
    assert out["say"]["from"] == out["details"]["data"]["id"]
    assert out["overSocket"]["via"] == "socket"
    assert "messageId" in out["overSocket"]
    assert out["state"] == "disconnected"


# ----- recovery, presence and history against a scripted peer (fake_peer.js) -----------------


def run_scenario(script: str, scenario: str) -> dict:
    """Run one scenario of fake_peer.js on the rendered `script`; what it printed."""
    client = ROOT / "public" / "javascript" / script
    command = [*node_command(), str(HERE / "fake_peer.js"), str(client), scenario]
    run = subprocess.run(command, capture_output=True, text=True, timeout=BOOT_TIMEOUT)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def said(offset: int, epoch: str, message: str) -> dict:
    """A say frame of fake_peer.js's room, as its `say` helper makes them."""
    return {"context": "user", "message": message, "room": "lobby", "from": "peer",
            "sentAt": 1000 + offset, "offset": offset, "epoch": epoch}  # fmt: skip


def rejoin(message_id: int, offset: int | None = None, epoch: str | None = None) -> dict:
    frame = {"event": "roomAdd", "room": "lobby", "messageId": message_id}
    if offset is not None:
        frame["since"] = {"offset": offset, "epoch": epoch}
    return frame


def after_reconnect(events: list) -> list:
    """The events from the first `reconnect` on, that one left out."""
    names = [name for name, _ in events]
    return events[names.index("reconnect") + 1 :]


SCRIPTS = ["actionheroClient.js", "actionheroClient.min.js"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_recovered_messages_come_in_order_once_before_live_ones(server, script):
    out = run_scenario(script, "recovery")

    # messages 1 and 2 seen; the re-join asks for what came after 2
    assert out["rejoin"] == rejoin(4, 2, "e1")
    assert out["events"][:3] == [
        ["connected", None],
        ["say", said(1, "e1", "one")],
        ["say", said(2, "e1", "two")],
    ]
    # 4 and 5 went live before the reply: held; the reply's 3 and 4 first, sorted, then 5 once
    assert after_reconnect(out["events"]) == [
        ["say", said(3, "e1", "three")],
        ["say", said(4, "e1", "four")],
        ["recover", {"room": "lobby", "recovered": True, "count": 2}],
        ["say", said(5, "e1", "five")],
        ["say", said(6, "e1", "six")],
        ["disconnected", None],  # the scenario drops the link again
        ["disconnected", None],  # and disconnects while the third re-join waits
    ]
    assert out["rooms"] == ["lobby"]
    assert out["nextRejoin"] == rejoin(6, 6, "e1")


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_new_epoch_is_recovered_false_and_numbers_from_there(server, script):
    out = run_scenario(script, "newEpoch")

    assert out["rejoin"] == rejoin(4, 7, "e1")
    assert after_reconnect(out["events"])[:3] == [
        ["say", said(1, "e2", "new")],
        ["recover", {"room": "lobby", "recovered": False, "count": 1}],
        ["say", said(2, "e2", "newer")],  # the second copy of 1 was not emitted
    ]
    assert out["nextRejoin"] == rejoin(6, 2, "e2")


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize(
    ("scenario", "recovered", "next_rejoin"),
    [
        ("nothingMissed", True, rejoin(6, 3, "e1")),  # the position stays
        ("historyGone", False, rejoin(6)),  # the room keeps no history any more: no since
    ],
)
def test_an_empty_recovery(server, script, scenario, recovered, next_rejoin):
    out = run_scenario(script, scenario)

    assert out["rejoin"] == rejoin(4, 3, "e1")
    assert after_reconnect(out["events"])[0] == [
        "recover",
        {"room": "lobby", "recovered": recovered, "count": 0},
    ]
    assert out["nextRejoin"] == next_rejoin


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_room_without_a_message_seen_rejoins_without_since(server, script):
    out = run_scenario(script, "noPosition")

    assert out["rejoin"] == rejoin(4)
    assert after_reconnect(out["events"]) == [
        ["say", said(1, "e1", "first")],
        ["disconnected", None],
    ]


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_refused_rejoin_is_told_and_retried_with_since(server, script):
    out = run_scenario(script, "failedRejoin")

    assert out["rejoin"] == rejoin(4, 2, "e1")
    assert out["retry"] == rejoin(5, 2, "e1")
    assert after_reconnect(out["events"]) == [
        ["error", "could not re-join room lobby: room does not exist"],
        ["say", said(3, "e1", "three")],
        ["recover", {"room": "lobby", "recovered": True, "count": 1}],
        ["disconnected", None],
    ]
    assert out["rooms"] == ["lobby"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_leaving_a_room_forgets_where_it_was(server, script):
    out = run_scenario(script, "leaveForgets")

    assert out["rejoin"] == rejoin(6)


@pytest.mark.parametrize("script", SCRIPTS)
def test_room_history_frames_and_the_position_it_gives(server, script):
    out = run_scenario(script, "history")

    assert out["limited"] == {"event": "roomHistory", "room": "lobby", "limit": 5, "messageId": 3}
    assert out["unlimited"] == {"event": "roomHistory", "room": "lobby", "messageId": 4}
    kept = {"room": "lobby", "epoch": "e1", "offset": 9, "messages": [said(9, "e1", "nine")]}
    assert out["replies"] == [
        {"status": "OK", "context": "response", "data": kept, "messageId": 3},
        {"status": "OK", "context": "response", "data": kept, "messageId": 4},
    ]
    assert [name for name, _ in out["events"]] == ["connected", "disconnected", "disconnected"]
    assert out["rejoin"] == rejoin(6, 9, "e1")


@pytest.mark.parametrize("script", SCRIPTS)
def test_presence_frames_fire_join_and_leave(server, script):
    out = run_scenario(script, "presence")

    join, leave, other = out["frames"]
    assert out["events"] == [
        ["connected", None],
        ["join", join],
        ["leave", leave],
        ["api", other],
        ["disconnected", None],
    ]
