"""The same client file under Node (>= 20), where there is no page: ``module.exports``, an
injected WebSocket constructor, and a process that exits once the client disconnects."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from .support import BOOT_TIMEOUT, HERE, ROOT, WELCOME


def node_command() -> list[str]:
    """``node``, with the WebSocket flag that Node 20 needs for its (then optional) WebSocket."""
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.lstrip("v").split(".")[0])
    return ["node", "--experimental-websocket"] if major < 22 else ["node"]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
@pytest.mark.parametrize("script", ["actionheroClient.js", "actionheroClient.min.js"])
def test_client_under_node(server, script):
    client = ROOT / "public" / "javascript" / script
    command = [*node_command(), str(HERE / "node_client.js"), str(client), server.url, "otherRoom"]

    run = subprocess.run(command, capture_output=True, text=True, timeout=BOOT_TIMEOUT)

    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["withoutWebSocket"] == "no global WebSocket here: pass one as options.WebSocket"
    assert out["overHttp"]["via"] == "http"
    assert out["details"]["type"] == "webSocket"
    assert out["welcomeMessage"] == WELCOME
    assert out["roomAdd"]["data"] is True
    assert out["sayReply"]["status"] == "OK"
    assert out["say"]["message"] == "from node"
    assert out["say"]["from"] == out["details"]["id"]
    assert out["overSocket"]["via"] == "socket"
    assert "messageId" in out["overSocket"]
    assert out["state"] == "disconnected"
