"""History and recovery across servers through Redis (PROTOCOL.md §9): offsets handed out by
Redis whichever server a say lands on, recovery on another server than the one a client left,
each message exactly once while others keep talking, and a Redis restart that loses the history
(a new epoch, ``recovered: false``). While Redis is away, a room with history refuses says
rather than number them where the other servers cannot see."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from testkit import TIMEOUT, Client, Server, eventually, unique

from squall import codec
from squall.broker import Membership
from squall.redis_broker import RedisBroker
from squall.room_options import RoomOptions

from .support import RedisServer

#: The history tests that stop Redis make each server log that once (ERROR).
LOST_REDIS = "lost Redis at"


def said_in(room: str):
    return lambda f: f.get("context") == "user" and f.get("room") == room


async def history_room(server: Server, size: int = 50) -> str:
    room = unique("history")
    reply = await server.action("historyRoomTest", name=room, size=size)
    assert reply["didCreate"] is True, reply
    return room


async def say_all(member: Client, room: str, messages: list[Any]) -> None:
    for message in messages:
        await member.say(room, message)


async def test_offsets_follow_each_other_whichever_server_a_say_lands_on(cluster, connect):
    room = await history_room(cluster[0])
    members = [await connect(server) for server in cluster]
    for member in members:
        await member.join(room)

    for turn in range(2):
        for member in members:
            await member.say(room, f"{turn} from {member.server.name}")
    frames = [await members[0].next(said_in(room)) for _ in range(6)]

    assert [f["offset"] for f in frames] == [1, 2, 3, 4, 5, 6]
    assert len({f["epoch"] for f in frames}) == 1
    history = await members[2].request("roomHistory", room=room, limit=4)
    assert history["data"]["messages"] == frames[2:]
    assert history["data"]["offset"] == 6


async def test_a_client_recovers_on_another_server_than_the_one_it_left(cluster, connect):
    a, b, c = cluster
    room = await history_room(a)
    talker, listener = await connect(a), await connect(b)
    for member in (talker, listener):
        await member.join(room)
    await talker.say(room, "seen")
    seen = await listener.next(said_in(room))
    await listener.close()
    await say_all(talker, room, ["missed 1", "missed 2"])

    back = await connect(c)
    since = {"offset": seen["offset"], "epoch": seen["epoch"]}
    reply = await back.request("roomAdd", room=room, since=since)
    await talker.say(room, "live")

    data = reply["data"]
    assert (data["recovered"], data["offset"], data["epoch"]) == (True, 3, seen["epoch"])
    assert [m["message"] for m in data["messages"]] == ["missed 1", "missed 2"]
    assert [m["from"] for m in data["messages"]] == [talker.id, talker.id]
    live = await back.next(said_in(room))
    assert (live["offset"], live["message"]) == (4, "live")


async def test_each_message_arrives_once_in_order_across_a_recovery_on_another_server(
    cluster, connect
):
    """The recover-or-push race through Redis: a client leaves server b while a client of
    server a says 300 messages, and comes back on server c with ``since`` in the middle of
    them: every offset reaches it exactly once, recovered or live."""
    a, b, c = cluster
    room = await history_room(a, size=1000)
    talker, listener = await connect(a), await connect(b)
    for member in (talker, listener):
        await member.join(room)
    messages = [f"m{n}" for n in range(300)]
    talking = asyncio.ensure_future(say_all(talker, room, messages))
    received = [await listener.next(said_in(room)) for _ in range(40)]
    await listener.close()
    since = {"offset": received[-1]["offset"], "epoch": received[-1]["epoch"]}
    while (await talker.request("roomHistory", room=room, limit=1))["data"]["offset"] < 100:
        pass  # let dozens more be said meanwhile

    back = await connect(c)
    reply = await back.request("roomAdd", room=room, since=since)
    await asyncio.wait_for(talking, 60)
    live: list[dict] = []
    while not live or live[-1]["offset"] < 300:
        live.append(await back.next(said_in(room)))

    assert reply["data"]["recovered"] is True
    everything = received + reply["data"]["messages"] + live
    assert [f["offset"] for f in everything] == list(range(1, 301))
    assert [f["message"] for f in everything] == messages


class StallingRooms:
    """A broker's delegates whose first room delivery waits for ``go``: the subscriber stalls
    on it, as a busy server's does, with the next messages queued behind it."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.events: list[Any] = []

    async def deliver_room(self, room: str, frame: bytes) -> None:
        if not self.events:
            await self.go.wait()
        self.events.append(codec.loads(frame)["offset"])

    def deliver_to(self, connection_id: str, message: Any) -> bool:
        return False

    def deliver_all(self, message: Any) -> None:
        pass

    async def room_destroyed(self, room: str, members: list[str]) -> None:
        pass

    def local_connections(self) -> list[str]:
        return []

    def local_state(self) -> tuple[dict[str, RoomOptions], list[Membership]]:
        return {}, []


