"""Configuration: YAML files per environment, deep-merged, validated against the defaults.

The order, later winning: ``config/default.yaml``, ``config/<env>.yaml``, each ``--config``
file, then environment variables (``PORT``, ``SQUALL_REDIS_URL``) and command-line flags. Maps
merge key by key; lists and scalars replace. An environment without its file is refused, listing
those that exist: a typo such as ``--env prodution`` must not run on development defaults.

``default.yaml`` is the schema: every option exists there, so a key it does not know is a typo
and stops the boot, as does a value of another type. An option whose default is ``null`` takes
the type listed in :data:`NULLABLE`. A few maps are open (their keys are the user's own):
:data:`OPEN_MAPS`. Every error is one line naming the file, the key and what was expected.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .logs import LOG_FORMATS

__all__ = ["Config", "deep_merge", "load_config"]

#: The type an option takes when its default is null.
NULLABLE: dict[str, tuple[type, ...]] = {
    "general.id": (str,),
    "general.blockedLoopWarning": (int,),
    "general.actionTimeout": (int,),
    "general.maxRooms": (int,),
    "general.emptyRoomTtl": (int,),
    "servers.web.certFile": (str,),
    "servers.web.keyFile": (str,),
    "servers.web.fingerprint.maxAge": (int,),
    "servers.web.metrics.token": (str,),
    "servers.web.admin.token": (str,),
    "servers.websocket.clientJsName": (str,),
    "servers.websocket.server.authorization": (str,),
    "servers.websocket.server.maxConnections": (int,),
    "servers.websocket.server.maxConnectionsPerAddress": (int,),
    "servers.websocket.server.rateLimit": (int, float),
    "servers.websocket.server.origins": (str, list),
    "servers.websocket.client.reconnect.retries": (int,),
    "servers.websocket.client.queueSize": (int,),
}

#: Maps whose keys are chosen by the user: their contents are not checked against the defaults.
OPEN_MAPS = frozenset(
    {"general.startingChatRooms", "servers.web.httpHeaders", "app"},
)

#: Options that may be set to null to disable them although their default is a value.
DISABLEABLE = frozenset(
    {
        "general.actionTimeout",
        "general.blockedLoopWarning",
        "general.maxRooms",
        "general.emptyRoomTtl",
        "servers.websocket.clientJsName",
        "servers.websocket.client.queueSize",
        "servers.websocket.server.maxConnections",
        "servers.websocket.server.maxConnectionsPerAddress",
        "servers.websocket.server.rateLimit",
    }
)

_TYPE_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a map",
}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` over ``base``: maps merge key by key, anything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class Config:
    """The merged configuration: a nested dict plus dotted-path access.

    ``config["servers"]["web"]["port"]`` and ``config.get("servers.web.port")`` are the same.
    """

    def __init__(self, data: dict[str, Any], env: str, root: Path) -> None:
        self.data = data
        self.env = env
        self.root = root

    def __getitem__(self, section: str) -> Any:
        return self.data[section]

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def path(self, dotted: str) -> Path:
        """An option holding a path, resolved against the application's folder."""
        return (self.root / self.get(dotted)).resolve()


