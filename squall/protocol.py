"""The socket verbs of PROTOCOL.md §2, free of I/O: a frame goes in, a reply comes out.

:meth:`SocketProtocol.receive` takes the text (or bytes) of one inbound frame and returns:

- ``None`` when there is nothing to send (``quit``: the connection is already closing);
- a reply ``dict``, for verbs answered at once (errors, ``ping``, ``detailsView``, ``file``,
  ``documentation``);
- an awaitable resolving to the reply ``dict`` (or None), for verbs that wait on actions, rooms
  or the broker. The transport runs each as its own task, so a slow action never delays a fast
  verb sent after it (§2.2).

Verbs that wait are bounded per connection: at most ``max_pending`` of them (actions, says, room
verbs alike) may be in flight; the next is answered at once with ``you have too many pending
requests`` and starts nothing, so a flood of frames on one socket costs replies, not memory.
:meth:`SocketProtocol.forget` drops that count when the connection closes.

The transport's whole job is then: feed frames, write replies, close when told. Nothing here
imports Tornado or touches a socket, so every verb and every error row of §3 is unit-tested by
calling :meth:`~SocketProtocol.receive` with a connection whose transport records frames.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from . import codec
from .actions import Action, ActionRegistry
from .connections import Connection
from .errors import (
    BinaryFrame,
    ErrorMessages,
    FileNotFound,
    FrameNotObject,
    InvalidJson,
    InvalidLimit,
    InvalidMessageId,
    InvalidSince,
    RateLimited,
    TooManyPendingActions,
    UnencodableReply,
    VerbNotFound,
    is_own_cancellation,
)
from .files import PublicFiles
from .metrics import Stats
from .processor import ActionProcessor, ActionResult
from .rooms import Rooms

__all__ = ["Reply", "SocketProtocol", "error_frame"]

log = logging.getLogger("squall.protocol")

Reply = dict[str, Any] | Awaitable[dict[str, Any] | None] | None
Verb = Callable[[Connection, dict[str, Any], Any, int], Reply]


def error_frame(text: str) -> dict[str, Any]:
    """The push for a frame that could not be read as a request (§2.5)."""
    return {"context": "error", "error": text}


class SocketProtocol:
    """Dispatches socket verbs for every connection of one server.

    Args:
        processor: runs the ``action`` verb.
        rooms: serves ``say``, ``roomAdd``, ``roomLeave``, ``roomView`` and ``roomHistory``.
        files: serves the ``file`` verb (the static handler's own lookup).
        registry: documents the actions for ``documentation``.
        messages: the configured error texts.
        rate_limit: inbound frames per second allowed per connection (None: no limit).
        rate_burst: how many frames a connection may send at once within that rate.
        max_pending: verbs that wait (``action``, ``say`` and the room verbs) allowed in
            flight per connection, all together
            (``general.simultaneousRequests``).
        stats: where frames refused by the rate limit are counted.
    """

    #: The verbs answered later, by an awaitable: what ``max_pending`` bounds.
    WAITING = frozenset({"action", "say", "roomAdd", "roomLeave", "roomView", "roomHistory"})

    def __init__(
        self,
        processor: ActionProcessor,
        rooms: Rooms,
        files: PublicFiles,
        registry: ActionRegistry,
        messages: ErrorMessages,
        rate_limit: float | None = None,
        rate_burst: int = 100,
        max_pending: int = 200,
        stats: Stats | None = None,
    ) -> None:
        self.processor = processor
        self.stats = stats if stats is not None else Stats()
        self.rate_limit = rate_limit
        self.rate_burst = rate_burst
        self.max_pending = max_pending
        self.rooms = rooms
        self.files = files
        self.registry = registry
        self.messages = messages
        self._pending: dict[str, int] = {}  # connection id -> waiting verbs in flight
        self._verbs: dict[str, Verb] = {
            "action": self._action,
            "say": self._say,
            "roomAdd": self._room_add,
            "roomLeave": self._room_leave,
            "roomView": self._room_view,
            "roomHistory": self._room_history,
            "detailsView": self._details_view,
            "file": self._file,
            "documentation": self._documentation,
            "ping": self._ping,
            "quit": self._quit,
        }

    def receive(self, connection: Connection, data: str | bytes) -> Reply:
        """Handle one inbound frame for ``connection`` (see the module docstring).

        With a rate limit, every frame spends a token. A readable request over the limit is
        answered ``too many messages; slow down``; an unreadable one is dropped unanswered,
        so a flood of garbage cannot make the server write as much back.
        """
        connection.message_count += 1
        count = connection.message_count
        admitted = self.rate_limit is None or self._admit(connection)
        if not admitted:
            self.stats.rate_limited += 1
        if isinstance(data, bytes):
            return error_frame(BinaryFrame().render(self.messages)) if admitted else None
        try:
            frame = codec.loads(data)
        except codec.DecodeError as exc:
            return error_frame(InvalidJson(str(exc)).render(self.messages)) if admitted else None
        if not isinstance(frame, dict):
            return error_frame(FrameNotObject().render(self.messages)) if admitted else None
        message_id = frame.get("messageId")
        if message_id is None:
            message_id = str(uuid.uuid4())
        elif isinstance(message_id, bool) or not isinstance(message_id, (str, int, float)):
            reply = self.failure(InvalidMessageId(), None, count)
            del reply["messageId"]  # §2.1: an id of another type is never echoed
            return reply
        if not admitted:
            return self.failure(RateLimited(), message_id, count)
        verb = frame.get("event")
        handler = self._verbs.get(verb) if isinstance(verb, str) else None
        if handler is None:
            shown = verb if isinstance(verb, str) else codec.dumps(verb).decode()
            return self.failure(VerbNotFound(shown), message_id, count)
        if verb in self.WAITING:
            pending = self._pending.get(connection.id, 0)
            if pending >= self.max_pending:
                if verb == "action":
                    connection.total_actions += 1  # §4: a refused action still counts
                return self.failure(TooManyPendingActions(), message_id, count)
            self._pending[connection.id] = pending + 1
        return handler(connection, frame, message_id, count)

    def forget(self, connection: Connection) -> None:
        """Drop what is kept per connection, once it has closed."""
        self._pending.pop(connection.id, None)

    def _finished(self, connection: Connection) -> None:
        """A waiting verb of ``connection`` was answered (or dropped)."""
        pending = self._pending.get(connection.id)
        if pending is not None:
            if pending > 1:
                self._pending[connection.id] = pending - 1
            else:
                del self._pending[connection.id]

    def _admit(self, connection: Connection) -> bool:
        """Token bucket: ``rate_limit`` tokens a second, at most ``rate_burst`` saved up."""
        bucket = connection.rate_bucket
        now = time.monotonic()
        if bucket is None:
            bucket = connection.rate_bucket = [float(self.rate_burst), now]
        tokens = min(self.rate_burst, bucket[0] + (now - bucket[1]) * self.rate_limit)
        bucket[1] = now
        if tokens < 1:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1
        return True

    def encode(self, reply: dict[str, Any]) -> bytes:
        """The frame for ``reply``; an action's reply JSON cannot hold (a cycle, a tuple key,
        nesting deeper than the encoder goes) becomes an error reply, never a lost one."""
        try:
            return codec.dumps(reply)
        except (TypeError, ValueError, RecursionError) as exc:
            log.error("a reply could not be encoded as JSON: %s", exc)
            text = UnencodableReply(type(exc).__name__).render(self.messages)
            safe = {"error": text, "context": "response"}
            for key in ("messageId", "messageCount"):
                if key in reply:
                    safe[key] = reply[key]
            try:
                return codec.dumps(safe)
            except (TypeError, ValueError, RecursionError):  # the messageId itself
                safe.pop("messageId", None)
                return codec.dumps(safe)

    # -- reply shapes (§2.2) -----------------------------------------------------------------

    @staticmethod
    def success(data: Any, message_id: Any, count: int, with_data: bool = True) -> dict[str, Any]:
        reply: dict[str, Any] = {"status": "OK", "context": "response"}
        if with_data:
            reply["data"] = data
        reply["messageId"] = message_id
        reply["messageCount"] = count
        return reply

    def failure(self, error: BaseException, message_id: Any, count: int) -> dict[str, Any]:
        """The reply to a verb refused with an error raised on purpose."""
        return self._failure_text(self.messages.text(error), message_id, count)

    @staticmethod
    def _failure_text(text: str, message_id: Any, count: int) -> dict[str, Any]:
        return {
            "status": text,
            "error": text,
            "context": "response",
            "messageId": message_id,
            "messageCount": count,
        }

    # -- verbs -------------------------------------------------------------------------------

    def _action(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> Reply:
        params = frame.get("params")
        if not isinstance(params, dict):
            params = {}
        admitted = self.processor.admit(connection, params)  # counted now (§4), not when it runs
        if isinstance(admitted, ActionResult):
            self._finished(connection)
            return self._action_reply(admitted, message_id, count)
        return self._run_action(connection, params, admitted, message_id, count)

    async def _run_action(
        self,
        connection: Connection,
        params: dict[str, Any],
        declared: Action,
        message_id: Any,
        count: int,
    ) -> dict[str, Any]:
        try:
            result = await self.processor.run(connection, params, declared)
        finally:
            self._finished(connection)
        return self._action_reply(result, message_id, count)

    @staticmethod
    def _action_reply(result: ActionResult, message_id: Any, count: int) -> dict[str, Any]:
        reply = result.response
        reply["context"] = "response"
        reply["messageId"] = message_id
        reply["messageCount"] = count
        return reply

    def _say(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> Awaitable[dict[str, Any]]:
        room, message = frame.get("room"), frame.get("message")
        said = lambda: self.rooms.say(connection, room, message)  # noqa: E731
        return self._answer("say", said, connection, message_id, count, with_data=False)

    def _room_add(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> Awaitable[dict[str, Any]]:
        room, since = frame.get("room"), frame.get("since")

        async def joined() -> Any:
            wanted = None if since is None else _since(since)
            recovery = await self.rooms.join(connection, room, wanted)
            # (None also when the connection closed meanwhile: nobody reads this reply)
            return True if recovery is None else recovery.reply()

        return self._answer("roomAdd", joined, connection, message_id, count)

    def _room_leave(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> Awaitable[dict[str, Any]]:
        room = frame.get("room")
        left = lambda: self.rooms.leave(connection, room)  # noqa: E731
        return self._answer("roomLeave", left, connection, message_id, count, data=True)

    def _room_view(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> Awaitable[dict[str, Any]]:
        room = frame.get("room")
        view = lambda: self.rooms.view(connection, room)  # noqa: E731
        return self._answer("roomView", view, connection, message_id, count)

    def _room_history(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> Awaitable[dict[str, Any]]:
        room, limit = frame.get("room"), frame.get("limit")

        async def history() -> dict[str, Any]:
            if limit is not None and (
                isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
            ):
                raise InvalidLimit()
            kept = await self.rooms.history(connection, room, limit)
            return {
                "room": room,
                "epoch": kept.epoch,
                "offset": kept.offset,
                "messages": kept.messages(),
            }

        return self._answer("roomHistory", history, connection, message_id, count)

    async def _answer(
        self,
        verb: str,
        work: Callable[[], Awaitable[Any]],
        connection: Connection,
        message_id: Any,
        count: int,
        data: Any = None,
        with_data: bool = True,
    ) -> dict[str, Any]:
        """Run a room verb's ``work``; its result (or ``data``, when given) is the reply's
        ``data``. The work starts only here, so a task dropped before its first step leaves no
        coroutine behind. Any failure is the reply's error: a chat middleware hook's bug is
        logged and shown as :meth:`~squall.errors.ErrorMessages.report` says (§3)."""
        try:
            result = await work()
        except BaseException as error:
            if is_own_cancellation(error):
                raise
            text = self.messages.report(
                error, log, "%s failed (connection %s)", verb, connection.id
            )
            return self._failure_text(text, message_id, count)
        finally:
            self._finished(connection)
        return self.success(result if data is None else data, message_id, count, with_data)

    def _details_view(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> dict[str, Any]:
        return self.success(connection.details(), message_id, count)

    def _file(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> dict[str, Any]:
        reply = self.files.read_reply(frame.get("file"))
        if reply is None:
            text = FileNotFound().render(self.messages)
            reply = {
                "error": text,
                "content": None,
                "mime": "text/html",
                "length": len(text.encode()),
            }
        reply["context"] = "response"
        reply["messageId"] = message_id
        reply["messageCount"] = count
        return reply

    def _documentation(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> dict[str, Any]:
        return self.success(self.registry.documentation(), message_id, count)

    def _ping(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> dict[str, Any]:
        return self.success({"pong": int(time.time() * 1000)}, message_id, count)

    def _quit(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> None:
        connection.destroy()
        return None


def _since(since: Any) -> tuple[int, str]:
    """``roomAdd``'s ``since`` as ``(offset, epoch)`` (§9).

    Raises:
        InvalidSince: it is not ``{"offset": integer >= 0, "epoch": string}``.
    """
    offset = since.get("offset") if isinstance(since, dict) else None
    epoch = since.get("epoch") if isinstance(since, dict) else None
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidSince()
    if not isinstance(epoch, str):
        raise InvalidSince()
    return offset, epoch
