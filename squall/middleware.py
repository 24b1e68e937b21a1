"""Middleware declarations: around actions, around connections, around chat.

Declare them as module-level objects in any file under ``actions/``; the loader finds them::

    from squall import ActionMiddleware, ChatMiddleware

    def require_token(data):
        if data.params.get("token") != "s3cret":
            raise PermissionError("a valid token is required")

    auth = ActionMiddleware(name="auth", pre=require_token, is_global=False)

    def members_only(connection, room):
        if room == "vip" and not connection.session.get("vip"):
            raise PermissionError("vip members only")

    vip = ChatMiddleware(name="vip", join=members_only)

Hooks may be plain functions or coroutines. They run in ascending ``priority`` (default 100; ties
keep load order). Raising blocks: the caller sees the exception's message as its error.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "ActionMiddleware",
    "ChatMiddleware",
    "ConnectionMiddleware",
    "by_priority",
    "resolve",
]

Hook = Callable[..., Any] | None


async def resolve(value: Any) -> Any:
    """Await ``value`` when a hook returned an awaitable, so hooks may be sync or async."""
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass(frozen=True)
class ActionMiddleware:
    """Runs before (``pre(data)``) and after (``post(data)``) actions.

    A global one wraps every action; one with ``is_global=False`` wraps only the actions that
    name it in their ``middleware``. ``pre`` may raise to stop the action (its message becomes
    the reply's error); ``post`` sees ``data.response`` and may change it.
    """

    name: str
    pre: Hook = None
    post: Hook = None
    priority: int = 100
    is_global: bool = True


@dataclass(frozen=True)
class ConnectionMiddleware:
    """Runs when a connection is created (``create(connection)``) and destroyed.

    A ``create`` that raises refuses the connection: a socket is closed with 4001 and the error
    text as the reason (PROTOCOL.md §6).
    """

    name: str
    create: Hook = None
    destroy: Hook = None
    priority: int = 100


@dataclass(frozen=True)
class ChatMiddleware:
    """Runs around rooms (PROTOCOL.md §5).

    - ``join(connection, room)`` and ``leave(connection, room)`` may raise to block;
    - ``on_say_receive(connection, room, payload)`` runs once, where the message was said, and
      returns the payload to broadcast (changed or not) or None to drop it;
    - ``say(connection, room, payload)`` runs once per recipient (``connection`` is the
      recipient) and returns that recipient's copy, or None to skip them.
    """

    name: str
    join: Hook = None
    leave: Hook = None
    on_say_receive: Hook = None
    say: Hook = None
    priority: int = 100


M = TypeVar("M", ActionMiddleware, ConnectionMiddleware, ChatMiddleware)


def by_priority(middleware: Iterable[M]) -> list[M]:
    """Sort ascending by priority; Python's sort is stable, so ties keep declaration order."""
    return sorted(middleware, key=lambda m: m.priority)


def hooks(middleware: Sequence[Any], attribute: str) -> tuple[Callable[..., Awaitable[Any]], ...]:
    """The non-empty hooks named ``attribute``, in priority order, for a hot loop to call."""
    return tuple(getattr(m, attribute) for m in middleware if getattr(m, attribute) is not None)
