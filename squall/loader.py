"""Discovery of drop-in files: every ``*.py`` in the configured action folders.

Each file is imported once, at boot, under a private module name, and scanned for module-level
:class:`~squall.actions.Action`, :class:`~squall.middleware.ActionMiddleware`,
:class:`~squall.middleware.ConnectionMiddleware`, :class:`~squall.middleware.ChatMiddleware` and
:class:`~squall.initializers.Initializer` objects. A file that fails to import, or declares
something broken, stops the boot with an :class:`~squall.errors.ActionLoadError` naming the
file: a hook or validator that cannot be called the way Squall calls it, ``inputs`` that are not
a mapping, and two declarations of one name (two actions of one name and version, two
middleware of one kind and name: the second would silently replace the first, an auth check
included) naming both files.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import traceback
import types
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .actions import Action, ActionRegistry
from .errors import ActionLoadError, ConfigError
from .initializers import Initializer
from .middleware import ActionMiddleware, ChatMiddleware, ConnectionMiddleware

__all__ = ["Loaded", "load_callable", "load_folders"]


@dataclass
class Loaded:
    """What the drop-in folders declared, in load order."""

    actions: ActionRegistry = field(default_factory=ActionRegistry)
    action_middleware: list[ActionMiddleware] = field(default_factory=list)
    connection_middleware: list[ConnectionMiddleware] = field(default_factory=list)
    chat_middleware: list[ChatMiddleware] = field(default_factory=list)
    initializers: list[tuple[Initializer, Path]] = field(default_factory=list)
    #: (middleware kind, name) -> the file that declared it, to name both of a duplicate.
    sources: dict[tuple[str, str], str] = field(default_factory=dict)


def load_folders(folders: Iterable[Path]) -> Loaded:
    """Import every ``*.py`` (not starting with ``_``) of each folder, in name order."""
    loaded = Loaded()
    taken: set[str] = set()
    for folder in folders:
        if not folder.is_dir():
            raise ActionLoadError(str(folder), "action folder does not exist")
        package = _package_for(folder, taken)
        for path in sorted(folder.glob("*.py")):
            if not path.name.startswith("_"):
                _collect(_import(path, package), path, loaded)
    _check_middleware_names(loaded)
    return loaded


def _package_for(folder: Path, taken: set[str]) -> str:
    """Make ``folder`` the package ``squall_app.<name>``, so its files can import each other
    (``from ._shared import helper``, ``from squall_app.actions.chat import lobby``).

    A later load of another folder with the same name (a reload, a test) replaces the earlier
    package and its modules; two such folders in one load get distinct names.
    """
    if "squall_app" not in sys.modules:
        root = types.ModuleType("squall_app")
        root.__path__ = []
        sys.modules["squall_app"] = root
    location = str(folder.resolve())
    name = "squall_app." + re.sub(r"\W", "_", folder.name)
    if name in taken:
        name += f"_{zlib.crc32(location.encode()):08x}"
    taken.add(name)
    for stale in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[stale]
    package = types.ModuleType(name)
    package.__path__ = [location]
    sys.modules[name] = package
    return name


def _import(path: Path, package: str) -> dict[str, object]:
    module_name = f"{package}.{path.stem}"
    if module_name in sys.modules:  # already imported by a sibling's import statement
        return vars(sys.modules[module_name])
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ActionLoadError(str(path), "cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        line = _line_in(path, exc)
        raise ActionLoadError(f"{path}{line}", f"{type(exc).__name__}: {exc}") from exc
    return vars(module)


def _line_in(path: Path, exc: BaseException) -> str:
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f":{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return f":{frames[-1].lineno}" if frames else ""


def _collect(namespace: dict[str, object], path: Path, loaded: Loaded) -> None:
    """Keep every declaration of this file once, even when bound to two names or imported."""
    for value in namespace.values():
        if isinstance(value, Action):
            if any(existing is value for existing in loaded.actions):
                continue  # bound to two names, or imported from a file loaded before
            problems = value.problems()
            if problems:
                raise ActionLoadError(str(path), "; ".join(problems))
            try:
                loaded.actions.add(value)
            except ValueError as exc:
                raise ActionLoadError(str(path), str(exc)) from None
        elif isinstance(value, ActionMiddleware):
            _add_middleware(loaded, loaded.action_middleware, value, path)
        elif isinstance(value, ConnectionMiddleware):
            _add_middleware(loaded, loaded.connection_middleware, value, path)
        elif isinstance(value, ChatMiddleware):
            _add_middleware(loaded, loaded.chat_middleware, value, path)
        elif isinstance(value, Initializer) and all(
            existing is not value for existing, _ in loaded.initializers
        ):
            loaded.initializers.append((value, path))


def _add_middleware(loaded: Loaded, found: list[Any], middleware: Any, path: Path) -> None:
    """Keep ``middleware`` once; a different one of the same kind and name stops the boot."""
    if any(existing is middleware for existing in found):
        return  # bound to two names, or imported from a file loaded before
    problems = middleware.problems()
    if problems:
        raise ActionLoadError(str(path), "; ".join(problems))
    key = (middleware.KIND, middleware.name)
    other = loaded.sources.get(key)
    if other is not None:
        raise ActionLoadError(
            str(path),
            f"{middleware.KIND} {middleware.name!r} is declared twice ({other} and {path})",
        )
    loaded.sources[key] = str(path)
    found.append(middleware)


def _check_middleware_names(loaded: Loaded) -> None:
    known = {m.name for m in loaded.action_middleware}
    for declared in loaded.actions:
        for name in declared.middleware:
            if name not in known:
                raise ActionLoadError(
                    declared.source,
                    f"action {declared.name!r} names middleware {name!r}, which no file declares",
                )


def load_callable(dotted: str, option: str) -> Callable[..., object]:
    """Import ``package.module.function`` (or ``package.module:function``) named by an option.

    Raises:
        ConfigError: naming the option when the module or the function cannot be found.
    """
    module_name, _, attribute = dotted.replace(":", ".").rpartition(".")
    if not module_name:
        raise ConfigError("config", option, f"expected module.function, got {dotted!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError("config", option, f"cannot import {module_name!r}: {exc}") from None
    found = getattr(module, attribute, None)
    if not callable(found):
        raise ConfigError("config", option, f"{module_name!r} has no function {attribute!r}")
    return found
