"""The config loader: layering, deep merge, environment overrides and every error path.

Each test builds a small application folder whose ``config/default.yaml`` is the real one (the
schema), then adds the layers it needs.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from squall import Config, ConfigError, load_config
from squall.config import deep_merge

from .conftest import DEFAULT_YAML

DEFAULTS = yaml.safe_load(DEFAULT_YAML.read_text())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    shutil.copy(DEFAULT_YAML, tmp_path / "config" / "default.yaml")
    (tmp_path / "config" / "test.yaml").write_text("")
    return tmp_path


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(root: Path, env: str = "test", **options) -> Config:
    options.setdefault("environ", {})
    return load_config(root, env, **options)


def error_of(root: Path, env: str = "test", **options) -> str:
    with pytest.raises(ConfigError) as caught:
        load(root, env, **options)
    return str(caught.value)


def env_error(root: Path, text: str) -> str:
    write(root, "config/test.yaml", text)
    return error_of(root)


# -- deep_merge ---------------------------------------------------------------------------


def test_deep_merge_maps_merge_key_by_key():
    base = {"a": {"b": 1, "c": {"d": 2, "e": 3}}, "f": 4}
    override = {"a": {"c": {"e": 30, "g": 5}}}

    assert deep_merge(base, override) == {"a": {"b": 1, "c": {"d": 2, "e": 30, "g": 5}}, "f": 4}


def test_deep_merge_lists_replace():
    assert deep_merge({"a": [1, 2, 3]}, {"a": [4]}) == {"a": [4]}


def test_deep_merge_scalars_replace():
    assert deep_merge({"a": 1, "b": "x"}, {"a": "one", "b": None}) == {"a": "one", "b": None}


def test_deep_merge_map_over_scalar_replaces():
    assert deep_merge({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}


def test_deep_merge_scalar_over_map_replaces():
    assert deep_merge({"a": {"b": 2}}, {"a": 1}) == {"a": 1}


def test_deep_merge_leaves_its_inputs_untouched():
    base = {"a": {"b": [1]}}
    override = {"a": {"c": {"d": [2]}}}
    base_before, override_before = copy.deepcopy(base), copy.deepcopy(override)

    merged = deep_merge(base, override)
    merged["a"]["b"].append(9)
    merged["a"]["c"]["d"].append(9)

    assert base == base_before
    assert override == override_before


# -- layering -----------------------------------------------------------------------------


def test_load_config_defaults_only_under_an_empty_env_file(root):
    config = load(root, "test")

    assert config.data == DEFAULTS
    assert config.env == "test"
    assert config.root == root


def test_load_config_refuses_an_environment_without_its_file_listing_those_that_exist(root):
    """``--env prodution`` must not run silently on the development defaults."""
    write(root, "config/production.yaml", "")
    write(root, "config/development.yaml", "")

    assert error_of(root, "prodution") == (
        "config/prodution.yaml: no such environment 'prodution' "
        "(environments: development, production, test)"
    )


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error", "critical", "WARNING"])
def test_load_config_log_levels(root, level):
    assert load(root, overrides={"general.logLevel": level}).get("general.logLevel") == level


@pytest.mark.parametrize("level", ["verbose", "warn", "trace", "fatal", ""])
def test_load_config_refuses_a_log_level_that_is_not_one(root, level):
    assert error_of(root, overrides={"general.logLevel": level}) == (
        "command line / environment: general.logLevel: expected one of debug, info, warning, "
        f"error, critical, got {level!r}"
    )


def test_load_config_production_has_bounded_socket_defaults():
    repo = DEFAULT_YAML.parents[1]
    production = load_config(repo, "production", environ={})
    server = production["servers"]["websocket"]["server"]

    assert (server["maxConnections"], server["maxConnectionsPerAddress"]) == (10000, 100)
    assert (server["rateLimit"], server["rateBurst"]) == (50, 100)
    assert production.get("general.exposeErrors") is False
    for env in ("development", "test"):
        assert load_config(repo, env, environ={}).get("general.exposeErrors") is True


def test_load_config_env_file_merges_over_defaults(root):
    write(root, "config/test.yaml", "servers:\n  web:\n    port: 9001\n")

    config = load(root)

    assert config.get("servers.web.port") == 9001
    assert config.get("servers.web.bindIP") == "0.0.0.0"
    assert config["servers"]["websocket"] == DEFAULTS["servers"]["websocket"]


def test_load_config_env_file_replaces_lists(root):
    write(root, "config/test.yaml", "general:\n  paths:\n    actions: [one, two]\n")

    config = load(root)

    assert config.get("general.paths.actions") == ["one", "two"]
    assert config.get("general.paths.public") == "public"


def test_load_config_other_env_file_is_ignored(root):
    write(root, "config/production.yaml", "servers:\n  web:\n    port: 1\n")

    assert load(root, "test").get("servers.web.port") == 8080


def test_load_config_empty_env_file_changes_nothing(root):
    write(root, "config/test.yaml", "# nothing yet\n")

    assert load(root).data == DEFAULTS


def test_load_config_extra_files_merge_in_order_after_env_file(root):
    write(root, "config/test.yaml", "servers:\n  web:\n    port: 1\n    bindIP: 1.1.1.1\n")
    first = write(root, "first.yaml", "servers:\n  web:\n    port: 2\n")
    second = write(root, "second.yaml", "general:\n  serverName: second\n")

    config = load(root, extra_files=[first, second])

    assert config.get("servers.web.port") == 2
    assert config.get("servers.web.bindIP") == "1.1.1.1"
    assert config.get("general.serverName") == "second"


def test_load_config_later_extra_file_wins(root):
    first = write(root, "first.yaml", "general:\n  serverName: first\n")
    second = write(root, "second.yaml", "general:\n  serverName: second\n")

    assert load(root, extra_files=[first, second]).get("general.serverName") == "second"
    assert load(root, extra_files=[second, first]).get("general.serverName") == "first"


def test_load_config_port_env_overrides_files(root):
    extra = write(root, "extra.yaml", "servers:\n  web:\n    port: 2\n")

    config = load(root, extra_files=[extra], environ={"PORT": "9100"})

    assert config.get("servers.web.port") == 9100


def test_load_config_empty_port_env_is_ignored(root):
    assert load(root, environ={"PORT": ""}).get("servers.web.port") == 8080


def test_load_config_overrides_win_over_port_env(root):
    config = load(root, environ={"PORT": "9100"}, overrides={"servers.web.port": 9200})

    assert config.get("servers.web.port") == 9200


def test_load_config_redis_url_env_enables_redis(root):
    config = load(root, environ={"SQUALL_REDIS_URL": "redis://cache:6380/2"})

    assert config["redis"] == {**DEFAULTS["redis"], "enabled": True, "url": "redis://cache:6380/2"}


def test_load_config_without_redis_url_env_keeps_redis_off(root):
    assert load(root, environ={"SQUALL_REDIS_URL": ""}).get("redis.enabled") is False


def test_load_config_reads_os_environ_when_environ_is_omitted(root, monkeypatch):
    monkeypatch.setenv("PORT", "9300")
    monkeypatch.delenv("SQUALL_REDIS_URL", raising=False)

    assert load_config(root, "test").get("servers.web.port") == 9300


def test_config_get_returns_default_for_missing_paths(root):
    config = load(root)

    assert config.get("general.nothing") is None
    assert config.get("general.serverName.deeper", "fallback") == "fallback"
    assert config.get("nothing.at.all", 7) == 7


def test_config_path_resolves_against_root(root):
    assert load(root).path("general.paths.public") == (root / "public").resolve()


# -- open maps, nullable options ----------------------------------------------------------


def test_load_config_starting_chat_rooms_take_room_options(root):
    write(
        root,
        "config/test.yaml",
        "general:\n  startingChatRooms:\n    lobby: {presence: true, history: {size: 50}}\n"
        "    plain:\n",
    )

    rooms = load(root).get("general.startingChatRooms")

    assert rooms == {
        "defaultRoom": {},
        "lobby": {"presence": True, "history": {"size": 50}},
        "plain": None,
    }


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("{topic: hi}", "lobby.topic: unknown room option (known: presence, history)"),
        ("5", "lobby: expected a map of presence and history, got int 5"),
        ("{presence: 'yes'}", "lobby.presence: expected true or false, got str 'yes'"),
        ("{history: 50}", "lobby.history: expected a map of size and ttl, got int 50"),
        (
            "{history: {size: -1}}",
            "lobby.history.size: expected an integer from 0 to 10000, got int -1",
        ),
        (
            "{history: {size: 10, ttl: 10}}",
            "lobby.history.ttl: expected an integer of at least 1000, got int 10",
        ),
        (
            "{history: {size: 10, keep: 5}}",
            "lobby.history.keep: unknown history option (known: size, ttl)",
        ),
    ],
)
def test_load_config_refuses_room_options_naming_the_key(root, options, expected):
    text = f"general:\n  startingChatRooms:\n    lobby: {options}\n"

    assert env_error(root, text) == f"config/test.yaml: general.startingChatRooms.{expected}"


def test_load_config_app_section_accepts_anything(root):
    write(root, "config/test.yaml", "app:\n  mine: {deep: [1, {x: null}]}\n  flag: true\n")

    assert load(root)["app"] == {"mine": {"deep": [1, {"x": None}]}, "flag": True}


def test_load_config_http_headers_accept_new_headers(root):
    write(root, "config/test.yaml", "servers:\n  web:\n    httpHeaders:\n      X-Extra: yes\n")

    headers = load(root).get("servers.web.httpHeaders")

    assert headers == {**DEFAULTS["servers"]["web"]["httpHeaders"], "X-Extra": True}


@pytest.mark.parametrize(
    ("dotted", "value"),
    [
        ("general.id", "server-a"),
        ("general.id", None),
        ("general.actionTimeout", None),
        ("general.actionTimeout", 10),
        ("general.blockedLoopWarning", None),
        ("servers.web.certFile", "/etc/cert.pem"),
        ("servers.web.fingerprint.maxAge", 3600),
        ("servers.websocket.clientJsName", None),
        ("servers.websocket.server.authorization", "authz.check"),
        ("servers.websocket.server.maxConnections", 100),
        ("servers.websocket.server.maxConnections", None),
        ("servers.websocket.server.rateLimit", 2.5),
        ("servers.websocket.server.rateLimit", 20),
        ("servers.websocket.server.origins", ["http://a.example", "http://b.example"]),
        ("servers.websocket.client.reconnect.retries", 3),
        ("servers.websocket.client.queueSize", None),
    ],
)
def test_load_config_nullable_option_accepts(root, dotted, value):
    assert load(root, overrides={dotted: value}).get(dotted, "absent") == value


def test_load_config_integer_accepted_for_number_option(root):
    extra = write(root, "extra.yaml", "servers:\n  websocket:\n    server:\n      rateLimit: 3\n")

    assert load(root, extra_files=[extra]).get("servers.websocket.server.rateLimit") == 3


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "general:\n  serverName: a: b\n",
            "line 2, column 16: mapping values are not allowed here",
        ),
        (
            "general:\n\tserverName: a\n",
            "line 2, column 1: found character '\\t' that cannot start any token",
        ),
        # an unclosed list is named where the file ends
        (
            "general:\n  paths:\n    actions: [a, b\n",
            "line 4, column 1: expected ',' or ']', but got '<stream end>'",
        ),
        ("general: {}\n---\nredis: {}\n", "line 2, column 1: but found another document"),
    ],
)
def test_load_config_invalid_yaml_names_line_and_column(root, text, expected):
    assert env_error(root, text) == f"config/test.yaml: invalid YAML at {expected}"


def test_load_config_control_character_error_is_one_line(root):
    message = env_error(root, "general:\n  serverName: a\x07b\n")

    assert message.startswith("config/test.yaml: invalid YAML")
    assert "\n" not in message


def test_load_config_deeply_nested_yaml_is_a_config_error(root):
    write(root, "config/test.yaml", "app:\n  x: " + "[" * 600 + "]" * 600 + "\n")

    message = escaped = None
    try:
        load(root)
    except ConfigError as error:
        message = str(error)
    except RecursionError as error:
        escaped = type(error).__name__  # failing outside the handler keeps the report short
    assert escaped is None, f"{escaped} escaped load_config instead of a ConfigError"

    assert message is not None
    assert message.startswith("config/test.yaml: ")
    assert "\n" not in message


def test_load_config_invalid_utf8_is_a_config_error(root):
    (root / "config" / "test.yaml").write_bytes(b"general:\n  serverName: \xff\xfe\n")

    message = error_of(root)

    assert message.startswith("config/test.yaml: cannot be read (")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("servers: {web: {port: '80'}}", "servers.web.port: expected an integer, got str '80'"),
        ("servers: {web: {port: 80.5}}", "servers.web.port: expected an integer, got float 80.5"),
        ("servers: {web: {port: true}}", "servers.web.port: expected an integer, got bool True"),
        ("servers: {web: {enabled: 1}}", "servers.web.enabled: expected true or false, got int 1"),
        ("general:\n  apiVersion: 1.0\n", "general.apiVersion: expected a string, got float 1.0"),
        (
            "general:\n  paths:\n    actions: actions\n",
            "general.paths.actions: expected a list, got str 'actions'",
        ),
        ("general:\n  paths: [actions]\n", "general.paths: expected a map, got a list"),
        ("general: 5\n", "general: expected a map, got int 5"),
        ("app: [1]\n", "app: expected a map, got a list"),
        (
            "general:\n  startingChatRooms: [lobby]\n",
            "general.startingChatRooms: expected a map, got a list",
        ),
        ("general:\n  id: 5\n", "general.id: expected a string or null, got int 5"),
        (
            "general:\n  actionTimeout: soon\n",
            "general.actionTimeout: expected an integer or null, got str 'soon'",
        ),
        (
            "servers:\n  websocket:\n    server:\n      maxConnections: [1]\n",
            "servers.websocket.server.maxConnections: expected an integer or null, got a list",
        ),
        (
            "servers:\n  websocket:\n    server:\n      rateLimit: fast\n",
            "servers.websocket.server.rateLimit: expected an integer or a number or null, "
            "got str 'fast'",
        ),
        ("- general\n- servers\n", "expected a map of sections, got a list"),
        ("8080\n", "expected a map of sections, got int 8080"),
        (
            "webserver:\n  port: 1\n",
            "webserver: unknown section (known: app, errors, general, redis, servers)",
        ),
        (
            "redis:\n  host: localhost\n",
            "redis.host: unknown option (known: canaryInterval, clusterName, enabled, "
            "leaseTimeout, outboxBytes, outboxSize, url)",
        ),
        (
            "servers: {websocket: {client: {reconnect: {x: 1}}}}\n",
            "servers.websocket.client.reconnect.x: unknown option (known: max, min, retries)",
        ),
        ("general:\n  5: x\n", "general.5: option names must be strings"),
        ("general:\n", "general: expected a map, got null"),
    ],
)
def test_load_config_unknown_name_or_wrong_type_is_refused_naming_the_option(root, text, expected):
    assert env_error(root, text) == f"config/test.yaml: {expected}"


@pytest.mark.parametrize(
    ("dotted", "expected"),
    [
        ("servers.web.port", "expected an integer, got null"),
        ("general.simultaneousActions", "expected an integer, got null"),
        ("general.serverName", "expected a string, got null"),
        ("general.paths", "expected a map, got null"),
        ("redis.enabled", "expected true or false, got null"),
    ],
)
def test_load_config_null_where_disallowed(root, dotted, expected):
    assert error_of(root, overrides={dotted: None}) == (
        f"command line / environment: {dotted}: {expected}"
    )


@pytest.mark.parametrize("origins", [None, "*", ["https://chat.example.com"], []])
def test_load_config_origins_take_null_star_or_a_list(root, origins):
    config = load(root, overrides={"servers.websocket.server.origins": origins})

    assert config.get("servers.websocket.server.origins") == origins


def test_load_config_origins_default_is_the_pages_own_host():
    """ "*" only where written; the default (null) is the page's own host."""
    repo = DEFAULT_YAML.parents[1]
    for env in ("development", "test", "production"):
        assert load_config(repo, env, environ={}).get("servers.websocket.server.origins") is None


