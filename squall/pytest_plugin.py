"""The pytest plugin Squall installs (entry point ``pytest11``): the ``squall`` fixture.

``squall`` is a started :class:`squall.testing.Harness` of the project pytest runs in (its
rootdir, or the ``squall_root`` ini option), in the ``test`` environment (``squall_env``); one per
test, stopped after it::

    async def test_hello(squall):
        reply = await squall.run("hello", {"name": "Ada"})
        assert reply.status == 200

A test (or a module, with ``pytestmark``) may ask for other options with the ``squall`` marker,
whose keyword arguments go to the :class:`~squall.testing.Harness`::

    @pytest.mark.squall(config={"general.serverName": "other"}, actions=[probe])
    async def test_other_name(squall): ...

The fixture is async: it needs pytest-asyncio (``pip install 'squall[test]'``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .testing import Harness

__all__ = ["pytest_addoption", "pytest_configure", "squall"]

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "squall(**options): options of the squall fixture's Harness (config, config_files, env, "
        "actions)",
    )


async def _started(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """A started squall.testing.Harness of this project, one per test (see squall.testing)."""
    config = request.config
    options = {"env": config.getini("squall_env")}
    for marker in reversed(list(request.node.iter_markers("squall"))):  # the closest wins
        options.update(marker.kwargs)
    async with Harness(config.rootpath / config.getini("squall_root"), **options) as harness:
        yield harness


if pytest_asyncio is not None:
    squall = pytest_asyncio.fixture(_started, name="squall")
else:

    @pytest.fixture(name="squall")
    def squall() -> None:
        pytest.fail("the squall fixture needs pytest-asyncio: pip install 'squall[test]'")