async def test_a_recovery_returns_once_the_messages_it_holds_were_delivered_here(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
):
    """A history read and the subscription are two Redis connections, each in order but not in
    step: the read can answer before the subscription brings the messages said ahead of it.
    A recovery returns only once those are delivered here, so a joiner held meanwhile skips
    them; one delivered after would reach it twice, recovered and pushed live."""
    rooms = StallingRooms()
    broker = RedisBroker(
        redis_server.url, "recovering", unique("recovery"), lease_ms=15_000, canary_ms=60_000
    )
    await broker.start(rooms, rooms)
    options = RoomOptions(history_size=10)
    room = unique("history")
    try:
        await broker.create_room(room, options)
        await broker.add_member(room, "c1", 0, None)
        await broker.publish(room, {"message": "one"}, options)
        await broker.publish(room, {"message": "two"}, options)
        epoch = (await broker.history(room, 1, options)).epoch
        read = broker._history.since

        async def read_then_unstall(*args: Any) -> Any:
            found = await read(*args)
            rooms.go.set()  # the subscriber moves on only once the read has its answer
            return found

        monkeypatch.setattr(broker._history, "since", read_then_unstall)
        recovery = await broker.recover(room, 0, epoch, options)
        rooms.events.append("recovered")
    finally:
        await broker.stop()

    assert [codec.loads(frame)["offset"] for frame in recovery.kept.frames] == [1, 2]
    assert rooms.events == [1, 2, "recovered"]


async def back_from_an_outage(servers: list[Server], logged: dict[str, int]) -> None:
    """Until each server says Redis is back (in its log after ``logged[name]``) and is up."""
    for server in servers:
        await eventually(
            lambda s=server: s.log_text(logged[s.name]),
            lambda text: "Redis is back after" in text,
            TIMEOUT,
            f"{server.name} back from the outage",
        )
        await server.wait_broker("ok")


async def talking_across(servers: list[Server], connect) -> tuple[str, Client, Client, dict]:
    """A room with history, a talker on the first server and a listener on the second, and
    the frame of a message said there."""
    room = await history_room(servers[0])
    talker, listener = await connect(servers[0]), await connect(servers[1])
    for member in (talker, listener):
        await member.join(room)
    await talker.say(room, "before")
    return room, talker, listener, await listener.next(said_in(room))


@pytest.mark.server_errors(LOST_REDIS)
async def test_a_redis_restart_loses_the_history_and_clients_are_told(own_redis, launch, connect):
    a, b = launch(own_redis.url, ("a", "b"))
    room, talker, listener, before = await talking_across([a, b], connect)

    logged = {server.name: server.log_size() for server in (a, b)}
    own_redis.stop()
    own_redis.start()  # empty: no persistence
    await back_from_an_outage([a, b], logged)
    await talker.say(room, "after")
    after = await listener.next(said_in(room))
    back = await connect(b)
    since = {"offset": before["offset"], "epoch": before["epoch"]}
    reply = await back.request("roomAdd", room=room, since=since)

    assert after["offset"] == 1 and after["epoch"] != before["epoch"]
    assert reply["data"]["recovered"] is False
    assert reply["data"]["epoch"] == after["epoch"]
    assert [m["message"] for m in reply["data"]["messages"]] == ["after"]


@pytest.mark.server_errors(LOST_REDIS)
async def test_while_redis_is_away_a_room_with_history_refuses_says(own_redis, launch, connect):
    a, b = launch(own_redis.url, ("a", "b"))
    room, talker, listener, before = await talking_across([a, b], connect)

    logged = {server.name: server.log_size() for server in (a, b)}
    own_redis.stop()
    await a.wait_broker("reconnecting")
    refused = await talker.request("say", room=room, message="during")
    history = await talker.request("roomHistory", room=room)
    own_redis.start()
    await back_from_an_outage([a, b], logged)
    await talker.say(room, "after")
    after = await listener.next(said_in(room))

    assert refused["error"] == (
        "Redis is unavailable: a room with history numbers its messages in Redis: this one "
        "cannot be said until it is back"
    )
    assert history["error"] == (
        "Redis is unavailable: the history of a room is kept in Redis: it cannot be read "
        "until it is back"
    )
    assert listener.take(lambda f: f.get("message") == "during") == []
    assert after["epoch"] != before["epoch"]  # that Redis had no persistence: a new numbering
