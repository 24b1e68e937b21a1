"""``server.py --workers N`` (issue 5, "Must work" 6): N processes on one port that act as one
through Redis; without Redis the server refuses to start, saying why."""

from __future__ import annotations

import os
import signal

from .support import (
    BOOT_TIMEOUT,
    SHUTDOWN_TIMEOUT,
    TIMEOUT,
    eventually,
    kill_worker_of,
    one_client_per_worker,
    unique,
)


async def test_two_workers_share_the_port_and_act_as_one(redis_server, launch, connect):
    (server,) = launch(redis_server.url, ("workers",), workers=2)
    servers_key = f"{server.cluster}:servers"

    async def announced() -> set[str]:
        return redis_server.smembers(servers_key)

    workers = await eventually(
        announced, lambda ids: len(ids) == 2, BOOT_TIMEOUT, "two workers in Redis"
    )
    pids = {int(worker.rpartition("-")[2]) for worker in workers}
    assert server.proc.pid not in pids

    # connections land on either worker; find one client on each
    by_worker = await one_client_per_worker(server, connect)
    assert set(by_worker) == workers

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
    first_pid = await kill_worker_of(first)
    survivor = next(worker for worker in workers if not worker.endswith(f"-{first_pid}"))
    workers = await eventually(
        announced,
        lambda ids: (
            len(ids) == 2
            and survivor in ids
            and not any(worker.endswith(f"-{first_pid}") for worker in ids)
        ),
        BOOT_TIMEOUT,
        "a new worker in place of the killed one, which is reaped",
    )
    pids = {int(worker.rpartition("-")[2]) for worker in workers}
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

    # SIGTERM to the supervisor stops every worker cleanly
    server.proc.send_signal(signal.SIGTERM)
    assert server.wait_exit(SHUTDOWN_TIMEOUT) == 0
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"worker {pid} outlived its supervisor")
    assert redis_server.smembers(servers_key) == set()


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
