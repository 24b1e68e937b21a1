"""The generated client tells the page when a re-join fails: a client that reconnects to a server
restarted while Redis is away cannot re-join a room that server has never seen; it emits ``error``
naming the room, retries on its reconnect schedule, and is back in the room (receiving its messages)
once Redis is."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from testkit import BOOT_TIMEOUT, ROOT, TIMEOUT, Server, node_command, unique

from .support import RedisServer

HERE = Path(__file__).resolve().parent
CLIENT = ROOT / "public" / "javascript" / "actionheroClient.js"


@pytest.fixture
def kept_redis(make_redis) -> RedisServer:
    """A Redis that keeps its data across a restart (append-only file)."""
    return make_redis(persistent=True)


class NodeClient:
    """``rejoin_client.js`` under Node: the events it reports, read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def next(
        self, event: str, timeout: float = TIMEOUT, accept: Callable[[dict], bool] = bool
    ) -> dict:
        """The next report of ``event`` that ``accept`` takes (others are passed over)."""

        async def read() -> dict:
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise AssertionError(f"the node client exited waiting for {event!r}")
                report = json.loads(line)
                if report["event"] == event and accept(report):
                    return report

        return await asyncio.wait_for(read(), timeout)


@pytest.fixture
async def node_client() -> AsyncIterator:
    started: list[asyncio.subprocess.Process] = []

    async def _start(server: Server, room: str) -> NodeClient:
        proc = await asyncio.create_subprocess_exec(
            *node_command(),
            str(HERE / "rejoin_client.js"),
            str(CLIENT),
            f"http://127.0.0.1:{server.port}",
            room,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        started.append(proc)
        return NodeClient(proc)

    yield _start
    for proc in started:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


@pytest.mark.server_errors("lost Redis at", "cannot reach Redis at")
async def test_a_failed_rejoin_is_told_to_the_page_and_retried(
    kept_redis, launch, connect, node_client
):
    (a,) = launch(kept_redis.url, ("a",))
    room = unique("rejoin")
    assert (await a.action("createChatRoom", name=room))["didCreate"] is True
    client = await node_client(a, room)
    assert (await client.next("joined", BOOT_TIMEOUT))["rooms"] == [room]

    kept_redis.stop()
    a.kill9()  # its successor starts without Redis and has never seen the room
    a.start()  # Redis is away: not in its cluster yet
    reconnected = await client.next("reconnect")
    assert reconnected["rooms"] == []
    error = await client.next("error")
    assert error == {
        "event": "error",
        "room": room,
        "message": f"could not re-join room {room}: Redis is unavailable: cannot tell whether "
        f"room {room} exists until it is back",
    }
    assert (await client.next("error"))["room"] == room  # retried, and told again

    kept_redis.start()  # with the room, kept on disk
    await client.next("rooms", accept=lambda report: report["rooms"] == [room])
    member = await connect(a)
    await member.join(room)
    await member.say(room, "welcome back")
    said = await client.next("say")
    assert (said["room"], said["message"]) == (room, "welcome back")
