"""Initializers: what an application opens at boot and closes at shutdown (ActionHero's way).

Declare them as module-level objects in a drop-in file (under ``actions/`` or, when present,
``initializers/``: the folders of ``general.paths``)::

    from squall import Initializer

    async def open_pool(app):
        app.state.db = await asyncpg.create_pool(app.config["app"]["dsn"])

    async def close_pool(app):
        await app.state.db.close()

    database = Initializer(name="database", start=open_pool, stop=close_pool, priority=10)

``start(app)`` hooks run in ascending ``priority`` (ties keep load order) before the server opens
its port; one that raises stops the boot with an error naming its file, after the ones already
started are stopped again. ``stop(app)`` hooks run in the reverse order, after every socket is
closed. Hooks may be plain functions or coroutines. What they open goes on ``app.state``, which
actions reach as ``data.app.state``.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ActionLoadError
from .middleware import resolve

__all__ = ["Initializer", "Initializers"]

log = logging.getLogger("squall.initializers")

Hook = Callable[[Any], Any] | None


@dataclass(frozen=True)
class Initializer:
    """Opens a resource at boot (``start(app)``) and closes it at shutdown (``stop(app)``)."""

    name: str
    start: Hook = None
    stop: Hook = None
    priority: int = 100

    def problems(self) -> list[str]:
        """What is wrong with this declaration, as sentences; empty when it is usable."""
        found = []
        if not isinstance(self.name, str) or not self.name:
            found.append(f"an initializer's name must be a non-empty string, got {self.name!r}")
        for hook in ("start", "stop"):
            value = getattr(self, hook)
            if value is not None and not callable(value):
                found.append(f"initializer {self.name!r}: {hook} is not callable")
        if isinstance(self.priority, bool) or not isinstance(self.priority, (int, float)):
            found.append(f"initializer {self.name!r}: priority must be a number")
        return found


class Initializers:
    """The declared initializers of one application, with the file of each, run in order.

    Raises:
        ActionLoadError: at construction, a broken declaration or a name declared twice
            (naming both files).
    """

    def __init__(self, declared: Iterable[tuple[Initializer, Path]] = ()) -> None:
        self._sources: dict[str, Path] = {}
        ordered: list[Initializer] = []
        for initializer, source in declared:
            problems = initializer.problems()
            if problems:
                raise ActionLoadError(str(source), "; ".join(problems))
            other = self._sources.get(initializer.name)
            if other is not None:
                raise ActionLoadError(
                    str(source),
                    f"initializer {initializer.name!r} is declared twice ({other} and {source})",
                )
            self._sources[initializer.name] = source
            ordered.append(initializer)
        self.ordered = sorted(ordered, key=lambda initializer: initializer.priority)
        self._started: list[Initializer] = []

    def __len__(self) -> int:
        return len(self.ordered)

    async def start(self, app: Any) -> None:
        """Run every ``start(app)`` in priority order.

        Raises:
            ActionLoadError: naming the file (and line) of the one that raised; those started
                before it have been stopped again.
        """
        for initializer in self.ordered:
            try:
                if initializer.start is not None:
                    await resolve(initializer.start(app))
            except Exception as exc:
                source = self._sources[initializer.name]
                log.debug("initializer %s failed to start", initializer.name, exc_info=exc)
                await self.stop(app)
                where = f"{source}{_line_in(source, exc)}"
                failure = f"{type(exc).__name__}: {exc}"
                raise ActionLoadError(
                    where, f"initializer {initializer.name!r} failed to start: {failure}"
                ) from exc
            self._started.append(initializer)

    async def stop(self, app: Any) -> None:
        """Run the ``stop(app)`` of every started initializer, in reverse order; one that
        raises is logged and the others still run."""
        while self._started:
            initializer = self._started.pop()
            if initializer.stop is None:
                continue
            try:
                await resolve(initializer.stop(app))
            except Exception:
                log.exception(
                    "initializer %s failed to stop (%s)",
                    initializer.name,
                    self._sources[initializer.name],
                )


def _line_in(path: Path, exc: BaseException) -> str:
    """``:<line>`` of the deepest frame of ``exc`` inside ``path``, or ``""``."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return f":{frames[-1].lineno}" if frames else ""
