"""The Redis broker while Redis is away, with no Redis at all: its URL points at a
port that refuses connections. What this server can do alone works at once; what the other
servers must get waits in a bounded outbox; what needs them raises a clear error."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from squall import codec
from squall.broker import Membership
from squall.errors import BrokerUnavailable
from squall.redis_broker import RedisBroker
from squall.room_options import DEFAULT_OPTIONS, RoomOptions


class Recorder:
    """The broker's delegates (rooms and connections): records what it is asked to deliver."""

    def __init__(self) -> None:
        self.said: list[tuple[str, Any]] = []
        self.pushed: list[Any] = []

    async def deliver_room(self, room: str, frame: bytes) -> None:
        self.said.append((room, codec.loads(frame)["message"]))

    def deliver_to(self, connection_id: str, message: Any) -> bool:
        return False

    def deliver_all(self, message: Any) -> None:
        self.pushed.append(message)

    async def room_destroyed(self, room: str, members: list[str]) -> None:
        raise AssertionError("no room is destroyed while Redis is away")

    def local_connections(self) -> list[str]:
        return []

    def local_state(self) -> tuple[dict[str, RoomOptions], list[Membership]]:
        return {"defaultRoom": DEFAULT_OPTIONS}, []


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
async def away(refusing_port: int, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Any]:
    broker = RedisBroker(
        f"redis://:pw-secret@127.0.0.1:{refusing_port}/0",
        "unit-1",
        "unit",
        lease_ms=1000,
        canary_ms=1000,
        outbox_messages=2,
        outbox_bytes=1000,
    )
    recorder = Recorder()
    with caplog.at_level(logging.ERROR, logger="squall.redis"):
        await broker.start(recorder, recorder)
    broker.recorder = recorder
    yield broker
    await broker.stop()


def unavailable(detail: str) -> str:
    return f"Redis is unavailable: {detail}"


async def test_a_broker_starts_without_redis_and_says_so_once(away, refusing_port, caplog):
    shown = f"redis://:***@127.0.0.1:{refusing_port}/0"
    # the rest of the sentence is the event loop's (asyncio and uvloop word it differently)
    refused = f"cannot reach Redis at {shown}: Error 111 connecting to 127.0.0.1:{refusing_port}."

    assert away.state == "connecting"
    assert away.problem.startswith(refused)
    status = away.status()
    assert status["url"] == shown
    (logged,) = [record.getMessage() for record in caplog.get_records("setup")]
    assert logged == (
        f"{away.problem}; serving this server's clients, and keeping up to 2 messages for the "
        "other servers, until it answers"
    )
    assert "pw-secret" not in repr(status) + logged


async def test_says_reach_this_server_at_once_and_wait_for_the_others(away):
    await away.publish("r", {"message": "one"})
    await away.publish("r", {"message": "two"})
    with pytest.raises(BrokerUnavailable) as full:
        await away.publish("r", {"message": "three"})

    assert away.recorder.said == [("r", "one"), ("r", "two")]
    assert str(full.value) == unavailable(
        "2 messages already wait for it (redis.outboxSize); this message was not sent"
    )
    assert full.value.http_status == 503
    assert away.status()["outbox"] == {
        "messages": 2,
        "bytes": away.status()["outbox"]["bytes"],
        "maxMessages": 2,
        "maxBytes": 1000,
    }


async def test_pushes_to_everyone_reach_this_server_at_once(away):
    await away.send_all({"context": "alert", "message": "hi"})

    assert away.recorder.pushed == [{"context": "alert", "message": "hi"}]
    assert away.status()["outbox"]["messages"] == 1


async def test_rooms_this_server_knows_or_creates_work(away):
    assert await away.create_room("made here", DEFAULT_OPTIONS) is True
    assert await away.create_room("made here", DEFAULT_OPTIONS) is False
    assert await away.room_exists("made here") is True
    with pytest.raises(BrokerUnavailable) as unknown:
        await away.room_exists("elsewhere")
    assert str(unknown.value) == unavailable(
        "cannot tell whether room elsewhere exists until it is back"
    )


@pytest.mark.parametrize(
    "call, detail",
    [
        (lambda b: b.members("r"), "the members on other servers are unknown until it is back"),
        (lambda b: b.list_rooms(), "the list of rooms is unknown until it is back"),
        (lambda b: b.destroy_room("r"), "a room cannot be destroyed until it is back"),
        (
            lambda b: b.send_to("someone", {}),
            "connections of other servers cannot be reached until it is back",
        ),
    ],
)
async def test_what_needs_the_other_servers_raises_a_clear_error(away, call, detail):
    with pytest.raises(BrokerUnavailable) as caught:
        await call(away)

    assert str(caught.value) == unavailable(detail)


async def test_changes_wait_in_the_journal_and_a_removal_cancels_its_join(away):
    await away.connection_opened("c1")
    await away.add_member("r", "c1", 1, None)
    await away.add_member("r", "c2", 2, None)
    assert away.status()["pendingWrites"] == 3

    # the write-back when Redis returns removes whatever this server no longer holds: a
    # removal need not wait, and a long outage's comings and goings cost nothing
    await away.remove_member("r", "c1")
    await away.connection_closed("c1")
    assert away.status()["pendingWrites"] == 1
    assert away.status()["subscriptions"] == [
        "unit:all",
        "unit:canary:unit-1",
        "unit:direct",
        "unit:say:r",
    ]
