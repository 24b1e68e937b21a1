"""sleepTest: sleeps without blocking, and refuses a negative duration."""

import asyncio


async def test_sleeps_the_duration_asked(squall):
    reply = await squall.run("sleepTest", {"sleepDuration": 50})

    assert reply.status == 200
    assert reply["sleepDuration"] == 50
    assert reply["sleepDelta"] >= 50
    assert reply["sleepEnded"] - reply["sleepStarted"] == reply["sleepDelta"]


async def test_a_sleeping_call_does_not_hold_up_another(squall):
    socket = await squall.connect()
    slow = asyncio.ensure_future(socket.action("sleepTest", {"sleepDuration": 2000}))

    quick = await socket.action("randomNumber")

    assert not slow.done()
    assert "randomNumber" in quick
    assert (await slow)["sleepDuration"] == 2000


async def test_a_negative_duration_is_refused(squall):
    reply = await squall.run("sleepTest", {"sleepDuration": -1})

    assert reply.status == 422
    assert reply.error == 'Input for parameter "sleepDuration" failed validation!'
