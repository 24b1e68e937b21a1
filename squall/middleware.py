"""Middleware declarations: around actions, around connections, around chat.

Declare them as module-level objects in any file under ``actions/``; the loader finds them::

    from squall import ActionMiddleware, ChatMiddleware

    def require_token(data):
        if data.params.get("token") != "s3cret":
            raise PermissionError("a valid token is required")

    auth = ActionMiddleware(name="auth", pre=require_token)   # for actions that name it

    def members_only(connection, room):
        if room == "vip" and not connection.session.get("vip"):
            raise PermissionError("vip members only")

    vip = ChatMiddleware(name="vip", join=members_only)

Hooks may be plain functions or coroutines. They run in ascending ``priority`` (default 100; ties
keep load order). Raising blocks: an error raised on purpose (``ActionError`` and its kinds,
``PermissionError``) is the caller's error; any other exception is a bug, logged and answered as
PROTOCOL.md §3 says. What each hook is called with is checked at boot (:meth:`problems`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from .signatures import call_problem

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


class _Declared:
    """What every kind of middleware checks about itself at boot."""

    #: Each hook's name and the arguments Squall calls it with.
    HOOKS: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: How the loader names this kind in its errors.
    KIND: ClassVar[str] = ""

    def problems(self) -> list[str]:
        """What is wrong with this declaration, as sentences; empty when it is usable."""
        name = getattr(self, "name", None)
        if not isinstance(name, str) or not name:
            return [f"{self.KIND}: name must be a non-empty string, got {name!r}"]
        found = []
        priority = getattr(self, "priority", None)
        if isinstance(priority, bool) or not isinstance(priority, (int, float)):
            found.append(f"{self.KIND} {name!r}: priority must be a number, got {priority!r}")
        for hook, params in self.HOOKS.items():
            value = getattr(self, hook)
            problem = None if value is None else call_problem(value, params)
            if problem is not None:
                found.append(f"{self.KIND} {name!r}: {hook} {problem}")
        return found


@dataclass(frozen=True)
class ActionMiddleware(_Declared):
    """Runs before (``pre(data)``) and after (``post(data)``) actions.

    By default it wraps only the actions that name it in their ``middleware`` (as ActionHero's
    ``global: false``): a new auth check cannot lock every action, ``status`` included, by
    accident. ``is_global=True`` wraps every action. ``pre`` may raise to stop the action (its
    error becomes the reply's); ``post`` sees ``data.response`` and may change it.
    """

    HOOKS: ClassVar[dict[str, tuple[str, ...]]] = {"pre": ("data",), "post": ("data",)}
    KIND: ClassVar[str] = "action middleware"

    name: str
    pre: Hook = None
    post: Hook = None
    priority: int = 100
    is_global: bool = False


@dataclass(frozen=True)
class ConnectionMiddleware(_Declared):
    """Runs when a connection is created (``create(connection)``) and destroyed.

    A ``create`` that raises refuses the connection: a socket is closed with 4001 and the error
    text as the reason (PROTOCOL.md §6).
    """

    HOOKS: ClassVar[dict[str, tuple[str, ...]]] = {
        "create": ("connection",),
        "destroy": ("connection",),
    }
    KIND: ClassVar[str] = "connection middleware"

    name: str
    create: Hook = None
    destroy: Hook = None
    priority: int = 100


@dataclass(frozen=True)
class ChatMiddleware(_Declared):
    """Runs around rooms (PROTOCOL.md §5).

    - ``join(connection, room)`` and ``leave(connection, room)`` may raise to block;
    - ``on_say_receive(connection, room, payload)`` runs once, where the message was said, and
      returns the payload to broadcast (changed or not) or None to drop it;
    - ``say(connection, room, payload)`` runs once per recipient (``connection`` is the
      recipient) and returns that recipient's copy, or None to skip them.
    """

    HOOKS: ClassVar[dict[str, tuple[str, ...]]] = {
        "join": ("connection", "room"),
        "leave": ("connection", "room"),
        "on_say_receive": ("connection", "room", "payload"),
        "say": ("connection", "room", "payload"),
    }
    KIND: ClassVar[str] = "chat middleware"

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
