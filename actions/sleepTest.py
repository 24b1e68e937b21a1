"""sleepTest: answer after a pause, to see concurrency and out-of-order replies at work."""

import asyncio
import time

from squall import Input, action


def _milliseconds(value):
    number = int(value)
    if number < 0:
        raise ValueError("sleepDuration must not be negative")
    return number


@action(
    name="sleepTest",
    description="Sleep sleepDuration ms without blocking the server, then say how long it took",
    inputs={
        "sleepDuration": Input(
            default=1000, formatter=_milliseconds, description="how long to sleep, in ms"
        )
    },
    output_example={
        "sleepStarted": 1700000000000,
        "sleepEnded": 1700000001001,
        "sleepDelta": 1001,
        "sleepDuration": 1000,
    },
)
async def sleep_test(data):
    duration = data.params["sleepDuration"]
    started = int(time.time() * 1000)
    await asyncio.sleep(duration / 1000)
    ended = int(time.time() * 1000)
    return {
        "sleepStarted": started,
        "sleepEnded": ended,
        "sleepDelta": ended - started,
        "sleepDuration": duration,
    }
