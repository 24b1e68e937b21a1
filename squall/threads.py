"""The threads that run plain-def actions, and what ``status`` says about them.

A plain ``def`` action runs in a thread so it may block. A thread cannot be stopped from
outside: an action past ``general.actionTimeout`` gets its error reply at once, but its thread
runs on until the function returns, and holds its place in the pool meanwhile. Enough of those
(a hung database call, ten times) and every other plain-def action waits for a thread, and
times out too. So the pool's size is a setting (``general.actionThreads``), ``status`` counts the
threads still running past their timeout, and a warning is logged, once each time it happens,
when every thread is busy and calls start to wait.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .metrics import MeteredExecutor

__all__ = ["ActionThreads"]

log = logging.getLogger("squall.actions")


class ActionThreads:
    """A fixed pool of ``size`` threads for plain-def actions.

    Counters change from worker threads (a call finishing) and from the loop (a call submitted
    or timed out), so they are kept under a lock.
    """

    def __init__(self, size: int, name: str = "squall-action") -> None:
        self.size = size
        self._pool = MeteredExecutor(name, max_workers=size)
        self._lock = threading.Lock()
        self._unfinished = 0  # submitted and not finished: running, or waiting for a thread
        self._timed_out: set[Future[Any]] = set()  # running past their action's timeout
        self._saturated = False

    def submit(self, fn: Callable[[Any], Any], argument: Any) -> Future[Any]:
        """Run ``fn(argument)`` in a thread; warn if it has to wait for one."""
        with self._lock:
            self._unfinished += 1
            starts_saturation = self._unfinished > self.size and not self._saturated
            if starts_saturation:
                self._saturated = True
            timed_out = len(self._timed_out)
        if starts_saturation:
            log.warning(
                "all %d action threads are busy (%d of them still running past "
                "general.actionTimeout): plain-def actions now wait for a free thread; raise "
                "general.actionThreads or make the blocking actions return",
                self.size,
                timed_out,
            )
        job = self._pool.submit(fn, argument)
        job.add_done_callback(self._finished)
        return job

    def timed_out(self, job: Future[Any]) -> None:
        """``job``'s action timed out: a call still waiting for a thread never runs; one that
        runs is counted until its function returns."""
        if job.cancel():
            return
        with self._lock:
            if not job.done():
                self._timed_out.add(job)

    def _finished(self, job: Future[Any]) -> None:
        """A call ended (or was cancelled before it ran); called from its thread."""
        with self._lock:
            self._unfinished -= 1
            self._timed_out.discard(job)
            if self._unfinished < self.size:
                self._saturated = False  # a thread is free: the next saturation warns again

    @property
    def busy(self) -> int:
        """Threads running an action right now (the metrics' ``pool_busy``)."""
        return self._pool.busy

    def status(self) -> dict[str, int]:
        """For ``status``: ``size``, ``busy`` threads, calls ``waiting`` for one, and how many
        threads are still running an action that already timed out (``timedOut``)."""
        with self._lock:
            unfinished, timed_out = self._unfinished, len(self._timed_out)
        busy = self._pool.busy
        return {
            "size": self.size,
            "busy": busy,
            "waiting": max(0, unfinished - busy),
            "timedOut": timed_out,
        }

    def shutdown(self) -> None:
        """Stop taking calls; threads still running are left to finish (they cannot be killed)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
