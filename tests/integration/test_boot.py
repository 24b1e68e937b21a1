"""Booting: drop-in action files, and the boots that must fail with a clear line naming the
file and the key (PROTOCOL.md §1 port and environment)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import yaml
from testkit import BOOT_TIMEOUT, ROOT, free_port, http_request

from .support import running_server

NEW_ACTION = """
from squall import Input, action


@action(name="droppedIn", description="Arrived by copying a file", inputs={"x": Input(default=1)})
async def dropped_in(data):
    return {"x": data.params["x"], "droppedIn": True}
"""


def failed_boot(tmp_path, options: dict) -> tuple[int, str]:
    """Run the server with ``options`` expecting it to refuse to start; its exit code and output."""
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(options))
    command = [sys.executable, "server.py", "--port", str(free_port()), "--env", "test"]
    done = subprocess.run(
        [*command, "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        timeout=BOOT_TIMEOUT,
        text=True,
    )
    return done.returncode, done.stdout + done.stderr


def test_boot_drop_in_action_file_is_served(tmp_path_factory, tmp_path):
    actions = tmp_path / "actions"
    shutil.copytree(ROOT / "actions", actions)
    (actions / "droppedIn.py").write_text(NEW_ACTION)
    options = {"general": {"paths": {"actions": [str(actions)]}}}
    with running_server(tmp_path_factory, "dropin", options) as server:
        response = http_request(server, "GET", "/api/droppedIn?x=5")
        assert (response.status, response.json()["droppedIn"], response.json()["x"]) == (
            200,
            True,
            "5",
        )
        assert http_request(server, "GET", "/api/randomNumber").status == 200


def test_boot_broken_action_file_stops_boot_naming_it(tmp_path):
    actions = tmp_path / "actions"
    actions.mkdir()
    broken = actions / "broken.py"
    broken.write_text(
        textwrap.dedent("""\
        from squall import action

        @action(name="broken")
        async def broken(data)
            return {}
        """)
    )
    code, output = failed_boot(tmp_path, {"general": {"paths": {"actions": [str(actions)]}}})
    assert code != 0
    assert str(broken) in output


def test_boot_wrong_config_type_stops_boot_naming_file_and_key(tmp_path):
    code, output = failed_boot(
        tmp_path, {"servers": {"websocket": {"server": {"maxMessageSize": "huge"}}}}
    )
    assert code != 0
    assert str(tmp_path / "bad.yaml") in output
    assert "maxMessageSize" in output


def test_boot_unknown_section_stops_boot_naming_it(tmp_path):
    code, output = failed_boot(tmp_path, {"notASection": {"a": 1}})
    assert code != 0
    assert "notASection" in output


def test_boot_port_from_environment(tmp_path_factory):
    with running_server(tmp_path_factory, "envport", {}, port_from_env=True) as server:
        assert http_request(server, "GET", "/api/status").status == 200


async def test_server_runs_on_the_standard_asyncio_loop(tmp_path_factory, connect):
    """uvloop is optional: with ``--loop asyncio`` HTTP, static files and the socket all work
    (httptools and websockets need no particular loop)."""
    with running_server(tmp_path_factory, "stdloop", {}, loop="asyncio") as server:
        assert http_request(server, "GET", "/api/status").status == 200
        assert http_request(server, "GET", "/public/index.html").status == 200
        client = await connect(server)
        assert (await client.request("ping"))["status"] == "OK"
        await client.close()


async def test_web_disabled_serves_no_actions_or_files_but_the_socket_and_metrics(
    tmp_path_factory, connect
):
    """``servers.web.enabled: false``: a socket-only server. HTTP actions and files are 404;
    the WebSocket, the probes and the metrics page (endpoints of their own) are still served."""
    options = {"servers": {"web": {"enabled": False, "metrics": {"enabled": True}}}}
    with running_server(tmp_path_factory, "noweb", options) as server:
        for path in ("/api/status", "/api?action=status", "/public/index.html", "/", "/chat.html"):
            refused = http_request(server, "GET", path)
            assert refused.status == 404, path
            assert refused.headers["Set-Cookie"].startswith("sessionID="), path  # PROTOCOL §4
        assert http_request(server, "POST", "/api/status", body="{}").status == 404
        for path in ("/metrics", "/health", "/ready"):
            assert http_request(server, "GET", path).status == 200, path
        client = await connect(server)
        reply = await client.action("status")
        assert (reply.get("error"), reply["name"]) == (None, "squall-integration")


def test_boot_with_nothing_to_serve_is_refused(tmp_path):
    code, output = failed_boot(
        tmp_path, {"servers": {"web": {"enabled": False}, "websocket": {"enabled": False}}}
    )
    assert code == 2
    assert (
        "squall: configuration error: config: servers.web.enabled: false, with "
        "servers.websocket.enabled false and neither metrics nor the admin page on, leaves the "
        "server nothing to serve"
    ) in output
