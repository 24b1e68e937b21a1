"""Log lines an operator uses: the access lines, the JSON format, the last errors kept for the
admin page, and the options that choose them."""

from __future__ import annotations

import io
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from squall import ConfigError, load_config
from squall.logs import (
    JsonFormatter,
    RecentErrors,
    access_log,
    log_request,
    log_socket_close,
    log_socket_open,
)

from .conftest import DEFAULT_YAML


@pytest.fixture
def access_lines() -> Iterator[list[logging.LogRecord]]:
    """The access logger at ``info``, its records collected."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    level = access_log.level
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    try:
        yield records
    finally:
        access_log.removeHandler(handler)
        access_log.setLevel(level)


def test_access_lines_say_what_happened(access_lines):
    log_request("GET", "/api/status", 200, 0.00123, "127.0.0.1")
    log_socket_open("c1", "10.0.0.2", 5000)
    log_socket_close("c1", "10.0.0.2", 5000, 1008, 12.34)

    assert [r.getMessage() for r in access_lines] == [
        "GET /api/status 200 1.2 ms from 127.0.0.1",
        "socket c1 open from 10.0.0.2:5000",
        "socket c1 closed 1008 after 12.3 s from 10.0.0.2:5000",
    ]
    assert all(r.levelno == logging.INFO and r.name == "squall.access" for r in access_lines)


def test_no_access_line_below_info(access_lines):
    access_log.setLevel(logging.WARNING)
    log_request("GET", "/", 200, 0.001, "127.0.0.1")
    log_socket_open("c1", "127.0.0.1", 1)
    log_socket_close("c1", "127.0.0.1", 1, 1000, 1.0)
    assert access_lines == []


def test_json_lines_carry_the_fields(access_lines):
    log_request("POST", "/api/add", 422, 0.0105, "::1")
    log_socket_close("c9", "127.0.0.1", 4242, 4000, 2.5)

    request, close = (json.loads(JsonFormatter().format(r)) for r in access_lines)

    assert request["level"] == "INFO" and request["logger"] == "squall.access"
    assert request["message"] == "POST /api/add 422 10.5 ms from ::1"
    assert {k: request[k] for k in ("event", "method", "path", "status", "durationMs")} == {
        "event": "http",
        "method": "POST",
        "path": "/api/add",
        "status": 422,
        "durationMs": 10.5,
    }
    assert request["time"].endswith("+00:00")
    assert close["event"] == "socketClose" and close["code"] == 4000
    assert close["durationMs"] == 2500.0 and close["remotePort"] == 4242


def test_json_keeps_a_traceback_on_one_line():
    logger = logging.getLogger("squall.test-json")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("it broke for %s", "someone")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["message"] == "it broke for someone"
    assert entry["traceback"].startswith("Traceback") and "ValueError: boom" in entry["traceback"]


def test_recent_errors_keep_the_last_with_their_refs():
    recent = RecentErrors(size=2)
    logger = logging.getLogger("squall.test-recent")
    logger.addHandler(recent)
    logger.propagate = False
    try:
        logger.warning("not an error")
        logger.error("first")
        try:
            raise KeyError("k")
        except KeyError:
            logger.exception("action add failed (connection c1, ref 9f2c)")
        logger.error("third", extra={"ref": "given"})
    finally:
        logger.removeHandler(recent)
        logger.propagate = True

    assert recent.count == 3
    kept = recent.errors()
    assert [e["message"] for e in kept] == ["action add failed (connection c1, ref 9f2c)", "third"]
    assert [e["ref"] for e in kept] == ["9f2c", "given"]
    assert kept[0]["exception"] == "KeyError: 'k'"
    assert kept[0]["logger"] == "squall.test-recent"


# -- the options ----------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    shutil.copy(DEFAULT_YAML, tmp_path / "config" / "default.yaml")
    (tmp_path / "config" / "test.yaml").write_text("")  # an environment needs its file
    return tmp_path


def config_error(root: Path, text: str) -> str:
    (root / "config" / "test.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(root, "test", environ={})
    return str(caught.value)


def test_defaults_are_text_logs_metrics_off_no_admin(root):
    config = load_config(root, "test", environ={})
    assert config.get("general.logFormat") == "text"
    assert config.get("servers.web.metrics") == {
        "enabled": False,
        "path": "/metrics",
        "token": None,
    }
    assert config.get("servers.web.admin") == {"path": "/admin", "token": None}


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "general:\n  logFormat: xml\n",
            'config/test.yaml: general.logFormat: expected "text" or "json", got \'xml\'',
        ),
        (
            "servers:\n  web:\n    metrics:\n      path: metrics\n",
            'config/test.yaml: servers.web.metrics.path: expected a path starting with "/", '
            "like \"/metrics\", got 'metrics'",
        ),
        (
            "servers:\n  web:\n    metrics:\n      token: ''\n",
            "config/test.yaml: servers.web.metrics.token: expected a non-empty string, or null "
            "for no token, got ''",
        ),
        (
            "servers:\n  web:\n    admin:\n      path: /admin/\n",
            'config/test.yaml: servers.web.admin.path: expected a path starting with "/" and '
            "not ending with one, like \"/admin\", got '/admin/'",
        ),
        (
            "servers:\n  web:\n    admin:\n      token: 1234\n",
            "config/test.yaml: servers.web.admin.token: expected a string or null, got int 1234",
        ),
    ],
)
def test_bad_options_stop_the_boot_naming_them(root, yaml_text, message):
    assert config_error(root, yaml_text) == message
