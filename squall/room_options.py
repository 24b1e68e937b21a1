"""What a room is created with: presence and history (PROTOCOL.md §5, §8, §9).

A room's options are given as a map, ``{"presence": true, "history": {"size": 50, "ttl":
600000}}``: the value of the room in ``general.startingChatRooms``, the ``options`` of
``rooms.add(name, options)``, or what a client asks ``createChatRoom`` for. Each key left out
takes its value from ``general.roomDefaults``. :func:`parse_room_options` checks such a map and
says exactly which key is wrong and why; a room keeps its options for its whole life.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRoomOptions, kind_of

__all__ = [
    "DEFAULT_OPTIONS",
    "HISTORY_MAX_SIZE",
    "HISTORY_MIN_TTL",
    "RoomOptions",
    "parse_room_options",
]

#: The most messages a room may keep (its history is read whole by a recovery).
HISTORY_MAX_SIZE = 10_000
#: The shortest time a room keeps a message, in milliseconds.
HISTORY_MIN_TTL = 1000


@dataclass(frozen=True)
class RoomOptions:
    """A room's options, complete.

    Attributes:
        presence: members are told of every join and leave (§8).
        history_size: how many of the last messages are kept (§9); 0: no history, no offsets.
        history_ttl: how long, in milliseconds, a kept message stays.
    """

    presence: bool = False
    history_size: int = 0
    history_ttl: int = 600_000

    @property
    def history(self) -> bool:
        """True when says are numbered and kept."""
        return self.history_size > 0

    def as_dict(self) -> dict[str, Any]:
        """The map these options are written as (the broker stores it)."""
        return {
            "presence": self.presence,
            "history": {"size": self.history_size, "ttl": self.history_ttl},
        }

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> RoomOptions:
        """Options as :meth:`as_dict` wrote them (read back from the broker)."""
        history = stored.get("history") or {}
        return cls(
            presence=bool(stored.get("presence")),
            history_size=int(history.get("size", 0)),
            history_ttl=int(history.get("ttl", cls.history_ttl)),
        )


#: No presence, no history: what a room gets when ``general.roomDefaults`` is left alone.
DEFAULT_OPTIONS = RoomOptions()


def parse_room_options(
    given: Any,
    defaults: RoomOptions = DEFAULT_OPTIONS,
    max_size: int = HISTORY_MAX_SIZE,
    max_ttl: int | None = None,
) -> RoomOptions:
    """``defaults`` with what ``given`` sets (a map, or None for nothing) over them.

    ``max_size`` and ``max_ttl`` bound what may be asked for (``createChatRoom`` bounds a
    client's rooms tighter than the configuration's).

    Raises:
        InvalidRoomOptions: naming the key (``history.size``) and what it expects.
    """
    if given is None:
        return defaults
    if isinstance(given, RoomOptions):
        return given
    if not isinstance(given, Mapping):
        raise InvalidRoomOptions(
            "", f"expected a map of presence and history, got {kind_of(given)}"
        )
    for key in given:
        if key not in ("presence", "history"):
            raise InvalidRoomOptions(str(key), "unknown room option (known: presence, history)")
    presence = given.get("presence", defaults.presence)
    if not isinstance(presence, bool):
        raise InvalidRoomOptions("presence", f"expected true or false, got {kind_of(presence)}")
    history = given.get("history")
    if history is None:
        history = {}
    if not isinstance(history, Mapping):
        raise InvalidRoomOptions(
            "history", f"expected a map of size and ttl, got {kind_of(history)}"
        )
    for key in history:
        if key not in ("size", "ttl"):
            raise InvalidRoomOptions(f"history.{key}", "unknown history option (known: size, ttl)")
    size = _integer(history, "size", defaults.history_size, 0, max_size)
    ttl = _integer(history, "ttl", defaults.history_ttl, HISTORY_MIN_TTL, max_ttl)
    return RoomOptions(presence=presence, history_size=size, history_ttl=ttl)


def _integer(history: Mapping[str, Any], key: str, default: int, low: int, high: int | None) -> int:
    if key not in history:
        return default  # the configuration's own, checked when it was loaded
    value = history[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise InvalidRoomOptions(
            f"history.{key}", f"expected an integer {bound}, got {kind_of(value)}"
        )
    return value
