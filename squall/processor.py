"""Running one action for one connection: limits, lookup, inputs, middleware, timeout, errors.

The order, for every transport alike:

1. count the request (``totalActions``) as soon as it is read, refuse it when the server is
   stopping, find the action by name and ``apiVersion`` (:meth:`ActionProcessor.admit`);
2. refuse it when the connection already runs ``simultaneousActions`` (:meth:`ActionProcessor.run`);
3. run ``pre`` middleware (global ones and those the action names) by priority;
4. the input pipeline, per declared input: default -> formatter -> validator -> required;
5. run the action (coroutines on the loop, plain functions in a thread of
   :class:`~squall.threads.ActionThreads`), bounded by ``general.actionTimeout`` (a plain
   function's thread runs on past it: threads cannot be stopped);
6. run ``post`` middleware;
7. an ``error`` left in the reply makes it a failure, an empty one is taken out
   (:func:`returned_failure`).

Every failure becomes the reply's ``error`` and never escapes, whatever it is (``SystemExit``
from a plain-def action and a ``CancelledError`` the action received included, PROTOCOL.md
§2.3): an error raised on purpose is the answer; any other is logged with its traceback and
answered as :meth:`~squall.errors.ErrorMessages.report` says. Only the cancellation of the
request itself (shutdown, a vanished client) goes on up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .actions import MISSING, Action, ActionRegistry, Input
from .connections import Connection
from .errors import (
    ActionError,
    ActionTimeout,
    ClientError,
    ErrorMessages,
    InvalidParam,
    MissingParam,
    ServerShuttingDown,
    TooManyPendingActions,
    UnknownAction,
    is_expected,
    is_own_cancellation,
)
from .metrics import UNKNOWN_ACTION, Stats
from .middleware import ActionMiddleware, by_priority, resolve
from .sessions import Sessions
from .threads import ActionThreads

__all__ = ["ActionData", "ActionProcessor", "ActionResult"]

log = logging.getLogger("squall.actions")


class ActionData:
    """What an action's ``run`` receives: its params, its connection and the application.

    ``response`` is the reply being built: an action may fill it instead of returning a dict;
    ``post`` middleware sees it complete.
    """

    __slots__ = ("action", "app", "connection", "params", "response", "started_at")

    def __init__(self, connection: Connection, params: dict[str, Any], app: Any) -> None:
        self.connection = connection
        self.params = params
        self.app = app
        self.action: Action | None = None
        self.response: dict[str, Any] = {}
        self.started_at = time.monotonic()


class ActionResult:
    """The reply fields and, on failure, the error (its text is already in ``response``)."""

    __slots__ = ("action", "error", "response")

    def __init__(
        self, response: dict[str, Any], error: BaseException | None, action: Action | None
    ) -> None:
        self.response = response
        self.error = error
        self.action = action


def returned_failure(response: dict[str, Any]) -> ActionError | None:
    """The failure of an action that answered with an ``error`` of its own (ActionHero's
    ``data.response.error``): it failed as if it had raised ``ActionError`` (400 over HTTP), its
    ``error`` left as it set it. An empty ``error`` (None, "") is taken out: a success has no
    ``error`` key (PROTOCOL.md §2.3)."""
    if "error" not in response:
        return None
    error = response["error"]
    if not error:
        del response["error"]
        return None
    return ActionError(error)


class ActionProcessor:
    """Runs actions for connections of any transport; one per server.

    Args:
        registry: the loaded actions.
        middleware: every declared action middleware.
        messages: the configured error texts.
        simultaneous_actions: in-flight actions allowed per connection.
        timeout_ms: ``general.actionTimeout``; None lets actions run forever.
        threads: the thread pool for plain-function actions (None: one of 32 threads).
        app: handed to actions as ``data.app``.
        stats: where every finished action is counted, with its outcome and duration.
        sessions: gives each connection its session and saves it after each action (§4).
    """

    def __init__(
        self,
        registry: ActionRegistry,
        middleware: Iterable[ActionMiddleware],
        messages: ErrorMessages,
        simultaneous_actions: int,
        timeout_ms: int | None,
        threads: ActionThreads | None = None,
        app: Any = None,
        stats: Stats | None = None,
        sessions: Sessions | None = None,
    ) -> None:
        self.registry = registry
        self.sessions = sessions
        self.stats = stats if stats is not None else Stats()
        self.messages = messages
        self.simultaneous_actions = simultaneous_actions
        self.timeout_ms = timeout_ms
        self._deadlines = Deadlines(timeout_ms / 1000) if timeout_ms else None
        self.threads = threads or ActionThreads(32)
        self.app = app
        self.stopping = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        ordered = by_priority(middleware)
        self.middleware = tuple(ordered)  # every action middleware, in the order it runs
        self._global = [m for m in ordered if m.is_global]
        self._named = {m.name: m for m in ordered}
        self._chains: dict[tuple[str, float], list[ActionMiddleware]] = {}

    async def process(self, connection: Connection, params: Mapping[str, Any]) -> ActionResult:
        """Run the action that ``params["action"]`` names, for ``connection``, and count it."""
        admitted = self.admit(connection, params)
        if isinstance(admitted, ActionResult):
            return admitted
        return await self.run(connection, params, admitted)

    def admit(self, connection: Connection, params: Mapping[str, Any]) -> Action | ActionResult:
        """Count the request at once, so that a ``detailsView`` sent right after it counts it in
        ``totalActions`` (PROTOCOL.md §4), and find its action. Returns the action to
        :meth:`run`, or the reply refusing it.

        Only :meth:`run` takes a place among the connection's actions in flight: a burst of
        quick actions read in one go runs one after another, never refused as too many."""
        connection.total_actions += 1
        if self.stopping:
            return self._refused(ServerShuttingDown(), params)
        declared = self.registry.match(params.get("action"), params.get("apiVersion"))
        if declared is None:
            return self._refused(UnknownAction(), params)
        return declared

    async def run(
        self, connection: Connection, params: Mapping[str, Any], declared: Action
    ) -> ActionResult:
        """Run an action :meth:`admit` let in, within ``simultaneousActions``, and count it."""
        if connection.pending_actions >= self.simultaneous_actions:
            return self._refused(TooManyPendingActions(), params)
        connection.pending_actions += 1
        self.in_flight += 1
        self._idle.clear()
        data = ActionData(connection, dict(params), self.app)
        data.action = declared
        try:
            if self.sessions is None:
                await self._run(declared, data)
            else:
                await self._run_in_session(declared, data, self.sessions)
        except BaseException as error:
            if is_own_cancellation(error):
                raise
            data.response["error"] = self._report(declared, connection, error)
            # answered from here: a local kept past this block would hold the error, its
            # traceback this frame, and the params with it, until the cyclic GC runs
            self.stats.action_done(declared.name, error, time.monotonic() - data.started_at)
            return ActionResult(data.response, error, declared)
        finally:
            connection.pending_actions -= 1
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()
        failure = returned_failure(data.response)
        self.stats.action_done(declared.name, failure, time.monotonic() - data.started_at)
        return ActionResult(data.response, failure, declared)

    async def drain(self, timeout_ms: int) -> bool:
        """Refuse new actions and wait for those in flight; False if some outlived the wait."""
        self.stopping = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_ms / 1000)
        except TimeoutError:
            return False
        return True

    async def _run_in_session(self, declared: Action, data: ActionData, sessions: Sessions) -> None:
        """Run with the connection's session; save it after the action, or put it back as it was
        when the action failed with a server error (Django does not save then either). An HTTP
        request holds its session for this action only, a socket from open to close (read
        again before each action, with Redis)."""
        connection = data.connection
        opened = not sessions.holds(connection)
        if opened:
            await sessions.open(connection)
        else:
            await sessions.refresh(connection)
        try:
            await self._run(declared, data)
        except BaseException as error:
            if is_expected(error):
                await sessions.save(connection)
            else:
                sessions.revert(connection)
            raise
        else:
            await sessions.save(connection)
        finally:
            if opened:
                sessions.release(connection)  # saved or put back just above

    async def _run(self, declared: Action, data: ActionData) -> None:
        chain = self._chain(declared)
        for middleware in chain:
            if middleware.pre is not None:
                await resolve(middleware.pre(data))
        apply_inputs(declared.inputs, data.params)
        returned = await self._call(declared, data)
        if isinstance(returned, Mapping):
            data.response.update(returned)
        for middleware in chain:
            if middleware.post is not None:
                await resolve(middleware.post(data))

    async def _call(self, declared: Action, data: ActionData) -> Any:
        deadlines = self._deadlines
        if not declared.is_async:
            job = self.threads.submit(declared.run, data)
            try:
                return await asyncio.wait_for(
                    asyncio.wrap_future(job), deadlines.timeout if deadlines else None
                )
            except TimeoutError:
                self.threads.timed_out(job)
                raise ActionTimeout(self.timeout_ms) from None
        if deadlines is None:
            return await declared.run(data)
        task = deadlines.enter(data.connection.loop)
        try:
            return await declared.run(data)
        except asyncio.CancelledError:
            if deadlines.expired(task):
                raise ActionTimeout(self.timeout_ms) from None
            raise
        finally:
            deadlines.leave(task)

    def _chain(self, declared: Action) -> list[ActionMiddleware]:
        key = (declared.name, float(declared.version))
        chain = self._chains.get(key)
        if chain is None:
            named = [self._named[n] for n in declared.middleware if not self._named[n].is_global]
            chain = by_priority([*self._global, *named])
            self._chains[key] = chain
        return chain

    def _refused(self, error: ClientError, params: Mapping[str, Any]) -> ActionResult:
        """The reply to an action refused before it ran, counted without a duration under its
        name (a name no action has is never a label of its own)."""
        name = params.get("action")
        known = self.registry.match(name) is not None
        self.stats.action_done(name if known else UNKNOWN_ACTION, error, None)
        return ActionResult({"error": error.render(self.messages)}, error, None)

    def _report(self, declared: Action, connection: Connection, error: BaseException) -> str:
        """Log ``error`` as it deserves and return the text the client sees."""
        if isinstance(error, ActionTimeout):
            log.error(
                "action %s timed out after %s ms (connection %s)",
                declared.name,
                self.timeout_ms,
                connection.id,
            )
        return self.messages.report(
            error, log, "action %s failed (connection %s)", declared.name, connection.id
        )


class Deadlines:
    """Action timeouts with one timer for all of them.

    ``asyncio.timeout`` arms and cancels a timer per action, a cost paid by every fast action.
    Here each running action's task is noted with its deadline, and one sweep a second (or
    four times per timeout, when shorter) cancels the tasks past theirs.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._running: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def enter(self, loop: asyncio.AbstractEventLoop | None) -> asyncio.Task[Any] | None:
        """Start the clock for the current task of ``loop`` (the connection's, which spares
        asyncio a ``getpid()`` system call on Python 3.11; None: the running loop); None when
        the task is already timed (nested)."""
        task = asyncio.current_task(loop)
        if task is None or task in self._running:
            return None
        self._running[task] = time.monotonic() + self.timeout
        if self._timer is None:
            self._schedule()
        return task

    def leave(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            self._running.pop(task, None)
            self._expired.discard(task)  # an action that swallowed its cancellation

    def expired(self, task: asyncio.Task[Any] | None) -> bool:
        """True (once) when ``task`` was cancelled by the sweep, which is then undone."""
        if task is None or task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(min(1.0, self.timeout / 4), self._sweep)

    def _sweep(self) -> None:
        now = time.monotonic()
        for task, deadline in list(self._running.items()):
            if now >= deadline:
                del self._running[task]
                self._expired.add(task)
                task.cancel()
        self._timer = None
        if self._running:
            self._schedule()


def apply_inputs(inputs: Mapping[str, Input], params: dict[str, Any]) -> None:
    """Fill, convert and check ``params`` in place against the declared inputs.

    Raises:
        MissingParam: a required input is absent (after its default).
        InvalidParam: a formatter or validator refused the value: it raised ``ValueError``,
            ``TypeError``, an ``ActionError`` or a ``PermissionError``, or a validator returned
            False or a message.
        Exception: anything else a formatter or validator raised is a bug in it, not a bad
            value: it goes on up as it is (logged, never a 422).
    """
    for key, spec in inputs.items():
        value = params.get(key, MISSING)
        if _absent(value) and spec.default is not MISSING:
            value = spec.default(params) if callable(spec.default) else spec.default
        if not _absent(value) and spec.formatter is not None:
            value = _checked(spec.formatter, value, key, keep_message=False)
        if not _absent(value) and spec.validator is not None:
            verdict = _checked(spec.validator, value, key, keep_message=True)
            if verdict is False or isinstance(verdict, str):
                raise InvalidParam(key, verdict if isinstance(verdict, str) else None)
        if not _absent(value):
            params[key] = value
        elif spec.required:
            raise MissingParam(key)


def _absent(value: Any) -> bool:
    """Missing, null and the empty string all count as "not given" (as in a query string)."""
    return value is MISSING or value is None or (isinstance(value, str) and value == "")


def _checked(step: Callable[[Any], Any], value: Any, key: str, keep_message: bool) -> Any:
    """Run a formatter or validator. An error raised on purpose always shows its message; a
    validator's ``ValueError``/``TypeError`` shows its own, a formatter's the configured text
    (``int("x")`` says nothing a client should read)."""
    try:
        return step(value)
    except (ActionError, PermissionError) as exc:
        raise InvalidParam(key, str(exc) or None) from exc
    except ClientError:
        raise
    except (ValueError, TypeError) as exc:
        raise InvalidParam(key, (str(exc) or None) if keep_message else None) from exc
