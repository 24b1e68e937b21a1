"""What only the integration tier needs: the options of its servers (the test actions and
middleware of tests/integration/actions, its own public/ folder with known contents, a
distinctive welcome, the rooms the tests use) and what its test middleware records.

Everything else (the server process, clients, HTTP, matchers) is tests/testkit.py's.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import testkit
from testkit import Client, Peer, Server, eventually

HERE = Path(__file__).resolve().parent
PUBLIC = HERE / "public"

WELCOME = "Welcome to the integration suite"
SERVER_NAME = "squall-integration"
API_VERSION = "2.5.0"

#: Options every test server gets: our test actions and middleware, our own public/ folder
#: (so file contents are known), a distinctive welcome, and the rooms the tests use.
BASE_OPTIONS: dict[str, Any] = {
    "general": {
        "serverName": SERVER_NAME,
        "apiVersion": API_VERSION,
        "welcomeMessage": WELCOME,
        "paths": {
            "actions": ["actions", "tests/probes", "tests/integration/actions"],
            "public": "tests/integration/public",
        },
        "startingChatRooms": {
            "defaultRoom": {},
            "mw-blocked": {},
            "mw-sticky": {},
            "mw-chat": {},
            "mw-order": {},
            "notify-room": {},
        },
    },
}


#: ``running_server(tmp_path_factory, name, options, **settings)``: BASE_OPTIONS under ``options``
running_server = functools.partial(testkit.running_server, base=BASE_OPTIONS)


def leaves(server: Server) -> list[tuple[str, str]]:
    """``(connection id, room)`` per leave middleware call on a ``notify-*`` room."""
    return [tuple(entry.split(" ", 1)) for entry in server.events("leave")]  # type: ignore[misc]


def destroyed(server: Server) -> list[str]:
    """Connection ids the connection middleware ``destroy`` hook saw."""
    return server.events("destroy")


async def stalled_member(server: Server, member: Client, members: int) -> Peer:
    """A peer that joins defaultRoom, then reads nothing (its receive window is 4 kB), returned
    once ``member`` counts ``members`` in the room."""
    stalled = await Peer.open(server, rcvbuf=4096)
    await stalled.join("defaultRoom")
    stalled.pause_reading()
    await eventually(
        lambda: member.request("roomView", room="defaultRoom"),
        lambda reply: reply["data"]["membersCount"] == members,
    )
    return stalled
