"""Public names: every ``__all__`` lists real, unique names; the package re-exports the same
objects its modules define, so ``from squall import X`` and ``from squall.mod import X`` are
one object."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

import pytest

import squall

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(squall.__path__, "squall.")
    # these need the optional redis package
    if info.name not in {"squall.redis_broker", "squall.redis_catchup", "squall.redis_subscriber"}
    or importlib.util.find_spec("redis") is not None
)


@pytest.mark.parametrize("name", MODULES)
def test_module_all_is_real_and_unique(name):
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        pytest.skip(f"{name} has no __all__")

    assert len(exported) == len(set(exported))
    assert [n for n in exported if not hasattr(module, n)] == []


def test_package_all_is_sorted_unique_and_real():
    assert squall.__all__ == sorted(squall.__all__)
    assert len(squall.__all__) == len(set(squall.__all__))
    assert [n for n in squall.__all__ if not hasattr(squall, n)] == []


def test_package_reexports_are_the_module_objects():
    for name in squall.__all__:
        value = getattr(squall, name)
        home = importlib.import_module(value.__module__) if hasattr(value, "__module__") else None
        if home is not None and home is not squall:
            assert getattr(home, name, value) is value, name
