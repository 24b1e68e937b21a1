"""What only the contract tier needs: the options of its servers (its probe actions and
middleware, every path of PROTOCOL.md §1 moved), a public folder of known files, and rooms of a
test's own made over HTTP. The server process, the clients and the frame matchers are
tests/testkit.py's."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import testkit
from testkit import Server, http_request, unique

#: Every contract server: the shipped actions, the suite's probes, the integration tier's test
#: actions and middleware (inputs, versions, params, chat middleware on the rooms it names) and
#: this tier's.
OPTIONS: dict[str, Any] = {
    "general": {
        "paths": {
            "actions": [
                "actions",
                "tests/probes",
                "tests/integration/actions",
                "tests/contract/actions",
            ]
        }
    },
}

#: The shared server: the rooms the integration tier's chat middleware acts in exist.
SHARED: dict[str, Any] = {
    "general": {
        "startingChatRooms": {
            name: {} for name in ("defaultRoom", "mw-blocked", "mw-sticky", "mw-chat", "mw-order")
        }
    }
}

#: Every path PROTOCOL.md §1 names, moved by its config key (general.paths.public comes from
#: the test: a folder of :class:`Site`), and a welcome message of its own.
RENAMED: dict[str, Any] = {
    "general": {"welcomeMessage": "Welcome to the renamed server"},
    "servers": {
        "web": {"urlPathForActions": "act", "urlPathForFiles": "static"},
        "websocket": {
            "client": {"apiPath": "/act"},
            "clientJsPath": "gen/",
            "clientJsName": "myClient",
            "server": {"pathname": "/sock"},
        },
    },
}

#: Timers of a second: a session is kept 1 s after its last use, a peer silent for 0.6 s is closed.
BRISK: dict[str, Any] = {
    "general": {"sessionTtl": 1000},
    "servers": {"websocket": {"server": {"pingInterval": 200, "timeout": 600}}},
}

#: ``running_server(tmp_path_factory, name, options)``: OPTIONS under ``options``
running_server = functools.partial(testkit.running_server, base=OPTIONS)


@dataclass
class Site:
    """A public folder whose every file the test knows, and a secret beside it."""

    public: Path

    #: file -> bytes, relative to the public folder
    FILES = {
        "index.html": b"<h1>the index</h1>\n",
        "hello.html": "<p>h\u00e9llo, w\u00f6rld \u2603</p>\n".encode(),
        "style.css": b"p { color: red }\n",
        "data.bin": bytes([0xFF, 0x00, 0xFE, 0x80, 0x81]),
        "sub/index.html": b"<p>sub index</p>\n",
        "empty/.keep": b"",
    }
    SECRET = b"outside public\n"

    @classmethod
    def write(cls, root: Path) -> Site:
        public = root / "public"
        for name, content in cls.FILES.items():
            path = public / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        (public / "empty" / ".keep").unlink()
        (root / "secret.txt").write_bytes(cls.SECRET)
        (public / "dangling.html").symlink_to(root / "no-such-file.html")
        return cls(public)

    def path(self, name: str) -> Path:
        return self.public / name


def http_action(server: Server, action_name: str, /, cookie: str | None = None, **params: Any):
    """``POST /api/<action_name>`` with a JSON body (and the fingerprint cookie, if given)."""
    headers = {"Content-Type": "application/json"}
    if cookie is not None:
        headers["Cookie"] = f"sessionID={cookie}"
    return http_request(
        server, "POST", f"{server.api_path}/{action_name}", json.dumps(params), headers
    )


async def new_room(server: Server, prefix: str = "room", **options: Any) -> str:
    """A room of the test's own, made with the createChatRoom action (``presence``,
    ``history``); its name starts with ``prefix``."""
    name = unique(prefix)
    reply = await server.action("createChatRoom", name=name, **options)
    assert reply.get("didCreate") is True, reply
    return name