@pytest.mark.parametrize("origins", ["https://chat.example.com", "any", ""])
def test_load_config_origins_as_a_string_must_be_star(root, origins):
    """A single origin written as a string used to be matched as a substring."""
    write(
        root,
        "config/test.yaml",
        f"servers:\n  websocket:\n    server:\n      origins: '{origins}'\n",
    )

    assert error_of(root) == (
        "config/test.yaml: servers.websocket.server.origins: expected a list of origins, "
        f'"*" or null (the page\'s own host), got {origins!r}'
    )


def test_load_config_error_in_extra_file_names_it_relative_to_root(root):
    extra = write(root, "config/local.yaml", "redis:\n  port: 1\n")

    assert error_of(root, extra_files=[extra]) == (
        "config/local.yaml: redis.port: unknown option "
        "(known: canaryInterval, clusterName, enabled, leaseTimeout, outboxBytes, outboxSize, url)"
    )


def test_load_config_error_in_outside_extra_file_names_its_path(root, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "extra.yaml"
    outside.write_text("bogus: 1\n")

    assert error_of(root, extra_files=[outside]) == (
        f"{outside}: bogus: unknown section (known: app, errors, general, redis, servers)"
    )


def test_load_config_missing_extra_file(root):
    assert error_of(root, extra_files=[root / "config" / "nope.yaml"]) == (
        "config/nope.yaml: file not found"
    )


def test_load_config_missing_default_file(tmp_path):
    (tmp_path / "config").mkdir()

    assert error_of(tmp_path) == "config/default.yaml: file not found"


def test_load_config_port_env_not_a_number(root):
    assert error_of(root, environ={"PORT": "eighty"}) == (
        "environment: PORT: expected an integer, got 'eighty'"
    )


def test_load_config_override_of_wrong_type(root):
    assert error_of(root, overrides={"servers.web.port": "x"}) == (
        "command line / environment: servers.web.port: expected an integer, got str 'x'"
    )


def test_load_config_override_of_unknown_option(root):
    assert error_of(root, overrides={"general.colour": "red"}).startswith(
        "command line / environment: general.colour: unknown option (known: actionThreads, "
    )


def test_load_config_error_is_checked_before_later_layers(root):
    write(root, "config/test.yaml", "bogus: 1\n")
    fixed = write(root, "fix.yaml", "general:\n  serverName: x\n")

    assert error_of(root, extra_files=[fixed]) == (
        "config/test.yaml: bogus: unknown section (known: app, errors, general, redis, servers)"
    )


def test_config_error_keeps_source_key_and_reason(root):
    write(root, "config/test.yaml", "servers:\n  web:\n    port: x\n")

    with pytest.raises(ConfigError) as caught:
        load(root)

    assert (caught.value.source, caught.value.key, caught.value.why) == (
        "config/test.yaml",
        "servers.web.port",
        "expected an integer, got str 'x'",
    )


def test_repository_environment_files_all_load():
    repo = DEFAULT_YAML.parents[1]
    for env in ("development", "test", "production"):
        assert load_config(repo, env, environ={}).env == env


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "general:\n  paths:\n    actions: [5]\n",
            "general.paths.actions[0]: expected a string, got int 5",
        ),
        (
            "general:\n  paths:\n    actions: [actions, {a: 1}]\n",
            "general.paths.actions[1]: expected a string, got a map",
        ),
        (
            "general:\n  paths:\n    initializers: [initializers, 7]\n",
            "general.paths.initializers[1]: expected a string, got int 7",
        ),
        (
            "servers:\n  websocket:\n    server:\n      origins: [http://a.example, 5]\n",
            "servers.websocket.server.origins[1]: expected a string, got int 5",
        ),
    ],
)
def test_load_config_list_items_of_the_wrong_type(root, text, expected):
    """A list of folders or origins holding a number is a wrong type too: one line at boot,
    not a TypeError later (general.paths.actions: [5] crashed Squall() with a traceback)."""
    assert env_error(root, text) == f"config/test.yaml: {expected}"
