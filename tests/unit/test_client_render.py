"""Rendering the browser client: files, substituted defaults, minification (PROTOCOL.md §7)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from squall.client import render, render_client

DEFAULT_YAML = Path(__file__).parents[2] / "config" / "default.yaml"

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")


@pytest.fixture
def config() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(DEFAULT_YAML.read_text()))


def client_options(path: Path, origin: str = "http://page.example", **options: Any) -> dict:
    """Load a rendered client under node, as a page at `origin` would, and return its options."""
    script = (
        f"globalThis.window = {{location: {{origin: {json.dumps(origin)}}}}};"
        f"const ActionheroClient = require({json.dumps(str(path))});"
        f"console.log(JSON.stringify(new ActionheroClient({json.dumps(options)}).options));"
    )
    result = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, check=True, timeout=10
    )
    return json.loads(result.stdout)


def test_render_writes_full_and_minified_files(config, tmp_path):
    paths = render_client(config, tmp_path)

    folder = tmp_path / "javascript"
    assert paths == [folder / "actionheroClient.js", folder / "actionheroClient.min.js"]
    assert sorted(folder.iterdir()) == sorted(paths)


def test_minified_file_is_smaller(config, tmp_path):
    full, minified = render_client(config, tmp_path)

    assert 0 < minified.stat().st_size < full.stat().st_size * 0.7


def test_null_name_renders_nothing(config, tmp_path):
    config["servers"]["websocket"]["clientJsName"] = None

    assert render_client(config, tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_path_and_name_come_from_config(config, tmp_path):
    config["servers"]["websocket"]["clientJsPath"] = "/js/"
    config["servers"]["websocket"]["clientJsName"] = "squall"

    paths = render_client(config, tmp_path)

    assert paths == [tmp_path / "js" / "squall.js", tmp_path / "js" / "squall.min.js"]


def test_rendering_again_replaces_the_files_and_leaves_no_temporary_ones(config, tmp_path):
    render_client(config, tmp_path)
    config["servers"]["websocket"]["client"]["timeout"] = 1234

    full, minified = render_client(config, tmp_path)

    assert sorted((tmp_path / "javascript").iterdir()) == sorted([full, minified])
    assert '"timeout": 1234' in full.read_text()


def test_missing_marker_fails_loudly(config, tmp_path, monkeypatch):
    template = tmp_path / "template.js"
    template.write_text("var DEFAULTS = {};\n")
    monkeypatch.setattr(render, "TEMPLATE", template)

    with pytest.raises(ValueError, match="squall:defaults"):
        render_client(config, tmp_path / "public")


@needs_node
@pytest.mark.parametrize("index", [0, 1], ids=["js", "min.js"])
def test_output_parses_under_node(config, tmp_path, index):
    path = render_client(config, tmp_path)[index]

    subprocess.run(["node", "--check", str(path)], check=True, timeout=10)


@needs_node
@pytest.mark.parametrize("index", [0, 1], ids=["js", "min.js"])
def test_config_becomes_the_client_defaults(config, tmp_path, index):
    websocket = config["servers"]["websocket"]
    websocket["client"].update(apiPath="/v2", timeout=2000, queueSize=None)
    websocket["client"]["reconnect"]["retries"] = 3
    websocket["server"]["pathname"] = "/socket"
    config["servers"]["web"]["fingerprint"]["cookieKey"] = "sid"

    options = client_options(render_client(config, tmp_path)[index])

    assert options == {
        "url": "http://page.example",
        "apiPath": "/v2",
        "timeout": 2000,
        "ping": 25000,
        "pong": 10000,
        "queueSize": None,
        "reconnect": {"min": 500, "max": 30000, "retries": 3},
        "pathname": "/socket",
        "cookieKey": "sid",
    }


@needs_node
def test_page_origin_is_an_expression_not_a_string(config, tmp_path):
    full, _ = render_client(config, tmp_path)

    assert "return window.location.origin;" in full.read_text()
    assert client_options(full, origin="https://elsewhere.example")["url"] == (
        "https://elsewhere.example"
    )


@needs_node
def test_a_client_url_is_a_string(config, tmp_path):
    config["servers"]["websocket"]["clientUrl"] = "https://api.example.com"

    full, _ = render_client(config, tmp_path)

    assert client_options(full)["url"] == "https://api.example.com"


@needs_node
def test_options_given_to_the_client_win(config, tmp_path):
    full, _ = render_client(config, tmp_path)

    options = client_options(full, url="http://127.0.0.1:9", reconnect={"max": 1000})

    assert options["url"] == "http://127.0.0.1:9"
    assert options["reconnect"] == {"min": 500, "max": 1000, "retries": None}
