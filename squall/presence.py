"""Presence frames: who joined a room, who left it and why (PROTOCOL.md §8).

A presence frame is built and encoded once where the membership changed, published like a
room message, and the very same bytes are written to every member of the room on every server:
a join or leave in a room of N members costs N writes of one frame. It names the member by its
connection id and carries its public ``info`` (what its join middleware returned), never its
fingerprint or its session.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DESTROYED",
    "DISCONNECTED",
    "LEFT",
    "PRESENCE_PREFIX",
    "SERVER_LOST",
    "join_frame",
    "leave_frame",
]

#: Why a member left: it asked (``roomLeave``), its connection closed, the room was destroyed,
#: or the server that held it stopped renewing its lease (reaped by another server).
LEFT = "left"
DISCONNECTED = "disconnected"
DESTROYED = "destroyed"
SERVER_LOST = "server lost"

#: How every encoded presence frame starts (its first key is ``context``): a delivery tells a
#: presence frame from a room message without decoding it.
PRESENCE_PREFIX = b'{"context":"presence"'


def join_frame(room: str, member: str, joined_at: int, info: Any = None) -> dict[str, Any]:
    """``member`` joined ``room`` at ``joined_at`` (ms); ``info`` shown when it has any."""
    frame = {
        "context": "presence",
        "event": "join",
        "room": room,
        "id": member,
        "joinedAt": joined_at,
    }
    if info is not None:
        frame["info"] = info
    return frame


def leave_frame(room: str, member: str, reason: str) -> dict[str, Any]:
    """``member`` left ``room``; ``reason`` is one of the four above."""
    return {"context": "presence", "event": "leave", "room": room, "id": member, "reason": reason}
