"""Configuration: YAML files per environment, deep-merged, each checked against the schema.

The order, later winning: the defaults of :data:`squall.schema.SCHEMA`, ``config/default.yaml``
(those defaults written out with their docs), ``config/<env>.yaml``, each ``--config`` file, then
the environment variables ``PORT`` and ``SQUALL_REDIS_URL`` and the command-line flags
(``--port``, ``--host``). Maps merge key by key; lists and scalars replace. An environment
without its file is refused, listing those that exist: a typo such as ``--env prodution`` must
not run on development defaults.

Every layer is checked against the schema (``squall/schema.py``), where each option is declared
once: a key it does not know is a typo and stops the boot, as does a value of another type, out
of range or not among the allowed ones; then the merged whole against the rules between options
(:func:`squall.schema.check_together`). Every error is one line naming the file (or ``config``
for a rule between options), the key and what was expected.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .schema import ENTRIES, Option, check_together, children, defaults, kind_of

__all__ = ["Config", "deep_merge", "load_config"]


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
    data = _merged(defaults(), config_dir / "default.yaml", root)
    env_path = config_dir / f"{env}.yaml"
    if not env_path.is_file():
        known = sorted(p.stem for p in config_dir.glob("*.yaml") if p.stem != "default")
        why = f"no such environment {env!r} (environments: {', '.join(known) or 'none'})"
        raise ConfigError(_display(env_path, root), "", why)
    for path in [env_path, *extra_files]:
        data = _merged(data, Path(path), root)

    late = _environment_overrides(environ)
    late.update(overrides or {})
    for dotted, value in late.items():
        layer = _nest(dotted, value)
        _validate(layer, "command line / environment")
        data = deep_merge(data, layer)

    check_together(data)
    return Config(data, env, root)


def _merged(data: dict[str, Any], path: Path, root: Path) -> dict[str, Any]:
    """``data`` with the YAML file at ``path`` merged over it, once the file is checked."""
    source = _display(path, root)
    layer = _read_yaml(path, source)
    _validate(layer, source)
    return deep_merge(data, layer)


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


def _read_yaml(path: Path, shown: str) -> dict[str, Any]:
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
        raise ConfigError(shown, "", f"expected a map of sections, got {kind_of(loaded)}")
    return loaded


def _validate(layer: Mapping[str, Any], source: str, prefix: str = "") -> None:
    """Check one layer against :data:`squall.schema.SCHEMA`, key by key."""
    for key, value in layer.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if not isinstance(key, str):
            raise ConfigError(source, dotted, "option names must be strings")
        entry = ENTRIES.get(dotted)
        if entry is None:
            what = "option" if prefix else "section"
            known = ", ".join(sorted(children(prefix)))
            raise ConfigError(source, dotted, f"unknown {what} (known: {known})")
        if isinstance(entry, Option):
            entry.check_value(value, source)
        elif isinstance(value, dict):
            _validate(value, source, dotted)
        else:
            raise ConfigError(source, dotted, f"expected a map, got {kind_of(value)}")
