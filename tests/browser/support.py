"""What only the browser tier needs: Debian's Chromium and its settings, the options of its
servers (the probe actions of tests/browser/actions, a second room) and a page with the
generated client loaded. The server process is tests/testkit.py's: it can be killed, frozen and
restarted on the same port, which is what the client's reconnect logic is about.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import testkit
from playwright.sync_api import Browser, Page, WebSocketRoute, sync_playwright
from testkit import TIMEOUT, Server

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"

#: A browser waits twice as long as a Python client (page loads, rendering), in milliseconds.
TIMEOUT_MS = 2 * TIMEOUT * 1000

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium (never a downloaded browser) under Playwright's sync API, which holds
    the thread's event loop until the browser is closed."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


WELCOME = "Welcome to the browser suite"

#: Every test server: the shipped actions and site, plus our probe actions and a second room.
OPTIONS: dict[str, Any] = {
    "general": {
        "welcomeMessage": WELCOME,
        "paths": {"actions": ["actions", "tests/probes", "tests/browser/actions"]},
        "startingChatRooms": {"defaultRoom": {}, "otherRoom": {}},
    },
}


#: ``running_server(tmp_path_factory, name, options)``: OPTIONS under ``options``
running_server = functools.partial(testkit.running_server, base=OPTIONS)


def client_page(page: Page, server: Server, script: str = "actionheroClient.js") -> Page:
    """Open the server's index page in `page`, load the client `script` and helpers.js."""
    page.goto(f"{server.base_url}/public/index.html")
    page.add_script_tag(url=f"/public/javascript/{script}")
    page.evaluate("(timeout) => { window.TIMEOUT = timeout; }", TIMEOUT_MS)
    page.add_script_tag(path=HERE / "helpers.js")
    return page


class Link:
    """A page's sockets, routed through Playwright so that a test can cut them as a network
    would: ``cut()`` closes them on the server's side (the server sees its peer go, the page sees
    its socket close and reconnects) and refuses every new one until ``restore()``."""

    #: The close the page sees: one after which the client reconnects (PROTOCOL.md §7). Pages
    #: may only close with 1000 or 3000-4999, and Playwright closes through the page.
    CODE = 3001
    REASON = "the link is down"

    def __init__(self, page: Page) -> None:
        self.up = True
        self._servers: list[WebSocketRoute] = []
        page.route_web_socket(re.compile(r"/primus(\?|$)"), self._route)

    def _route(self, socket: WebSocketRoute) -> None:
        if self.up:
            self._servers.append(socket.connect_to_server())
        else:
            socket.close(code=self.CODE, reason=self.REASON)

    def cut(self) -> None:
        self.up = False
        for server in self._servers:
            server.close(code=self.CODE, reason=self.REASON)
        self._servers.clear()

    def restore(self) -> None:
        self.up = True
