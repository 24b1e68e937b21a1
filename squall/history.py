"""A room's history: numbered messages kept by count and by age, and recovery (PROTOCOL.md §9).

Every say in a room with history gets the next ``offset`` (1, 2, 3... no gaps) and the room's
``epoch``, a random string that names this numbering: when the history is lost (the room
destroyed and made again, the process or the Redis that held it restarted) the numbering starts
again under a new epoch, so a client's old offset can never be mistaken for a new one.

:class:`RoomHistory` keeps a room's history in memory (the memory broker's). The Redis broker
keeps it in Redis and reads it back as ``(offset, frame)`` pairs; both answer through
:func:`recover`, so the rule of what was recovered is written once.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from . import codec

__all__ = ["Kept", "Recovery", "RoomHistory", "new_epoch", "recover"]


def new_epoch() -> str:
    """A fresh epoch: 12 random hex digits."""
    return secrets.token_hex(6)


@dataclass(frozen=True)
class Kept:
    """What a room's history holds: its ``epoch``, its last ``offset`` (0 before the first
    message) and the kept say ``frames`` asked for, oldest first, as they were pushed."""

    epoch: str | None
    offset: int
    frames: Sequence[bytes]

    def messages(self) -> list[dict[str, Any]]:
        return [codec.loads(frame) for frame in self.frames]


#: A room without history: no epoch, no offset, no messages.
NO_HISTORY = Kept(None, 0, ())


@dataclass(frozen=True)
class Recovery:
    """The answer to ``roomAdd`` with ``since``: what was ``kept`` after the client's offset and
    whether that is ``recovered``, exactly everything it missed."""

    recovered: bool
    kept: Kept

    def reply(self) -> dict[str, Any]:
        """The ``data`` of the roomAdd reply (§2.1)."""
        return {
            "recovered": self.recovered,
            "messages": self.kept.messages(),
            "offset": self.kept.offset,
            "epoch": self.kept.epoch,
        }


def recover(
    since_offset: int,
    since_epoch: str,
    epoch: str | None,
    top: int,
    kept_after: Iterable[tuple[int, bytes]],
) -> Recovery:
    """Decide a recovery from what the history holds.

    Args:
        since_offset, since_epoch: the last message the client saw.
        epoch, top: the room's epoch and last offset now.
        kept_after: the kept ``(offset, frame)`` pairs after ``since_offset``, oldest first,
            expired ones left out; all kept pairs when ``since_epoch`` is not ``epoch``.

    A client of another epoch missed an unknown number of messages: it gets every kept one of
    this epoch and ``recovered`` false. One of this epoch recovered when nothing after its
    offset was dropped, that is when as many messages are kept after it as were said after it.
    """
    frames = [frame for _, frame in kept_after]
    if since_epoch != epoch or since_offset > top:
        return Recovery(False, Kept(epoch, top, frames if since_epoch != epoch else []))
    return Recovery(len(frames) == top - since_offset, Kept(epoch, top, frames))


class RoomHistory:
    """The last ``size`` messages of one room, each kept ``ttl_ms`` milliseconds, in memory.

    Args:
        size: how many messages are kept (at least 1).
        ttl_ms: how long each is kept.
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, size: int, ttl_ms: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl = ttl_ms / 1000
        self.epoch = new_epoch()
        self.top = 0
        self._clock = clock
        self._kept: deque[tuple[int, float, bytes]] = deque()  # (offset, expires at, frame)

    def append(self, payload: dict[str, Any]) -> bytes:
        """Number ``payload`` (it gets ``offset`` and ``epoch``), keep it; its encoded frame."""
        self.top += 1
        payload["offset"] = self.top
        payload["epoch"] = self.epoch
        frame = codec.dumps(payload)
        self._kept.append((self.top, self._clock() + self.ttl, frame))
        if len(self._kept) > self.size:
            self._kept.popleft()
        return frame

    def since(self, offset: int, epoch: str) -> Recovery:
        """What a client that last saw ``offset`` of ``epoch`` missed (see :func:`recover`)."""
        self._expire()
        after = offset if epoch == self.epoch else 0
        kept = [(n, frame) for n, _, frame in self._kept if n > after]
        return recover(offset, epoch, self.epoch, self.top, kept)

    def last(self, limit: int) -> Kept:
        """The last ``limit`` kept messages, oldest first."""
        self._expire()
        frames = [frame for _, _, frame in self._kept]
        return Kept(self.epoch, self.top, frames[-limit:] if limit < len(frames) else frames)

    def _expire(self) -> None:
        now = self._clock()
        while self._kept and self._kept[0][1] <= now:
            self._kept.popleft()
