"""The servers contract tests share: ``server`` (the project's config in the test environment,
plus this tier's probe actions), ``renamed`` (every path of PROTOCOL.md §1 moved by its config key,
serving a public folder of known files) and ``brisk`` (timers of a second); modules that need
other options start their own. Pages of the generated client are the browser tier's
(``new_page``, which fails a test on any uncaught script error)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser.conftest import new_page, page_errors
from testkit import Server

from .support import BRISK, RENAMED, SHARED, Site, running_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory, "contract", SHARED) as shared:
        yield shared


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return Site.write(tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="session")
def renamed(tmp_path_factory: pytest.TempPathFactory, site: Site) -> Iterator[Server]:
    options = {**RENAMED, "general": {**RENAMED["general"], "paths": {"public": str(site.public)}}}
    with running_server(tmp_path_factory, "renamed", options) as moved:
        yield moved


@pytest.fixture(scope="session")
def brisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose timers run in a second: sessions (sessionTtl) and the heartbeat (a peer
    silent for ``timeout`` is closed)."""
    with running_server(tmp_path_factory, "brisk", BRISK) as started:
        yield started


__all__ = ["new_page", "page_errors"]  # the browser tier's fixtures, for test_s7_client.py
