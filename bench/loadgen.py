"""The parent side of the load generator: a pool of forked worker processes and their commands.

Workers (bench.workers) each hold a share of the connections; the parent sends every command to all
of them and gathers the replies, with a deadline on each so a stuck server cannot hang the run.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import resource
import time
from typing import Any

from bench.limits import MAX_PROCS, MAX_WALL_S, require_loopback
from bench.workers import Target, worker_main


class LoadError(RuntimeError):
    """A worker failed or missed its deadline; the message says which and why."""


def split(total: int, parts: int) -> list[int]:
    """Divide ``total`` into ``parts`` shares that differ by at most one."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def raise_fd_limit() -> None:
    """Lift the soft open-files limit to the hard one; forked workers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class LoadGenerator:
    """``procs`` worker processes aimed at ``target``. Use as a context manager."""

    def __init__(self, target: Target, procs: int = 1) -> None:
        require_loopback(target.host)
        raise_fd_limit()
        self.procs = max(1, min(procs, MAX_PROCS))
        self.started = time.monotonic()
        ctx = mp.get_context("fork")
        self._pipes = []
        self._workers = []
        for index in range(self.procs):
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(index, target, child_end), daemon=True)
            proc.start()
            child_end.close()
            self._pipes.append(parent_end)
            self._workers.append(proc)

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, name: str, shares: list[dict] | None = None, **common: Any) -> None:
        """Send ``name`` to every worker: ``common`` args plus its own ``shares`` entry."""
        for index, pipe in enumerate(self._pipes):
            args = dict(common)
            if shares is not None:
                args.update(shares[index])
            pipe.send((name, args))

    def collect(self, name: str, timeout: float) -> list[dict]:
        """The workers' results for the last command, in worker order.

        Raises LoadError on a worker error or when ``timeout`` seconds (capped by the run's overall
        wall limit) pass without all replies; the workers are killed then.
        """
        deadline = min(time.monotonic() + timeout, self.started + MAX_WALL_S)
        results = []
        for index, pipe in enumerate(self._pipes):
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                self.kill()
                raise LoadError(f"worker {index}: no reply to {name!r} within {timeout:.0f} s")
            status, value = pipe.recv()
            if status != "ok":
                self.kill()
                raise LoadError(value)
            results.append(value)
        return results

    def command(
        self, name: str, timeout: float, shares: list[dict] | None = None, **common: Any
    ) -> list[dict]:
        """``send`` then ``collect``: for commands with nothing to measure while they run."""
        self.send(name, shares, **common)
        return self.collect(name, timeout)

    def close(self) -> None:
        """Ask workers to close their connections and exit; kill any that do not."""
        if any(w.is_alive() for w in self._workers):
            with contextlib.suppress(LoadError, OSError):
                self.command("close", timeout=15)
        self.kill()

    def kill(self) -> None:
        """Stop the workers now (only the processes this generator forked)."""
        for proc in self._workers:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=2)
