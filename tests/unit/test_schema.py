"""The schema (squall/schema.py) and config/default.yaml: one source, written out word for word.

The schema is the source; ``scripts/default-yaml`` writes the file from it. These tests fail
when one is edited without the other, and say which test to read.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from squall import ConfigError, load_config
from squall.errors import DEFAULT_TEMPLATES
from squall.schema import ENTRIES, SCHEMA, Option, Section, defaults, render_default_yaml

from .conftest import DEFAULT_YAML

OPTIONS = [entry for entry in SCHEMA if isinstance(entry, Option)]


def commented_keys(text: str) -> dict[str, str]:
    """Every ``key: value  # doc`` line of a YAML file by its dotted key, read from the
    indentation alone (not by the renderer under test)."""
    found: dict[str, str] = {}
    parents: list[str] = []
    for line in text.splitlines():
        match = re.match(r"( *)([A-Za-z][\w-]*):(.*)", line)
        if match is None:
            continue
        indent, name, rest = match.groups()
        depth = len(indent) // 2
        parents[depth:] = [name]
        if "  # " in rest:
            found[".".join(parents)] = rest.split("  # ", 1)[1]
    return found


def test_default_yaml_is_the_schema_written_out():
    assert DEFAULT_YAML.read_text() == render_default_yaml(), (
        "config/default.yaml and squall/schema.py differ: edit the schema, then run "
        "scripts/default-yaml"
    )


def test_default_yaml_holds_every_default_of_the_schema_key_for_key():
    assert yaml.safe_load(DEFAULT_YAML.read_text()) == defaults()


def test_default_yaml_comments_are_the_docs_of_the_schema():
    documented = {entry.key: entry.doc for entry in SCHEMA if entry.doc}

    assert commented_keys(DEFAULT_YAML.read_text()) == documented


def test_every_option_but_an_error_text_has_a_one_line_doc():
    undocumented = [o.key for o in OPTIONS if not o.doc and not o.key.startswith("errors.")]

    assert undocumented == []
    assert [entry.key for entry in SCHEMA if "\n" in entry.doc] == []


def test_the_errors_section_is_every_error_text_squall_has():
    texts = {
        o.key.removeprefix("errors."): o.default for o in OPTIONS if o.key.startswith("errors.")
    }

    assert texts == DEFAULT_TEMPLATES


def test_every_entry_is_declared_once_under_a_declared_section():
    keys = [entry.key for entry in SCHEMA]

    assert len(keys) == len(set(keys)) == len(ENTRIES)
    for key in keys:
        parent = key.rpartition(".")[0]
        assert parent == "" or isinstance(ENTRIES.get(parent), Section), key


def test_every_default_passes_its_own_option():
    for option in OPTIONS:
        option.check_value(option.default, "schema")


# -- values with a fixed set or a shape ----------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.yaml").write_text(DEFAULT_YAML.read_text())
    (tmp_path / "config" / "test.yaml").write_text("")
    return tmp_path


@pytest.mark.parametrize(
    ("dotted", "value", "expected"),
    [
        ("servers.web.rootEndpointType", "files", 'expected "file" or "api", got \'files\''),
        (
            "servers.web.fingerprint.sameSite",
            "lax",
            "expected one of Strict, Lax, None, got 'lax'",
        ),
        (
            "servers.web.fingerprint.cookieKey",
            "session id",
            "expected a cookie name (letters, digits and !#$%&'*+-.^_`|~), got 'session id'",
        ),
        (
            "servers.websocket.server.pathname",
            "primus",
            'expected a path starting with "/", like "/primus", got \'primus\'',
        ),
        (
            "redis.url",
            "127.0.0.1:6379",
            "expected a redis://, rediss:// or unix:// URL, got '127.0.0.1:6379'",
        ),
        ("servers.web.port", 70000, "expected a number from 0 to 65535, got 70000"),
        ("general.sessionTtl", 10, "expected a number at least 1000, got 10"),
    ],
)
def test_a_value_the_option_does_not_take_stops_the_boot(root, dotted, value, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(root, "test", overrides={dotted: value}, environ={})

    assert str(caught.value) == f"command line / environment: {dotted}: {expected}"


@pytest.mark.parametrize(
    ("dotted", "value"),
    [
        ("servers.web.rootEndpointType", "api"),
        ("servers.web.fingerprint.sameSite", "None"),
        ("servers.web.fingerprint.cookieKey", "connect.sid"),
        ("redis.url", "rediss://cache.example:6380/1"),
        ("redis.url", "unix:///run/redis.sock"),
    ],
)
def test_a_value_the_option_takes_is_kept(root, dotted, value):
    assert load_config(root, "test", overrides={dotted: value}, environ={}).get(dotted) == value


def test_an_option_missing_from_a_projects_default_yaml_takes_the_schemas_default(root):
    """A project's default.yaml written by an older Squall lacks newer options."""
    (root / "config" / "default.yaml").write_text("general:\n  serverName: old\n")

    config = load_config(root, "test", environ={})

    assert config.get("general.serverName") == "old"
    assert config.get("servers.web.port") == 8080


def test_a_ping_timeout_not_longer_than_the_ping_interval_stops_the_boot(root):
    """A peer is closed once silent ``timeout`` ms; one that answers every ping is silent for
    ``pingInterval`` between them."""
    overrides = {"servers.websocket.server.pingInterval": 35000}

    with pytest.raises(ConfigError) as caught:
        load_config(root, "test", overrides=overrides, environ={})

    assert str(caught.value) == (
        "config: servers.websocket.server.timeout: expected more than pingInterval (35000), "
        "got 35000: a peer that answers every ping would be closed"
    )
