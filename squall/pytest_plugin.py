"""The pytest plugin Squall installs (entry point ``pytest11``): the ``squall`` fixture.

``squall`` is a started :class:`squall.testing.Harness` of the project pytest runs in (its
rootdir, or the ``squall_root`` ini option), in the ``test`` environment (``squall_env``); one per
test, stopped after it::

    async def test_hello(squall):
        reply = await squall.run("hello", {"name": "Ada"})
        assert reply.status == 200

The fixture is async: it needs pytest-asyncio (``pip install 'squall[test]'``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .testing import Harness

__all__ = ["pytest_addoption", "squall"]

try:
    import pytest_asyncio
except ImportError:  # the fixture says so when used; pytest itself keeps working
    pytest_asyncio = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "squall_root",
        "the Squall project the squall fixture boots, relative to the rootdir (default: the "
        "rootdir)",
        default="",
    )
    parser.addini("squall_env", "the environment the squall fixture boots in", default="test")


async def _started(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """A started squall.testing.Harness of this project, one per test (see squall.testing)."""
    config = request.config
    root = config.rootpath / config.getini("squall_root")
    async with Harness(root, env=config.getini("squall_env")) as harness:
        yield harness


if pytest_asyncio is not None:
    squall = pytest_asyncio.fixture(_started, name="squall")
else:

    @pytest.fixture(name="squall")
    def squall() -> None:
        pytest.fail("the squall fixture needs pytest-asyncio: pip install 'squall[test]'")
