"""Fixtures: Debian's Chromium driven by Playwright (never a downloaded browser), Squall servers
as subprocesses, and pages that fail their test on any uncaught script error."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from testkit import Server

from .support import TIMEOUT_MS, chromium, running_server

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server most tests share."""
    with running_server(tmp_path_factory, "shared", {}) as shared:
        yield shared


@pytest.fixture
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server for one test, which it may kill, freeze and restart."""
    with running_server(tmp_path_factory, "own", {}) as own:
        yield own


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught errors of this test's pages; a test that expects some clears them."""
    return []


@pytest.fixture
def new_page(browser: Browser, page_errors: list[str]) -> Iterator[Callable[..., Page]]:
    """``new_page(width=.., height=..)``: a page in a context of its own (its own cookies, so its
    own fingerprint). Any uncaught error in a page fails the test."""
    contexts: list[BrowserContext] = []

    def _new_page(width: int = 1000, height: int = 700) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: page_errors.append(error.message))
        return page

    yield _new_page
    for context in contexts:
        context.close()
    assert page_errors == []