def load_config(
    root: Path,
    env: str = "development",
    extra_files: Iterable[Path] = (),
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load and validate the configuration of the application in ``root``.

    Args:
        root: the application's folder (holding ``config/``).
        env: the environment; ``config/<env>.yaml`` must exist and is merged.
        extra_files: further YAML files merged in order (``--config``).
        overrides: dotted keys set last (command-line flags), e.g. ``{"servers.web.port": 9000}``.
        environ: the process environment (``os.environ`` when omitted).

    Raises:
        ConfigError: naming the file, the key and what was expected.
    """
    environ = os.environ if environ is None else environ
    config_dir = root / "config"
    default_path = config_dir / "default.yaml"
    defaults = _read_yaml(default_path, root)
    data = copy.deepcopy(defaults)

    env_path = config_dir / f"{env}.yaml"
    if not env_path.is_file():
        known = sorted(p.stem for p in config_dir.glob("*.yaml") if p.stem != "default")
        why = f"no such environment {env!r} (environments: {', '.join(known) or 'none'})"
        raise ConfigError(_display(env_path, root), "", why)
    for path in [env_path, *extra_files]:
        path = Path(path)
        layer = _read_yaml(path, root)
        _validate(layer, defaults, _display(path, root), "")
        data = deep_merge(data, layer)

    late = _environment_overrides(environ)
    late.update(overrides or {})
    for dotted, value in late.items():
        layer = _nest(dotted, value)
        _validate(layer, defaults, "command line / environment", "")
        data = deep_merge(data, layer)

    return Config(data, env, root)


def _environment_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if environ.get("PORT"):
        found["servers.web.port"] = _int_from_text("PORT", environ["PORT"])
    if environ.get("SQUALL_REDIS_URL"):
        found["redis.enabled"] = True
        found["redis.url"] = environ["SQUALL_REDIS_URL"]
    return found


def _int_from_text(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError("environment", name, f"expected an integer, got {text!r}") from None


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    node: dict[str, Any] = {}
    parts = dotted.split(".")
    cursor = node
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return node


def _display(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _read_yaml(path: Path, root: Path) -> dict[str, Any]:
    shown = _display(path, root)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(shown, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(shown, "", f"cannot be read ({exc})") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join((getattr(exc, "problem", None) or str(exc)).split())
        raise ConfigError(shown, "", f"invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(shown, "", "invalid YAML: nested too deeply") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(shown, "", f"expected a map of sections, got {_kind(loaded)}")
    return loaded


def _validate(
    layer: Mapping[str, Any], schema: Mapping[str, Any], source: str, prefix: str
) -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if not isinstance(key, str):
            raise ConfigError(source, dotted, "option names must be strings")
        if key not in schema:
            what = "section" if not prefix else "option"
            known = ", ".join(sorted(schema))
            raise ConfigError(source, dotted, f"unknown {what} (known: {known})")
        expected = schema[key]
        if value is None and (expected is None or dotted in DISABLEABLE):
            continue
        if expected is None:
            _check_nullable(value, dotted, source, null_allowed=True)
        elif isinstance(expected, dict):
            if not isinstance(value, dict):
                raise ConfigError(source, dotted, f"expected a map, got {_kind(value)}")
            if dotted not in OPEN_MAPS:
                _validate(value, expected, source, dotted + ".")
            elif dotted == "general.startingChatRooms":
                for room in value:
                    if not isinstance(room, str) or not room:
                        why = f"room names must be non-empty strings, got {_kind(room)}"
                        raise ConfigError(source, dotted, why)
        elif not _same_type(value, expected):
            if dotted in NULLABLE:
                _check_nullable(value, dotted, source, null_allowed=False)
            else:
                want = _TYPE_NAMES.get(type(expected), type(expected).__name__)
                raise ConfigError(source, dotted, f"expected {want}, got {_kind(value)}")
        if isinstance(value, list):
            _check_items(value, dotted, source)
        _check_range(value, dotted, source)
        _check_value(value, dotted, source)


#: Bounds of numeric options (inclusive; None: unbounded). Durations are milliseconds.
RANGES: dict[str, tuple[float, float | None]] = {
    "servers.web.port": (0, 65535),
    "general.simultaneousActions": (1, None),
    "general.simultaneousRequests": (1, None),
    "general.actionThreads": (1, None),
    "general.maxRoomNameLength": (1, None),
    "general.maxRooms": (1, None),
    "general.emptyRoomTtl": (100, None),
    "general.sessionTtl": (1000, None),
    "general.sessionMaxBytes": (2, None),
    "general.actionTimeout": (1, None),
    "general.shutdownTimeout": (0, None),
    "general.blockedLoopWarning": (10, None),
    "servers.web.flatFileCacheDuration": (0, None),
    "servers.web.maxBodySize": (1, None),
    "servers.web.maxHeaderSize": (1024, None),
    "servers.web.idleConnectionTimeout": (1, None),
    "servers.websocket.server.timeout": (1, None),
    "servers.websocket.server.pingInterval": (1, None),
    "servers.websocket.server.maxMessageSize": (1, None),
    "servers.websocket.server.maxBufferedBytes": (1, None),
    "servers.websocket.server.maxConnections": (0, None),
    "servers.websocket.server.maxConnectionsPerAddress": (1, None),
    "servers.websocket.server.rateLimit": (0.001, None),
    "servers.websocket.server.rateBurst": (1, None),
    "servers.websocket.client.timeout": (0, None),
    "servers.websocket.client.ping": (1, None),
    "servers.websocket.client.pong": (1, None),
    "servers.websocket.client.queueSize": (0, None),
    "servers.websocket.client.reconnect.min": (1, None),
    "servers.websocket.client.reconnect.max": (1, None),
    "servers.websocket.client.reconnect.retries": (0, None),
    "redis.leaseTimeout": (100, None),
    "redis.canaryInterval": (100, None),
    "redis.outboxSize": (0, None),
    "redis.outboxBytes": (0, None),
}


#: Options whose value must pass a check beyond its type: ``key: (check, what is expected)``.
VALUES: dict[str, tuple[Any, str]] = {
    "general.logLevel": (
        lambda v: v.lower() in ("debug", "info", "warning", "error", "critical"),
        "one of debug, info, warning, error, critical",
    ),
    "general.logFormat": (lambda v: v in LOG_FORMATS, '"text" or "json"'),
    # as a string only "*"; else a list, or null
    "servers.websocket.server.origins": (
        lambda v: v == "*",
        'a list of origins, "*" or null (the page\'s own host)',
    ),
    "servers.web.metrics.path": (
        lambda v: v.startswith("/") and len(v) > 1,
        'a path starting with "/", like "/metrics"',
    ),
    "servers.web.metrics.token": (bool, "a non-empty string, or null for no token"),
    "servers.web.admin.path": (
        lambda v: v.startswith("/") and len(v) > 1 and not v.endswith("/"),
        'a path starting with "/" and not ending with one, like "/admin"',
    ),
    "servers.web.admin.token": (bool, "a non-empty string, or null to turn the page off"),
}


def _check_value(value: Any, dotted: str, source: str) -> None:
    rule = VALUES.get(dotted)
    if rule is not None and value is not None and isinstance(value, str) and not rule[0](value):
        raise ConfigError(source, dotted, f"expected {rule[1]}, got {value!r}")


def _check_range(value: Any, dotted: str, source: str) -> None:
    bounds = RANGES.get(dotted)
    if bounds is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, high = bounds
    if value < low or (high is not None and value > high):
        want = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ConfigError(source, dotted, f"expected a number {want}, got {value!r}")


#: What the items of a list option must be.
LIST_ITEMS: dict[str, type] = {
    "general.paths.actions": str,
    "general.paths.initializers": str,
    "servers.websocket.server.origins": str,
}


def _check_items(value: list[Any], dotted: str, source: str) -> None:
    item_type = LIST_ITEMS.get(dotted)
    if item_type is None:
        return
    for index, item in enumerate(value):
        if not _same_type(item, item_type()):
            want = _TYPE_NAMES.get(item_type, item_type.__name__)
            raise ConfigError(source, f"{dotted}[{index}]", f"expected {want}, got {_kind(item)}")


def _check_nullable(value: Any, dotted: str, source: str, null_allowed: bool) -> None:
    allowed = NULLABLE.get(dotted)
    if allowed is None or (value is not None and any(_same_type(value, t()) for t in allowed)):
        return
    want = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in allowed)
    if null_allowed or dotted in DISABLEABLE:
        want += " or null"
    raise ConfigError(source, dotted, f"expected {want}, got {_kind(value)}")


def _same_type(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(expected, bool)
    if isinstance(expected, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(expected))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return _TYPE_NAMES[type(value)]
    return f"{type(value).__name__} {value!r}"
