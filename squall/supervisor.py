"""``--workers N``: N server processes on one port, kept alive, restarted one at a time.

Each worker is a full server (its own IOLoop; rooms and pushes shared through Redis) that binds
its own ``SO_REUSEPORT`` socket: the kernel spreads connections evenly over the workers, and a
new worker can listen beside the one it replaces. The supervisor (this process) never serves:

- **first boot**: starts N workers; if one exits before it is ready (listening), stops them all
  and fails: a broken config or action file would break every worker the same way;
- **a worker exits** (crash, ``kill -9``, or a clean exit nobody asked for): it is started again
  at once after a long life; after a delay doubling with each quick failure in a row
  (``RESTART_DELAYS``), said in the log, when it keeps dying young;
- **SIGHUP** (rolling restart, gunicorn's habit): for each worker in turn, start its successor,
  wait until that one listens, then stop the old one (SIGTERM: it finishes its actions and
  closes its sockets with 1001, so clients reconnect, to the new one) and wait for it to exit.
  The port is never without a listener. New workers load ``actions/`` afresh; the config and
  Squall's own code are the supervisor's (restart the whole server to change them). A
  successor that fails to start stops the roll; the old workers keep serving;
- **SIGINT or SIGTERM**: SIGTERM to every worker, wait for them to stop cleanly (SIGKILL past
  ``stop_timeout``), then return.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .backoff import Backoff

__all__ = ["MIN_LIFETIME", "RESTART_DELAYS", "supervise"]

log = logging.getLogger("squall.supervisor")

#: A worker that dies younger than this (or before it was ready) failed to start.
MIN_LIFETIME = 2.0
#: Restart delays after failed starts in a row: the first, and the longest (seconds).
RESTART_DELAYS = (0.5, 30.0)
#: How long a worker may take to become ready before it counts as failed.
READY_TIMEOUT = 60.0

#: ``run_worker(index, ready)``: serve until stopped, call ``ready()`` once listening; the
#: process's exit status.
RunWorker = Callable[[int, Callable[[], None]], int]


@dataclass(eq=False)
class Worker:
    slot: int
    pid: int
    ready_fd: int | None  # read end of the pipe the worker writes to once ready
    started: float
    ready: bool = False
    retiring: bool = False  # asked to stop: its exit is expected
    timed_out: bool = False  # not ready in time: killed


def supervise(
    workers: int,
    run_worker: RunWorker,
    stop_timeout: float = 30.0,
    ready_timeout: float = READY_TIMEOUT,
) -> int:
    """Run ``workers`` processes of ``run_worker`` until SIGINT or SIGTERM.

    Returns:
        0 when every worker stopped cleanly after a stop signal; the failed worker's status
        (else 1) when the first boot failed; 1 when a worker had to be killed or failed to stop.
    """
    return _Supervisor(workers, run_worker, stop_timeout, ready_timeout).run()


class _Supervisor:
    def __init__(
        self, workers: int, run_worker: RunWorker, stop_timeout: float, ready_timeout: float
    ) -> None:
        self.count = workers
        self.run_worker = run_worker
        self.stop_timeout = stop_timeout
        self.ready_timeout = ready_timeout
        self.by_pid: dict[int, Worker] = {}
        self.serving: dict[int, Worker] = {}  # slot -> its current worker
        self.delays = [Backoff(*RESTART_DELAYS) for _ in range(workers)]
        self.restart_at: dict[int, float] = {}  # slot -> when to start it again
        self.roll: list[int] = []  # slots still to replace in this rolling restart
        self.successor: Worker | None = None  # started by the roll, not ready yet
        self.predecessor: Worker | None = None  # replaced by the roll, not exited yet
        self.booting = True
        self.stopping = False
        self.kill_at: float | None = None
        self.status = 0
        self.signals: list[int] = []
        self.wake_fds: tuple[int, int] = (-1, -1)

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> int:
        wake_read, wake_write = self.wake_fds = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        previous = signal.set_wakeup_fd(wake_write)
        handled = (signal.SIGCHLD, signal.SIGHUP, signal.SIGINT, signal.SIGTERM)
        saved = {signum: signal.signal(signum, self._on_signal) for signum in handled}
        try:
            for slot in range(self.count):
                self.serving[slot] = self._spawn(slot)
            log.info("started %d workers: %s", self.count, _pids(self.serving.values()))
            while self.by_pid or (self.restart_at and not self.stopping):
                pipes = {w.ready_fd: w for w in self.by_pid.values() if w.ready_fd is not None}
                readable, _, _ = select.select([wake_read, *pipes], [], [], self._timeout())
                if wake_read in readable:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_read, 512)
                for fd in readable:
                    if fd in pipes:
                        self._on_pipe(pipes[fd])
                self._handle_signals()
                self._reap()
                self._on_time()
        finally:
            signal.set_wakeup_fd(previous)
            for signum, handler in saved.items():
                signal.signal(signum, handler)
            os.close(wake_read)
            os.close(wake_write)
        return self.status

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)  # handled in the loop, which the wakeup fd wakes

    def _handle_signals(self) -> None:
        signals, self.signals = self.signals, []
        for signum in signals:
            if signum in (signal.SIGINT, signal.SIGTERM):
                self._stop(f"{signal.Signals(signum).name}: stopping every worker")
            elif signum == signal.SIGHUP:
                self._start_roll()

    def _timeout(self) -> float | None:
        deadlines = list(self.restart_at.values())
        deadlines += [self._ready_deadline(w) for w in self.by_pid.values() if self._waited_for(w)]
        if self.kill_at is not None:
            deadlines.append(self.kill_at)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _waited_for(self, worker: Worker) -> bool:
        return not (worker.ready or worker.retiring or worker.timed_out)

    def _ready_deadline(self, worker: Worker) -> float:
        return worker.started + self.ready_timeout

    # -- workers -------------------------------------------------------------------------------

    def _spawn(self, slot: int) -> Worker:
        ready_read, ready_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(ready_read)
            code = 1
            try:
                self._become_worker()
                code = self.run_worker(slot, _ready_callback(ready_write))
            except Exception:
                log.exception("worker %d failed", slot)
            finally:
                os._exit(code)
        os.close(ready_write)
        worker = Worker(slot, pid, ready_read, time.monotonic())
        self.by_pid[pid] = worker
        return worker

    def _become_worker(self) -> None:
        """Undo the supervisor's signal handling in a new worker: it runs its own."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # meant for the supervisor
        for fd in self.wake_fds:
            os.close(fd)
        for other in self.by_pid.values():
            if other.ready_fd is not None:
                os.close(other.ready_fd)

    def _on_pipe(self, worker: Worker) -> None:
        data = os.read(worker.ready_fd, 64)
        os.close(worker.ready_fd)
        worker.ready_fd = None
        if not data:
            return  # it exited before it was ready: _reap reports it
        worker.ready = True
        if worker is self.successor:
            self._successor_ready(worker)
        elif self.booting and all(w.ready for w in self.serving.values()):
            self.booting = False
            log.info("%d workers ready", self.count)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.by_pid.pop(pid, None)
            if worker is not None:
                if worker.ready_fd is not None:
                    os.close(worker.ready_fd)
                    worker.ready_fd = None
                self._exited(worker, os.waitstatus_to_exitcode(status))

    def _exited(self, worker: Worker, code: int) -> None:
        lived = time.monotonic() - worker.started
        how = _describe(code)
        if self.serving.get(worker.slot) is worker:
            del self.serving[worker.slot]
        if worker is self.predecessor:
            self.predecessor = None
            log.info("worker %d (pid %d) replaced: it %s", worker.slot, worker.pid, how)
            self._roll_next()
            return
        if self.stopping or worker.retiring:
            # SIGTERM kills a worker still booting (its handlers are not installed yet): as
            # clean a stop as any, since the supervisor asked for it
            if code not in (0, -signal.SIGTERM) and self.status == 0:
                self.status = 1
            log.info("worker %d (pid %d) %s", worker.slot, worker.pid, how)
            return
        if worker is self.successor:
            self.successor = None
            self.roll.clear()
            log.error(
                "rolling restart stopped: the new worker %d (pid %d) %s before it was ready; "
                "the old one keeps serving",
                worker.slot,
                worker.pid,
                how,
            )
            return
        if self.booting and not worker.ready:
            self.status = code if code > 0 else 1
            self._stop(
                f"worker {worker.slot} (pid {worker.pid}) {how} before it was ready: "
                "stopping every worker"
            )
            return
        if self.successor is not None and self.successor.slot == worker.slot:
            log.error(
                "worker %d (pid %d) %s while its successor starts", worker.slot, worker.pid, how
            )
            return
        delays = self.delays[worker.slot]
        if lived >= MIN_LIFETIME and worker.ready:
            delays.reset()
            delay = 0.0
        else:
            delay = delays.next()
        level = logging.INFO if code == 0 else logging.ERROR
        when = f"in {delay:.1f} s (quick exits in a row: {delays.failures})" if delay else "now"
        log.log(
            level,
            "worker %d (pid %d) %s after %.1f s; starting it again %s",
            worker.slot,
            worker.pid,
            how,
            lived,
            when,
        )
        self.restart_at[worker.slot] = time.monotonic() + delay

    def _on_time(self) -> None:
        now = time.monotonic()
        for slot, due in list(self.restart_at.items()):
            if due <= now and not self.stopping:
                del self.restart_at[slot]
                self.serving[slot] = self._spawn(slot)
        for worker in list(self.by_pid.values()):
            if self._waited_for(worker) and now >= self._ready_deadline(worker):
                log.error(
                    "worker %d (pid %d) not ready after %.0f s: killing it",
                    worker.slot,
                    worker.pid,
                    self.ready_timeout,
                )
                worker.timed_out = True
                self._signal(worker, signal.SIGKILL)
        if self.kill_at is not None and now >= self.kill_at:
            self.kill_at = None
            for worker in self.by_pid.values():
                log.error(
                    "worker %d (pid %d) did not stop within %.0f s: killing it",
                    worker.slot,
                    worker.pid,
                    self.stop_timeout,
                )
                self._signal(worker, signal.SIGKILL)
            self.status = 1

    def _stop(self, why: str) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.restart_at.clear()
        self.roll.clear()
        log.log(logging.INFO if self.status == 0 else logging.ERROR, "%s", why)
        for worker in self.by_pid.values():
            self._signal(worker, signal.SIGTERM)
        self.kill_at = time.monotonic() + self.stop_timeout

    @staticmethod
    def _signal(worker: Worker, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signum)

    # -- rolling restart -----------------------------------------------------------------------

    def _start_roll(self) -> None:
        if self.stopping:
            return
        if self.roll or self.successor or self.predecessor:
            log.info("SIGHUP: a rolling restart is already under way")
            return
        self.roll = sorted(self.serving)
        log.info("SIGHUP: restarting %d workers one at a time", len(self.roll))
        self._roll_next()

    def _roll_next(self) -> None:
        while self.roll and not self.stopping:
            slot = self.roll.pop(0)
            current = self.serving.get(slot)
            if current is not None and current.ready:  # else it is (re)starting anyway
                self.successor = self._spawn(slot)
                return
        if not self.stopping and not self.successor:
            log.info("rolling restart done: workers %s", _pids(self.serving.values()))

    def _successor_ready(self, worker: Worker) -> None:
        self.successor = None
        old = self.serving.get(worker.slot)
        self.serving[worker.slot] = worker
        if old is None:
            self._roll_next()
            return
        log.info("worker %d: pid %d is ready; stopping pid %d", worker.slot, worker.pid, old.pid)
        old.retiring = True
        self.predecessor = old
        self._signal(old, signal.SIGTERM)


def _ready_callback(fd: int) -> Callable[[], None]:
    """What a worker calls once it listens: tells the supervisor, once."""
    told = False

    def ready() -> None:
        nonlocal told
        if not told:
            told = True
            with contextlib.suppress(OSError):
                os.write(fd, b"ready")
            os.close(fd)

    return ready


def _pids(workers: Iterable[Worker]) -> str:
    return ", ".join(str(worker.pid) for worker in workers)


def _describe(code: int) -> str:
    if code == 0:
        return "exited cleanly"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"
