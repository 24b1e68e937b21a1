"""Middleware declarations: ordering by priority (stable for ties), hooks lists, sync or async
hook results."""

from __future__ import annotations

import pytest

from squall import ActionMiddleware, ChatMiddleware, ConnectionMiddleware
from squall.middleware import by_priority, hooks, resolve


def test_by_priority_ascending_and_stable():
    declared = [
        ActionMiddleware("c", priority=100),
        ActionMiddleware("a", priority=5),
        ActionMiddleware("d", priority=100),
        ActionMiddleware("b", priority=5),
        ActionMiddleware("e", priority=-1),
    ]

    assert [m.name for m in by_priority(declared)] == ["e", "a", "b", "c", "d"]


def test_default_priorities_and_flags():
    assert ActionMiddleware("a").priority == 100
    assert ActionMiddleware("a").is_global is False  # opt-in, as ActionHero's global: false
    assert ConnectionMiddleware("c").priority == 100
    assert ChatMiddleware("r").priority == 100


def test_hooks_keeps_only_declared_hooks_in_order():
    def first(c, r):
        return None

    def second(c, r):
        return None

    ordered = [
        ChatMiddleware("a", join=first),
        ChatMiddleware("b", leave=second),
        ChatMiddleware("c", join=second),
    ]

    assert hooks(ordered, "join") == (first, second)
    assert hooks(ordered, "leave") == (second,)
    assert hooks(ordered, "say") == ()


async def test_resolve_plain_and_awaitable_values():
    async def later():
        return "async"

    assert await resolve("plain") == "plain"
    assert await resolve(None) is None
    assert await resolve(later()) == "async"


def test_middleware_is_immutable():
    middleware = ActionMiddleware("a")

    with pytest.raises(AttributeError):
        middleware.priority = 1  # type: ignore[misc]
