"""``--workers N``: N server processes sharing one listening socket, kept alive.

The parent binds the port, forks the workers (each a full server with its own IOLoop, sharing
rooms and pushes through Redis), restarts any that dies unexpectedly, and on SIGINT or SIGTERM
forwards the signal to every worker and waits for them to stop cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable

__all__ = ["supervise"]

log = logging.getLogger("squall.supervisor")

#: A worker dying this soon after it started failed to start: the whole server stops.
MIN_LIFETIME = 2.0


def supervise(workers: int, run_worker: Callable[[int], int]) -> int:
    """Fork ``workers`` processes running ``run_worker(index)``; return when all have stopped.

    Returns 0 when every worker stopped cleanly after a stop signal, else 1.
    """
    children: dict[int, tuple[int, float]] = {}
    stopping = False

    def start(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            code = 1
            try:
                code = run_worker(index)
            finally:
                os._exit(code)
        children[pid] = (index, time.monotonic())

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for index in range(workers):
        start(index)
    log.info("started %d workers: %s", workers, ", ".join(map(str, children)))

    failed = False
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index, started = children.pop(pid, (None, 0.0))
        if index is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            failed = failed or code != 0
            continue
        if time.monotonic() - started < MIN_LIFETIME:
            log.error("worker %d (pid %d) failed to start (exit %d); stopping", index, pid, code)
            forward(signal.SIGTERM, None)
            failed = True
            continue
        log.error("worker %d (pid %d) exited with %d; restarting it", index, pid, code)
        start(index)
    return 1 if failed else 0
