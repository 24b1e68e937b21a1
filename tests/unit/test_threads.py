"""The plain-def action threads: a pool of a set size, threads still running
past their timeout counted, one warning per saturation."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import pytest
from testkit import TIMEOUT

from squall.actions import ActionRegistry
from squall.processor import ActionProcessor
from squall.threads import ActionThreads

from .conftest import MESSAGES, bounded, declared, socket_connection


@pytest.fixture
def pool() -> Iterator[ActionThreads]:
    threads = ActionThreads(2, "unit-threads")
    yield threads
    threads.shutdown()


def blocked(gate: threading.Event, started: threading.Semaphore):
    def run(data):
        started.release()
        gate.wait(TIMEOUT)
        return data

    return run


async def test_status_counts_busy_and_waiting_calls(pool):
    gate, started = threading.Event(), threading.Semaphore(0)
    jobs = [pool.submit(blocked(gate, started), n) for n in range(2)]
    for _ in range(2):
        assert started.acquire(timeout=TIMEOUT)
    assert pool.status() == {"size": 2, "busy": 2, "waiting": 0, "timedOut": 0}

    gate.set()
    assert [await bounded(asyncio.wrap_future(job)) for job in jobs] == [0, 1]
    assert pool.status() == {"size": 2, "busy": 0, "waiting": 0, "timedOut": 0}


async def test_timed_out_threads_are_counted_until_they_return(pool):
    gate, started = threading.Event(), threading.Semaphore(0)
    job = pool.submit(blocked(gate, started), "x")
    assert started.acquire(timeout=TIMEOUT)

    pool.timed_out(job)
    assert pool.status()["timedOut"] == 1

    gate.set()
    await bounded(asyncio.wrap_future(job))
    assert pool.status()["timedOut"] == 0


def test_timed_out_call_still_waiting_for_a_thread_never_runs(pool, caplog):
    gate, started = threading.Event(), threading.Semaphore(0)
    ran = []
    with caplog.at_level(logging.WARNING, "squall.actions"):
        for _ in range(2):
            pool.submit(blocked(gate, started), None)
        waiting = pool.submit(ran.append, "should not run")
    pool.timed_out(waiting)
    gate.set()
    pool.shutdown()

    assert waiting.cancelled() and ran == []
    assert pool.status()["timedOut"] == 0


def test_saturation_warns_once_until_a_thread_is_free_again(pool, caplog):
    gate, started = threading.Event(), threading.Semaphore(0)
    with caplog.at_level(logging.WARNING, "squall.actions"):
        first = [pool.submit(blocked(gate, started), n) for n in range(5)]  # 3 wait
        assert len(caplog.records) == 1
        gate.set()
        for job in first:
            job.result(TIMEOUT)
        gate.clear()
        second = [pool.submit(blocked(gate, started), n) for n in range(3)]  # saturated again
        gate.set()
        for job in second:
            job.result(TIMEOUT)

    assert [r.getMessage() for r in caplog.records] == [
        "all 2 action threads are busy (0 of them still running past general.actionTimeout): "
        "plain-def actions now wait for a free thread; raise general.actionThreads or make the "
        "blocking actions return"
    ] * 2


async def test_processor_counts_a_plain_def_action_that_outlives_its_timeout(pool, caplog):
    """Hung plain-def calls keep their threads; status says so."""
    gate = threading.Event()

    def hangs(data):
        gate.wait(TIMEOUT)
        return {}

    processor = ActionProcessor(
        ActionRegistry([declared(hangs)]), [], MESSAGES, 5, timeout_ms=20, threads=pool
    )
    with caplog.at_level(logging.ERROR, "squall.actions"):
        result = await processor.process(socket_connection(), {"action": "hangs"})

    assert result.response == {"error": "the action timed out after 20 ms"}
    assert pool.status() == {"size": 2, "busy": 1, "waiting": 0, "timedOut": 1}
    gate.set()
