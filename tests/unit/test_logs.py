"""Log lines an operator uses: the access lines, the JSON format, the last errors kept for the
admin page, and the options that choose them."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testkit import TIMEOUT

from squall import ConfigError, load_config, logs
from squall.logs import (
    TEXT_FORMAT,
    BufferedStreamHandler,
    JsonFormatter,
    RecentErrors,
    TextFormatter,
    access_log,
    configure_logging,
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


# -- writing the lines ----------------------------------------------------------------------------


def test_text_lines_read_as_the_standard_format_writes_them():
    record = logging.LogRecord("squall.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    assert TextFormatter().format(record) == logging.Formatter(TEXT_FORMAT).format(record)
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord(
            "squall.x", logging.ERROR, __file__, 1, "broke", (), sys.exc_info()
        )
    assert TextFormatter().format(failed) == logging.Formatter(TEXT_FORMAT).format(failed)


class FlushRecorder(io.StringIO):
    """A stream that says when it was flushed, and what it held then."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed = threading.Event()
        self.seen: list[str] = []

    def flush(self) -> None:
        self.seen.append(self.getvalue())
        self.flushed.set()


@pytest.fixture
def buffered_logger() -> Iterator[Callable[[float], tuple[logging.Logger, FlushRecorder]]]:
    """``make(interval)``: a logger writing through a :class:`BufferedStreamHandler`."""
    made: list[tuple[logging.Logger, BufferedStreamHandler]] = []

    def make(interval: float) -> tuple[logging.Logger, FlushRecorder]:
        stream = FlushRecorder()
        handler = BufferedStreamHandler(stream, interval=interval)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger = logging.getLogger(f"squall.test-buffered-{len(made)}")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        made.append((logger, handler))
        return logger, stream

    yield make
    for logger, handler in made:
        logger.removeHandler(handler)
        logger.propagate = True
        handler.close()


def test_a_warning_is_written_at_once_with_the_lines_before_it(buffered_logger):
    logger, stream = buffered_logger(3600.0)  # the handler's thread stays out of it
    logger.info("first")
    assert stream.seen == []
    logger.warning("second")
    assert stream.seen == ["INFO first\nWARNING second\n"]


def test_info_lines_are_written_within_the_interval(buffered_logger):
    logger, stream = buffered_logger(0.05)
    logger.info("third")
    assert stream.flushed.wait(TIMEOUT)  # by the handler's thread
    assert stream.seen[-1] == "INFO third\n"


@pytest.fixture
def configured() -> Iterator[Callable[[str], io.StringIO]]:
    """``configure("text" | "json")``: Squall's logging set up at info into a StringIO; the
    root logger is given back as it was afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)

    def configure(fmt: str) -> io.StringIO:
        stream = io.StringIO()
        configure_logging("info", fmt, stream)
        return stream

    yield configure
    for handler in root.handlers:
        handler.close()
    root.handlers[:], root.level = saved


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_an_access_line_reads_the_same_by_either_path(configured, fmt):
    stream = configured(fmt)
    (ours,) = logging.getLogger().handlers
    assert logs._sole_handler() is ours  # nothing else would see an access line
    log_request("GET", "/api/status", 200, 0.00123, "127.0.0.1")  # straight to our handler
    log_socket_close("c1", "127.0.0.1", 5000, 1000, 2.5)
    other = logging.Handler(logging.INFO)  # one more handler: every line is a LogRecord
    other.emit = lambda record: None  # type: ignore[method-assign]
    access_log.addHandler(other)
    try:
        log_request("GET", "/api/status", 200, 0.00123, "127.0.0.1")
        log_socket_close("c1", "127.0.0.1", 5000, 1000, 2.5)
    finally:
        access_log.removeHandler(other)
    ours.flush()

    def without_time(line: str) -> str:
        return re.sub(r"^\S+ \S+ |\"time\":\"[^\"]+\",", "", line)

    direct, recorded = stream.getvalue().splitlines()[:2], stream.getvalue().splitlines()[2:]
    assert [without_time(line) for line in direct] == [without_time(line) for line in recorded]
    if fmt == "text":
        assert (
            without_time(direct[0])
            == "INFO squall.access: GET /api/status 200 1.2 ms from 127.0.0.1"
        )
    else:
        assert json.loads(direct[1])["durationMs"] == 2500.0
