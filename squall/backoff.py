"""Exponential backoff: how long to wait before the next attempt at something that failed.

Shared by the Redis broker (reconnecting, retrying writes) and the worker supervisor
(restarting a worker that keeps dying), so every retry loop in Squall grows and caps the same way.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """Delays of ``base``, ``2 * base``, ``4 * base`` ... up to ``cap`` seconds; ``reset()``
    after a success starts again from ``base``.

    Args:
        base: the first delay, in seconds.
        cap: no delay is longer than this.
        jitter: draw each delay uniformly from ``[delay / 2, delay]`` so that many processes
            retrying after the same outage do not all knock at the same instant.
        rand: the random source (``random.random``); tests pass their own.
    """

    def __init__(
        self,
        base: float,
        cap: float,
        jitter: bool = False,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base}, cap={cap}")
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self._rand = rand
        self.failures = 0

    def next(self) -> float:
        """Count one more failure and return the delay before the next attempt."""
        delay = min(self.cap, self.base * 2 ** min(self.failures, 64))
        self.failures += 1
        if self.jitter:
            delay *= 0.5 + self._rand() / 2
        return delay

    def reset(self) -> None:
        self.failures = 0
