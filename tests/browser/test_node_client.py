"""The same client file under Node (>= 20), where there is no page: ``module.exports``, an
injected WebSocket constructor, and a process that exits once the client disconnects."""

from __future__ import annotations

import json
import subprocess

import pytest
from testkit import node_command

from .support import BOOT_TIMEOUT, HERE, ROOT, WELCOME


@pytest.mark.parametrize("script", ["actionheroClient.js", "actionheroClient.min.js"])
def test_client_under_node(server, script):
    client = ROOT / "public" / "javascript" / script
    command = [*node_command(), str(HERE / "node_client.js"), str(client), server.url, "otherRoom"]

    run = subprocess.run(command, capture_output=True, text=True, timeout=BOOT_TIMEOUT)

    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["withoutWebSocket"] == "no global WebSocket here: pass one as options.WebSocket"
    assert out["overHttp"]["via"] == "http"
    assert out["details"]["data"]["type"] == "webSocket"
    assert out["welcomeMessage"] == WELCOME
    assert out["roomAdd"]["data"] is True
    assert out["sayReply"]["status"] == "OK"
    assert out["say"]["message"] == "from node"
    assert out["say"]["from"] == out["details"]["data"]["id"]
    assert out["overSocket"]["via"] == "socket"
    assert "messageId" in out["overSocket"]
    assert out["state"] == "disconnected"
