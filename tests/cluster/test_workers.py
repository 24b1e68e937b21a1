"""``server.py --workers N``: N processes on one port that act as one through Redis, kept alive by a
supervisor that survives its workers' faults and Redis's, restarts them one at a time on SIGHUP, and
stops them all on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import Callable

import pytest
from testkit import (
    BOOT_TIMEOUT,
    SHUTDOWN_TIMEOUT,
    TIMEOUT,
    Client,
    Server,
    eventually,
    http_request,
    open_client,
    unique,
)
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .support import ACTIONS, one_client_per_worker

#: Seconds between two health probes during a rolling restart.
PROBE_INTERVAL = 0.02


def pid_of(server_id: str) -> int:
    return int(server_id.rpartition("-")[2])


async def worker_of(client: Client) -> str:
    return (await client.action("status"))["id"]


async def worker_state(client: Client, state: str) -> None:
    """Until the ``status`` of the worker holding ``client`` says ``state``."""
    await eventually(
        lambda: client.action("status"),
        lambda status: status["state"] == state,
        TIMEOUT,
        f"the worker of {client!r} {state}",
    )


async def workers_in_cluster(
    server: Server,
    accept: Callable[[set[str]], bool] = lambda ids: len(ids) == 2,
    what: str = "two workers in the cluster",
) -> set[str]:
    """Until the ids of the cluster's servers, as the worker that answers ``status`` sees them
    (itself and its peers), are what ``accept`` takes; those ids."""

    async def members() -> set[str]:
        try:
            status = await server.status()
        except OSError:  # a worker going away: its queued connections are refused or reset
            return set()
        return {status["id"], *status["broker"]["peers"]}

    return await eventually(members, accept, BOOT_TIMEOUT, what)


@pytest.mark.server_errors("was killed by SIGKILL")
async def test_two_workers_share_the_port_and_act_as_one(redis_server, launch, connect):
    (server,) = launch(redis_server.url, ("workers",), workers=2)
    by_worker = await one_client_per_worker(server, connect)
    workers = set(by_worker)
    assert server.proc.pid not in {pid_of(worker) for worker in workers}
    room = unique("workers")
    assert (await server.action("createChatRoom", name=room))["didCreate"] is True
    first, second = by_worker.values()
    for member in (first, second):
        await member.join(room)
    view = await first.request("roomView", room=room)
    assert set(view["data"]["members"]) == {first.id, second.id}
    await second.say(room, "across workers")
    await second.say(room, "fence")
    for member in (first, second):
        await member.said(room, "fence")
        assert member.count_said(room, "across workers") == 1

    # a worker killed with SIGKILL is replaced; its members are reaped; its client comes back
    first_pid = pid_of(await worker_of(first))
    os.kill(first_pid, signal.SIGKILL)
    await first.wait_closed()
    survivor = next(worker for worker in workers if pid_of(worker) != first_pid)
    workers = await workers_in_cluster(
        server,
        lambda ids: len(ids) == 2 and survivor in ids and first_pid not in map(pid_of, ids),
        "a new worker in place of the killed one, which is reaped",
    )
    await eventually(  # the reaper claims the dead worker, then removes its memberships
        lambda: second.request("roomView", room=room),
        lambda view: set(view["data"]["members"]) == {second.id},
        TIMEOUT,
        "the killed worker's member still in the room",
    )
    again = await connect(server)
    await again.join(room)
    await second.say(room, "welcome back")
    for member in (second, again):
        await member.said(room, "welcome back")
    assert re.search(rf"worker \d \(pid {first_pid}\) was killed by SIGKILL", server.log_text())

    # SIGTERM to the supervisor stops every worker cleanly
    server.proc.send_signal(signal.SIGTERM)
    assert server.wait_exit(SHUTDOWN_TIMEOUT) == 0
    for pid in map(pid_of, workers):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 0)
            raise AssertionError(f"worker {pid} outlived its supervisor")


@pytest.mark.server_errors("was killed by SIGKILL", "lost Redis at", "cannot reach Redis at")
async def test_a_worker_killed_while_redis_is_away_comes_back_and_the_other_keeps_serving(
    own_redis, launch, connect
):
    (server,) = launch(own_redis.url, ("workers",), workers=2)
    by_worker = await one_client_per_worker(server, connect)
    room = unique("outage")
    assert (await server.action("createChatRoom", name=room))["didCreate"] is True
    doomed, survivor = by_worker.values()
    for member in (doomed, survivor):
        await member.join(room)

    own_redis.stop()
    for member in (doomed, survivor):
        await worker_state(member, "degraded")
    doomed_pid = pid_of(await worker_of(doomed))
    os.kill(doomed_pid, signal.SIGKILL)
    await doomed.wait_closed()

    # the other worker keeps serving its clients
    await survivor.say(room, "still here")
    await survivor.said(room, "still here")
    # the killed one is back, without Redis, serving its own clients
    survivor_pid = pid_of(await worker_of(survivor))

    async def a_client_and_its_status() -> tuple[Client, dict] | None:
        try:
            client = await connect(server)
        except (OSError, InvalidHandshake):  # queued on the killed worker's socket: reset
            return None
        return client, await client.action("status")

    fresh, status = await eventually(
        a_client_and_its_status,
        lambda found: (
            found is not None and pid_of(found[1]["id"]) not in (doomed_pid, survivor_pid)
        ),
        BOOT_TIMEOUT,
        "a connection to the restarted worker",
    )
    assert status["state"] == "degraded"
    assert status["problems"] == [
        f"cannot reach Redis at {own_redis.url}: Error 111 connecting to 127.0.0.1:"
        f"{own_redis.port}. Connection refused."
    ]
    assert (await fresh.request("roomAdd", room="defaultRoom"))["status"] == "OK"

    own_redis.start()
    both = {survivor_pid, pid_of(status["id"])}  # the killed worker reaped, its successor in
    await workers_in_cluster(server, lambda ids: set(map(pid_of, ids)) == both, "both workers")
    for client in (survivor, fresh):
        await worker_state(client, "ok")
    await fresh.join(room)
    await survivor.say(room, "across again")
    for member in (survivor, fresh):
        await member.said(room, "across again")


async def test_a_workers_clean_exit_is_not_an_error(redis_server, launch, connect):
    (server,) = launch(redis_server.url, ("workers",), workers=2)
    client = await connect(server)
    pid = pid_of(await worker_of(client))
    os.kill(pid, signal.SIGTERM)  # an operator recycling one worker
    assert (await client.wait_closed())[0] == 1001
    await workers_in_cluster(
        server,
        lambda ids: len(ids) == 2 and pid not in map(pid_of, ids),
        "a new worker in place of the stopped one",
    )
    assert f"(pid {pid}) exited cleanly after" in server.log_text()
    assert server.alive()


class Chatter:
    """A client that keeps chatting through restarts: it says a numbered message, waits for it
    to come back, and reconnects at once (counting failures) whenever its socket is closed."""

    def __init__(self, server: Server, room: str) -> None:
        self.server = server
        self.room = room
        self.said = 0
        self.reconnects = 0
        self.failures: list[str] = []
        self.running = True

    async def run(self) -> None:
        client: Client | None = None
        while self.running:
            if client is None:
                try:
                    client = await open_client(self.server)
                    await client.join(self.room)
                except OSError as exc:  # refused or reset: the port dropped a connection
                    self.failures.append(repr(exc))
                    return
                except (AssertionError, ConnectionClosed, InvalidStatus):
                    client = None  # accepted by a worker just told to stop: it closed it
                    self.reconnects += 1
                    continue
            try:
                message = f"chat {self.said}"
                await client.say(self.room, message)
                await client.said(self.room, message)
                self.said += 1
            except (AssertionError, ConnectionClosed) as exc:
                if client.close_code is None and not isinstance(exc, ConnectionClosed):
                    raise
                client = None  # its worker is replaced: 1001, reconnect at once
                self.reconnects += 1
        if client is not None:
            await client.close()


class Prober:
    """GET /health on a fresh connection, again and again: any failure is a dropped port."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.answered = 0
        self.failures: list[str] = []
        self.running = True

    async def run(self) -> None:
        while self.running:
            try:
                response = await asyncio.to_thread(http_request, self.server, "GET", "/health")
                assert response.status == 200
                self.answered += 1
            except Exception as exc:
                self.failures.append(repr(exc))
            await asyncio.sleep(PROBE_INTERVAL)  # a load balancer's pace, not a wait on state


