"""Health and readiness for load balancers: ``GET /health`` answers while the process serves, ``GET
/ready`` only while the server is in its cluster and not stopping (else 503 with the reason),
``status`` says ``degraded``; a server started while Redis is away serves its own clients and joins
the cluster when Redis comes."""

from __future__ import annotations

import asyncio
import http.client
import json
import signal

import pytest
from testkit import TIMEOUT, eventually

from .support import RedisServer


def http_status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def refused(port: int) -> str:
    return f"Error 111 connecting to 127.0.0.1:{port}. Connection refused."


@pytest.fixture
def later_redis(make_redis) -> RedisServer:
    """A Redis the test starts itself (nothing listens on its port until then)."""
    return make_redis(start=False)


@pytest.mark.server_errors("cannot reach Redis at")
async def test_a_server_started_without_redis_serves_and_joins_when_redis_comes(
    later_redis, launch, connect
):
    redis_server = later_redis
    (a,) = launch(redis_server.url, ("a",), start=False)
    a.start()  # Redis is away: not in its cluster yet
    reason = f"cannot reach Redis at {redis_server.url}: {refused(redis_server.port)}"

    assert await a.get("/health") == (200, {"status": "ok"})
    assert await a.get("/ready") == (503, {"ready": False, "reason": reason})
    status = await a.status()
    assert (status["state"], status["problems"]) == ("degraded", [reason])
    assert (status["broker"]["state"], status["broker"]["problem"]) == ("connecting", reason)
    # its own clients are served, in its starting rooms
    a1, a2 = await connect(a), await connect(a)
    room = "defaultRoom"
    for member in (a1, a2):
        await member.join(room)
    await a1.say(room, "before Redis")
    await a2.said(room, "before Redis", timeout=1)

    redis_server.start()
    await eventually(
        lambda: a.get("/ready"), lambda r: r == (200, {"ready": True}), TIMEOUT, "ready"
    )
    status = await a.status()
    assert (status["state"], status["problems"]) == ("ok", [])
    # what it created while Redis was away is in Redis now: every server of the cluster sees it
    assert (await a.action("roomsTest"))["list"] == ["defaultRoom"]
    (b,) = launch(redis_server.url, ("b",), extra={"redis": {"clusterName": a.cluster}})
    b1 = await connect(b)
    await b1.join(room)
    view = await b1.request("roomView", room=room)
    assert set(view["data"]["members"]) == {a1.id, a2.id, b1.id}
    await a1.say(room, "across")
    await b1.said(room, "across")
    # "before Redis" was for a's members only: it never reaches b
    assert b1.count_said(room, "before Redis") == 0


async def test_ready_answers_503_once_the_server_is_stopping(redis_server, launch):
    (a,) = launch(redis_server.url, ("a",))
    probe = http.client.HTTPConnection("127.0.0.1", a.port, timeout=TIMEOUT)  # kept alive

    def get(path: str) -> tuple[int, dict]:
        probe.request("GET", path)
        reply = probe.getresponse()
        return reply.status, json.loads(reply.read())

    def get_ready() -> tuple[int, dict]:
        return get("/ready")

    try:
        assert await asyncio.to_thread(get_ready) == (200, {"ready": True})
        slow = asyncio.create_task(a.action("sleepTest", sleepDuration=1500))
        await eventually(  # the status action counts itself
            a.status, lambda status: status["pendingActions"] == 2, TIMEOUT, "the slow action"
        )
        a.proc.send_signal(signal.SIGTERM)  # the slow action holds the shutdown open
        reply = await eventually(
            lambda: asyncio.to_thread(get_ready),
            lambda reply: reply[0] == 503,
            TIMEOUT,
            "/ready answering 503 during the shutdown",
        )
        assert reply == (503, {"ready": False, "reason": "the server is shutting down"})
        # the process still serves: alive, though it takes no new work
        assert await asyncio.to_thread(get, "/health") == (200, {"status": "ok"})
        assert "error" not in await slow
    finally:
        probe.close()
    assert a.stop(signalled=True) == 0


async def test_the_probe_paths_are_configurable(launch):
    paths = {"healthPath": "/livez", "readyPath": "/readyz"}
    (alone,) = launch(None, ("alone",), extra={"servers": {"web": paths}})

    assert await alone.get("/livez") == (200, {"status": "ok"})
    assert await alone.get("/readyz") == (200, {"ready": True})  # the memory broker is always in
    assert (await asyncio.to_thread(http_status, alone.port, "/health")) == 404  # a file now
