"""The Redis password never shows: not in ``status`` (public, over HTTP and the socket), not in the
broker's problem text or ``/ready``'s reason, not in any log line."""

from __future__ import annotations

import json

import pytest
from testkit import TIMEOUT

from .support import RedisServer

PASSWORD = "s3cret-Pa55word"


@pytest.fixture
def guarded_redis(make_redis) -> RedisServer:
    """A Redis with ``requirepass``."""
    return make_redis(password=PASSWORD)


@pytest.mark.server_errors("lost Redis at", "cannot start")
async def test_the_redis_password_never_shows(guarded_redis, launch, connect):
    (a,) = launch(guarded_redis.url, ("a",))
    shown = f"redis://:***@127.0.0.1:{guarded_redis.port}/0"
    seen = [await a.status()]
    assert seen[0]["broker"]["url"] == shown
    client = await connect(a)
    seen.append(await client.action("status"))

    guarded_redis.stop()
    broker = await a.wait_broker("reconnecting")
    assert broker["problem"].startswith(f"lost Redis at {shown}: ")
    seen += [await a.status(), await a.get("/ready")]
    assert seen[-1][1]["reason"] == broker["problem"]
    guarded_redis.start()
    await a.wait_broker("ok")

    # a wrong password is a mistake to fix, not an outage to wait out: the boot stops
    wrong = guarded_redis.url.replace(PASSWORD, "not-the-" + PASSWORD)
    (b,) = launch(wrong, ("b",), start=False)
    b.spawn()
    assert b.wait_exit(TIMEOUT) == 2
    assert (
        f"cannot start: redis.url redis://:***@127.0.0.1:{guarded_redis.port}/0: "
        "Redis refuses this server (invalid username-password pair or user is disabled.)"
    ) in b.log_text()

    for text in (json.dumps(seen), a.log_text(), b.log_text()):
        assert PASSWORD not in text
