"""What a server keeps for Redis while Redis cannot take it: nothing is lost silently.

Two kinds of things wait, and they wait differently:

- :class:`Outbox`: messages for the other servers (room messages, pushes), in the order they
  were said. They cannot be merged or recomputed, so they are kept as they are, up to a bound in
  messages and in bytes; past it the sender gets an error instead of an OK that delivers nothing.
- :class:`Journal`: changes to this server's share of the cluster state (its memberships, its
  connections, rooms it created). Only the latest change of each key matters, so the journal
  stays as small as the state itself however long the outage lasts, and a write that failed is
  simply written again.

Both are plain data structures with no I/O: the Redis broker decides when to drain them.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Hashable
from typing import Any

__all__ = ["Journal", "Outbox"]


class Outbox:
    """A FIFO of ``(channel, body)`` bounded by ``max_messages`` and ``max_bytes`` (body bytes)."""

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.bytes = 0
        self._queue: deque[tuple[str, bytes]] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def refusal(self, size: int) -> str | None:
        """Why a body of ``size`` bytes cannot be kept now, or None when it fits."""
        if len(self._queue) >= self.max_messages:
            return f"{len(self._queue)} messages already wait for it (redis.outboxSize)"
        if self.bytes + size > self.max_bytes:
            return (
                f"{len(self._queue)} messages of {self.bytes} bytes already wait for it and "
                f"this one has {size} (redis.outboxBytes: {self.max_bytes})"
            )
        return None

    def append(self, channel: str, body: bytes) -> None:
        """Keep a message; the caller checked :meth:`refusal` first.

        Raises:
            OverflowError: it does not fit (a bug in the caller).
        """
        why = self.refusal(len(body))
        if why is not None:
            raise OverflowError(why)
        self._queue.append((channel, body))
        self.bytes += len(body)

    def peek(self, max_messages: int, max_bytes: int) -> list[tuple[str, bytes]]:
        """The oldest messages, at most ``max_messages`` and about ``max_bytes`` (at least one)."""
        batch: list[tuple[str, bytes]] = []
        size = 0
        for channel, body in itertools.islice(self._queue, max_messages):
            if batch and size + len(body) > max_bytes:
                break
            batch.append((channel, body))
            size += len(body)
        return batch

    def drop(self, count: int) -> None:
        """Forget the ``count`` oldest messages (they were sent)."""
        for _ in range(min(count, len(self._queue))):
            _, body = self._queue.popleft()
            self.bytes -= len(body)


class Journal:
    """Changes not yet confirmed by Redis, coalesced by key: the latest change of a key wins.

    Every change gets a sequence number. A writer takes a :meth:`snapshot`, writes it, then
    :meth:`confirm`\\ s its sequence number: the changes it wrote are dropped, unless a newer change
    of the same key came meanwhile (that one stays pending). ``confirmed`` tells a caller whether
    its own change (by sequence number) has reached Redis, or was superseded by one that has.
    """

    def __init__(self) -> None:
        self._changes: dict[Hashable, tuple[int, Any]] = {}
        self._last = 0
        self.confirmed = 0

    def __len__(self) -> int:
        return len(self._changes)

    def record(self, key: Hashable, value: Any) -> int:
        """Note that ``key`` is now ``value``; returns the change's sequence number."""
        self._last += 1
        self._changes[key] = (self._last, value)
        return self._last

    def forget(self, key: Hashable) -> None:
        """Drop what is pending for ``key``: a full write-back will reconcile it instead."""
        self._changes.pop(key, None)

    def snapshot(self) -> tuple[int, dict[Hashable, Any]]:
        """``(sequence number of the latest change, {key: latest value})`` of what is pending."""
        return self._last, {key: value for key, (_, value) in self._changes.items()}

    def confirm(self, upto: int) -> None:
        """Redis has every change up to sequence number ``upto``."""
        self._changes = {k: change for k, change in self._changes.items() if change[0] > upto}
        self.confirmed = max(self.confirmed, upto)