RELEASE = """
from squall import action


@action(name="release")
async def release(data):
    return {"release": %r}
"""


async def test_sighup_restarts_the_workers_one_at_a_time_while_a_client_chats(
    redis_server, launch, tmp_path
):
    deploy = tmp_path / "deploy"  # the application's own actions, deployed anew below
    deploy.mkdir()
    (deploy / "release.py").write_text(RELEASE % "first")
    paths = {"actions": [*ACTIONS, str(deploy)]}
    (server,) = launch(
        redis_server.url, ("rolling",), workers=2, extra={"general": {"paths": paths}}
    )
    old = await workers_in_cluster(server)
    assert (await server.action("release"))["release"] == "first"
    (deploy / "release.py").write_text(RELEASE % "second release")
    room = unique("rolling")
    assert (await server.action("createChatRoom", name=room))["didCreate"] is True
    chatter, prober = Chatter(server, room), Prober(server)
    tasks = [asyncio.create_task(chatter.run()), asyncio.create_task(prober.run())]
    await eventually(lambda: chatter.said, lambda n: n >= 5, TIMEOUT, "chat")

    server.proc.send_signal(signal.SIGHUP)
    started = time.monotonic()
    new = await workers_in_cluster(
        server,
        lambda ids: len(ids) == 2 and not ids & old,
        "two new workers in place of the old ones",
    )
    await eventually(
        server.log_text,
        lambda text: "rolling restart done" in text,
        TIMEOUT,
        "the end of the rolling restart",
    )
    said_during_roll = chatter.said
    await eventually(
        lambda: (chatter.said, chatter.failures, tasks[0].done()),
        lambda state: state[0] >= said_during_roll + 5 or state[2],
        TIMEOUT,
        "chat after the roll",
    )
    chatter.running = prober.running = False
    await asyncio.gather(*tasks)

    assert chatter.failures == [] and prober.failures == []
    # the new workers run the code deployed before the SIGHUP, whichever answers
    releases = {(await server.action("release"))["release"] for _ in range(6)}
    assert releases == {"second release"}
    assert chatter.reconnects >= 1  # its worker was replaced under it
    assert prober.answered > 0
    assert server.alive()
    log = server.log_text()
    # each successor was listening before its predecessor was asked to stop
    replaced = re.findall(r"worker (\d): pid (\d+) is ready; stopping pid (\d+)", log)
    assert sorted(slot for slot, _, _ in replaced) == ["0", "1"]
    assert {int(successor) for _, successor, _ in replaced} == set(map(pid_of, new))
    assert {int(predecessor) for _, _, predecessor in replaced} == set(map(pid_of, old))
    assert time.monotonic() - started < BOOT_TIMEOUT
    for pid in map(pid_of, old):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 0)
            raise AssertionError(f"old worker {pid} still runs")


@pytest.mark.server_errors("--workers 2 needs Redis")
async def test_several_workers_without_redis_refuse_to_start(launch):
    (server,) = launch(None, ("alone",), workers=2, start=False)
    server.spawn()
    assert server.wait_exit(TIMEOUT * 2) == 2
    message = (
        "--workers 2 needs Redis so the workers share rooms and pushes: set redis.enabled "
        "(or SQUALL_REDIS_URL)"
    )
    lines = server.log_text().splitlines()
    assert [line for line in lines if message in line] == [line for line in lines if line]
    assert lines[-1].endswith(f"ERROR squall.server: {message}")
