"""How an action is declared, looked up by name and version, and documented.

An action is a function plus what Squall needs to call it safely::

    from squall import action, Input

    @action(description="Add two numbers",
            inputs={"a": Input(required=True, formatter=int), "b": Input(default=0, formatter=int)})
    async def add(data):
        return {"sum": data.params["a"] + data.params["b"]}

The decorator returns an :class:`Action`; the loader finds every ``Action`` a file under
``actions/`` defines. ``run`` may be ``async def`` (it runs on the IOLoop and must not block) or
a plain ``def`` (it runs in a thread pool, so it may block). It receives an
:class:`~squall.processor.ActionData` and returns a dict of reply fields (or fills
``data.response`` and returns None).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .signatures import call_problem

__all__ = ["MISSING", "Action", "ActionRegistry", "Input", "action"]

#: Marks an input without a default (None is a legitimate default).
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]*$")


@dataclass(frozen=True)
class Input:
    """One declared parameter of an action.

    The pipeline, per input: ``default`` fills a missing value (a callable default is called
    with the params), ``formatter`` converts it, ``validator`` checks it, then ``required``
    rejects what is still missing. A formatter or validator that raises, or a validator that
    returns False or a string, fails the request with 422; a returned string is the message.
    """

    required: bool = False
    default: Any = MISSING
    formatter: Callable[[Any], Any] | None = None
    validator: Callable[[Any], Any] | None = None
    description: str | None = None

    def problems(self) -> list[str]:
        """Sentences about a formatter or validator that cannot be called with the value."""
        found = []
        for step in ("formatter", "validator"):
            value = getattr(self, step)
            problem = None if value is None else call_problem(value, ("value",))
            if problem is not None:
                found.append(f"{step} {problem}")
        return found

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"required": self.required}
        if self.default is not MISSING and not callable(self.default):
            doc["default"] = self.default
        if self.description:
            doc["description"] = self.description
        return doc


@dataclass(frozen=True)
class Action:
    """A declared action: a name, a version and the function that runs it."""

    name: str
    run: Callable[..., Any]
    description: str = ""
    version: int | float = 1
    inputs: Mapping[str, Input] = field(default_factory=dict)
    output_example: Mapping[str, Any] | None = None
    middleware: tuple[str, ...] = ()
    to_document: bool = True
    source: str = "<unknown>"

    @functools.cached_property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.run)

    def problems(self) -> list[str]:
        """What is wrong with this declaration, as sentences; empty when it is usable."""
        found = []
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            found.append(
                f"action name {self.name!r} must start with a letter and use only letters, "
                "digits, '_', '.', ':' or '-'"
            )
        problem = call_problem(self.run, ("data",))
        if problem is not None:
            found.append(f"action {self.name!r}: run {problem}")
        if isinstance(self.version, bool) or not isinstance(self.version, (int, float)):
            found.append(f"action {self.name!r}: version must be a number, got {self.version!r}")
        if not isinstance(self.inputs, Mapping):
            kind = type(self.inputs).__name__
            found.append(
                f"action {self.name!r}: inputs must be a mapping of input name to Input(...), "
                f"such as {{'name': Input(required=True)}}; got a {kind}"
            )
            return found
        for key, spec in self.inputs.items():
            if not isinstance(key, str):
                found.append(f"action {self.name!r}: input names must be strings, got {key!r}")
            elif not isinstance(spec, Input):
                found.append(f"action {self.name!r}: input {key!r} must be an Input(...)")
            else:
                found.extend(f"action {self.name!r}: input {key!r} {p}" for p in spec.problems())
        return found

    def document(self, middleware: bool = False) -> dict[str, Any]:
        """This version as PROTOCOL.md §2.1's ``documentation`` verb shows it; with
        ``middleware``, also the action middleware it names (for the API reference page)."""
        doc: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "inputs": {key: spec.document() for key, spec in self.inputs.items()},
        }
        if self.output_example is not None:
            doc["outputExample"] = dict(self.output_example)
        if middleware and self.middleware:
            doc["middleware"] = list(self.middleware)
        return doc


def action(
    name: str | None = None,
    *,
    description: str = "",
    version: int | float = 1,
    inputs: Mapping[str, Input] | None = None,
    output_example: Mapping[str, Any] | None = None,
    middleware: Iterable[str] = (),
    to_document: bool = True,
) -> Callable[[Callable[..., Any]], Action]:
    """Declare the decorated function as an action (named after the function by default)."""

    def declare(run: Callable[..., Any]) -> Action:
        return Action(
            name=name or run.__name__,
            run=run,
            description=description or (inspect.getdoc(run) or "").strip(),
            version=version,
            inputs=dict(inputs) if isinstance(inputs, Mapping) else (inputs or {}),
            output_example=output_example,
            middleware=tuple(middleware),
            to_document=to_document,
            source=inspect.getsourcefile(run) or "<unknown>",
        )

    return declare


def _version_key(value: Any) -> float | None:
    """Normalise an apiVersion as sent (2, 2.0, "2") to one comparable key; None if invalid."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


class ActionRegistry:
    """Every loaded action, by name and version; the highest version is the default."""

    def __init__(self, actions: Iterable[Action] = ()) -> None:
        self._versions: dict[str, dict[float, Action]] = {}
        self._latest: dict[str, Action] = {}
        for declared in actions:
            self.add(declared)

    def add(self, declared: Action) -> None:
        """Register an action; the same name and version twice is an error naming both files."""
        versions = self._versions.setdefault(declared.name, {})
        key = float(declared.version)
        if key in versions:
            other = versions[key].source
            raise ValueError(
                f"action {declared.name!r} version {declared.version} is declared twice "
                f"({other} and {declared.source})"
            )
        versions[key] = declared
        self._latest[declared.name] = versions[max(versions)]

    def match(self, name: Any, api_version: Any = None) -> Action | None:
        """The action to run for a request, or None: unknown name or version (pure lookup)."""
        if not isinstance(name, str):
            return None
        if api_version is None or api_version == "":
            return self._latest.get(name)
        key = _version_key(api_version)
        versions = self._versions.get(name)
        if key is None or versions is None:
            return None
        return versions.get(key)

    def __iter__(self):
        for versions in self._versions.values():
            yield from versions.values()

    def __len__(self) -> int:
        return sum(len(versions) for versions in self._versions.values())

    def documentation(self, middleware: bool = False) -> dict[str, dict[str, dict[str, Any]]]:
        """``{name: {version: {name, version, description, inputs, outputExample?}}}``, the
        ``documentation`` verb's shape (PROTOCOL.md §2.1); ``middleware`` adds each version's
        ``middleware`` names where it has some (``showDocumentation``, for the docs page)."""
        docs: dict[str, dict[str, dict[str, Any]]] = {}
        for name in sorted(self._versions):
            for key in sorted(self._versions[name]):
                declared = self._versions[name][key]
                if declared.to_document:
                    docs.setdefault(name, {})[_version_label(declared.version)] = declared.document(
                        middleware
                    )
        return docs


def _version_label(version: int | float) -> str:
    return str(int(version)) if float(version).is_integer() else str(version)
