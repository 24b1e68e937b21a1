"""A watchdog that names the action blocking the event loop.

An ``async def`` action that calls something blocking (``time.sleep``, a slow library, a tight
loop) stops the whole server: every other client waits. The loop stamps a heartbeat a few times
per threshold; a daemon thread checks it, and when the loop has been silent longer than
``general.blockedLoopWarning`` it looks at the loop thread's stack and logs one warning naming
the action found there, with the file and line it is stuck on.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Iterable
from types import CodeType, FrameType

from .actions import Action

__all__ = ["LoopWatchdog"]

log = logging.getLogger("squall.watchdog")


class LoopWatchdog:
    """Warns once per stall when the loop is blocked for more than ``threshold_ms``.

    Its heartbeat also measures the loop's lag (how late a timer runs): :meth:`take_lag` gives
    the worst since the last call, for the metrics.
    """

    def __init__(self, threshold_ms: int, actions: Iterable[Action]) -> None:
        self.threshold = threshold_ms / 1000
        self._codes: dict[CodeType, str] = {}
        for declared in actions:
            code = getattr(declared.run, "__code__", None)
            if code is not None:
                self._codes[code] = declared.name
        self._last_beat = time.monotonic()
        self._worst_lag = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread_id = 0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loop_thread_id = threading.get_ident()
        self._beat()
        self._thread = threading.Thread(target=self._watch, name="squall-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def take_lag(self) -> float:
        """The largest lateness of a heartbeat since the last call, in seconds."""
        worst, self._worst_lag = self._worst_lag, 0.0
        return worst

    def _beat(self) -> None:
        now = time.monotonic()
        if self._timer is not None:
            late = now - self._last_beat - self.threshold / 4
            if late > self._worst_lag:
                self._worst_lag = late
        self._last_beat = now
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.threshold / 4, self._beat)

    def _watch(self) -> None:
        reported_beat = None
        while not self._stop.wait(self.threshold / 4):
            beat = self._last_beat
            stalled = time.monotonic() - beat
            if stalled > self.threshold and beat != reported_beat:
                reported_beat = beat
                self._report(stalled)

    def _report(self, stalled: float) -> None:
        frame = sys._current_frames().get(self._loop_thread_id)
        name, where = self._culprit(frame)
        if name:
            log.warning(
                "blocked loop: action %s has blocked the event loop for %d ms (at %s); "
                "make it non-blocking or declare it as a plain def to run it in a thread",
                name,
                stalled * 1000,
                where,
            )
        else:
            log.warning(
                "blocked loop: the event loop has been blocked for %d ms (at %s)",
                stalled * 1000,
                where,
            )

    def _culprit(self, frame: FrameType | None) -> tuple[str | None, str]:
        innermost = frame
        while frame is not None:
            name = self._codes.get(frame.f_code)
            if name is not None:
                return name, f"{innermost.f_code.co_filename}:{innermost.f_lineno}"
            frame = frame.f_back
        if innermost is None:
            return None, "unknown"
        return None, f"{innermost.f_code.co_filename}:{innermost.f_lineno}"
