"""What the browser tests share: a Squall server as a subprocess, and the browser's settings.

The server is driven from the outside, like a user would: ``server.py --port N --env test`` with
an extra YAML file. It can be killed, frozen and restarted on the same port, which is what the
client's reconnect logic is about.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from playwright.sync_api import Page, WebSocketRoute
from testkit import deep_merge, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"

#: Scale every timeout on a slow machine (as the integration suite does).
FACTOR = float(os.environ.get("SQUALL_TESTS_TIMEOUT_FACTOR", "1"))
TIMEOUT_MS = 10_000 * FACTOR
BOOT_TIMEOUT = 20.0 * FACTOR

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

WELCOME = "Welcome to the browser suite"

#: Every test server: the shipped actions and site, plus our probe actions and a second room.
OPTIONS: dict[str, Any] = {
    "general": {
        "welcomeMessage": WELCOME,
        "paths": {"actions": ["actions", "tests/browser/actions"]},
        "startingChatRooms": {"defaultRoom": {}, "otherRoom": {}},
    },
}


def client_page(page: Page, server: Server, script: str = "actionheroClient.js") -> Page:
    """Open the server's index page in `page`, load the client `script` and helpers.js."""
    page.goto(f"{server.url}/public/index.html")
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


class Server:
    """One ``server.py`` process on a port of its own, which a restart keeps."""

    def __init__(self, workdir: Path, options: dict[str, Any] | None = None) -> None:
        self.port = free_port()
        self.config_path = workdir / "browser.yaml"
        self.log_path = workdir / "server.log"
        self.config_path.write_text(yaml.safe_dump(deep_merge(OPTIONS, options or {})))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        """Start the process and return once it answers HTTP."""
        env = {k: v for k, v in os.environ.items() if k not in ("PORT", "SQUALL_ENV")}
        env.pop("SQUALL_REDIS_URL", None)
        command = [sys.executable, "server.py", "--port", str(self.port), "--env", "test"]
        command += ["--config", str(self.config_path)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited at boot:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/api/status", timeout=1) as reply,
            ):
                if reply.status == 200:
                    return self
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=0.05)  # poll interval while booting; exits are caught above
        self.stop()
        raise RuntimeError(f"the server was not ready in {BOOT_TIMEOUT}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """Crash it: SIGKILL, no shutdown, sockets just drop."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=BOOT_TIMEOUT)

    def freeze(self) -> None:
        """SIGSTOP: sockets stay open but nothing answers, like a dead link."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the process whatever state it is in (even frozen); never leaves it running."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.thaw()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=BOOT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=BOOT_TIMEOUT)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
