"""Redis trouble (issue 5, "Must work" 5): Redis stopped and started again never crashes a
server; local clients keep being served; the brokers reconnect, resubscribe and restore what a
Redis without persistence forgot; ``status`` shows the broker state all along."""

from __future__ import annotations

import asyncio
import signal
import time

from .support import FACTOR, TIMEOUT, SquallServer, eventually, now_ms, unique

RECONNECT_TIMEOUT = 10.0 * FACTOR  # the brokers' backoff is capped at 5 s


async def wait_broker_state(server: SquallServer, state: str, problem: object) -> None:
    await eventually(
        server.broker,
        lambda broker: (broker["state"], broker["problem"]) == (state, problem),
        RECONNECT_TIMEOUT,
        f"broker of {server.name} not {state!r}",
    )


def refused(url_port: int) -> str:
    return f"Error 111 connecting to 127.0.0.1:{url_port}. Connection refused."


async def test_chat_resumes_after_redis_restarts(own_redis, launch, connect):
    a, b = launch(own_redis.url, ("a", "b"))
    room = unique("chat")
    assert (await a.action("createChatRoom", name=room))["didCreate"] is True
    a1, b1 = await connect(a), await connect(b)
    for member in (a1, b1):
        await member.join(room)
    await a1.say(room, "before")
    for member in (a1, b1):
        await member.said(room, "before")

    own_redis.stop()
    lost = f"lost Redis at {own_redis.url}: {refused(own_redis.port)}"
    for server in (a, b):
        await wait_broker_state(server, "reconnecting", lost)
    # local connections and actions that do not need Redis are still served
    pong = await a1.request("ping")
    assert (pong["status"], pong["data"]) == ("OK", {"pong": now_ms()})
    echoed = await b.action("echo", word="still")
    assert (echoed["action"], echoed["word"]) == ("echo", "still")
    # what needs Redis fails, naming the cause
    said = await a1.request("say", room=room, message="during")
    assert said["error"] == refused(own_redis.port)

    own_redis.start()  # same port, empty: no persistence
    for server in (a, b):
        await wait_broker_state(server, "ok", None)
    assert own_redis.smembers(f"{a.cluster}:rooms") == {"defaultRoom", room}
    view = await b1.request("roomView", room=room)
    assert view["data"]["membersCount"] == 2
    assert set(view["data"]["members"]) == {a1.id, b1.id}
    await a1.say(room, "after, from a")
    await b1.say(room, "after, from b")
    await a1.say(room, "fence")  # a published "after, from a" and the fence, b said in between
    for member in (a1, b1):
        await member.said(room, "fence")
        await member.said(room, "after, from b")
        assert member.count_said(room, "after, from a") == 1
        assert member.count_said(room, "during") == 0
    assert a.alive() and b.alive()
    for server in (a, b):
        assert "Traceback" not in server.log_text(), server.log_tail()


async def test_a_client_gone_while_redis_is_down_is_not_restored(own_redis, launch, connect):
    a, b = launch(own_redis.url, ("a", "b"))
    rooms = [unique("first"), unique("second")]
    for room in rooms:
        assert (await a.action("createChatRoom", name=room))["didCreate"] is True
    a1, b1, leaving = await connect(a), await connect(b), await connect(b)
    for member in (a1, b1, leaving):
        for room in rooms:
            await member.join(room)

    own_redis.stop()
    for server in (a, b):
        await wait_broker_state(
            server, "reconnecting", f"lost Redis at {own_redis.url}: {refused(own_redis.port)}"
        )
    await leaving.close()  # b cleans up while Redis is away: it leaves both rooms locally
    # and cannot tell Redis; what b writes back once Redis returns must not bring it back
    own_redis.start()
    for server in (a, b):
        await wait_broker_state(server, "ok", None)

    for room in rooms:
        view = await a1.request("roomView", room=room)
        assert set(view["data"]["members"]) == {a1.id, b1.id}, (room, leaving.id)
    assert (await b.status())["connections"] == {"total": 2, "webSocket": 1, "web": 1}


async def test_brokers_resubscribe_when_redis_drops_their_subscriber(own_redis, launch, connect):
    a, b = launch(own_redis.url, ("a", "b"))
    room = unique("dropped")
    assert (await a.action("createChatRoom", name=room))["didCreate"] is True
    a1, b1 = await connect(a), await connect(b)
    for member in (a1, b1):
        await member.join(room)
    channel = f"{a.cluster}:say:{room}"
    with own_redis.client() as client:
        assert client.execute_command("CLIENT", "KILL", "TYPE", "pubsub") == 2

    async def subscribers() -> int:
        return own_redis.numsub(channel)

    await eventually(subscribers, lambda n: n == 2, TIMEOUT, f"{channel} not subscribed again")
    for server in (a, b):
        await wait_broker_state(server, "ok", None)
    await b1.say(room, "still there")
    await b1.say(room, "fence")
    for member in (a1, b1):
        await member.said(room, "fence")
        assert member.count_said(room, "still there") == 1


async def test_a_server_stops_on_sigterm_while_redis_is_slow_to_answer(own_redis, launch):
    (a,) = launch(own_redis.url, ("a",))
    pause_ms = 3000
    with own_redis.client() as client:
        assert client.execute_command("CLIENT", "PAUSE", pause_ms, "WRITE") == b"OK"
        paused_at = time.monotonic()

        def blocked() -> set[str]:
            found = client.client_list()
            return {entry["cmd"] for entry in found if "b" in entry["flags"]}

        # the server's periodic lease renewal and canary are now waiting on Redis
        waiting = await eventually(
            lambda: asyncio.to_thread(blocked),
            lambda commands: {"publish", "set"} <= commands,
            pause_ms / 2000,
            "lease renewal (SET) and canary (PUBLISH) waiting on the paused Redis",
        )
        assert {"publish", "set"} <= waiting
        a.proc.send_signal(signal.SIGTERM)  # the shutdown cancels them while they wait
        assert time.monotonic() - paused_at < pause_ms / 1000  # still paused: they still wait
    assert a.stop(signalled=True) == 0, a.log_tail()
