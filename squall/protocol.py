"""The socket verbs of PROTOCOL.md §2, free of I/O: a frame goes in, a reply comes out.

:meth:`SocketProtocol.receive` takes the text (or bytes) of one inbound frame and returns:

- ``None`` when there is nothing to send (``quit``: the connection is already closing);
- a reply ``dict``, for verbs answered at once (errors, ``ping``, ``detailsView``, ``file``,
  ``documentation``);
- an awaitable resolving to the reply ``dict`` (or None), for verbs that wait on actions, rooms
  or the broker. The transport runs each as its own task, so a slow action never delays a fast
  verb sent after it (§2.2).

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
from .actions import ActionRegistry
from .connections import Connection
from .errors import (
    BinaryFrame,
    ErrorMessages,
    FileNotFound,
    FrameNotObject,
    InvalidJson,
    RateLimited,
    UnencodableReply,
    VerbNotFound,
)
from .files import PublicFiles
from .processor import ActionProcessor
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
        rooms: serves ``say``, ``roomAdd``, ``roomLeave`` and ``roomView``.
        files: serves the ``file`` verb (the static handler's own lookup).
        registry: documents the actions for ``documentation``.
        messages: the configured error texts.
        rate_limit: inbound frames per second allowed per connection (None: no limit).
        rate_burst: how many frames a connection may send at once within that rate.
    """

    def __init__(
        self,
        processor: ActionProcessor,
        rooms: Rooms,
        files: PublicFiles,
        registry: ActionRegistry,
        messages: ErrorMessages,
        rate_limit: float | None = None,
        rate_burst: int = 100,
    ) -> None:
        self.processor = processor
        self.rate_limit = rate_limit
        self.rate_burst = rate_burst
        self.rooms = rooms
        self.files = files
        self.registry = registry
        self.messages = messages
        self._verbs: dict[str, Verb] = {
            "action": self._action,
            "say": self._say,
            "roomAdd": self._room_add,
            "roomLeave": self._room_leave,
            "roomView": self._room_view,
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
        if not admitted:
            return self.failure(RateLimited(), message_id, count)
        verb = frame.get("event")
        handler = self._verbs.get(verb) if isinstance(verb, str) else None
        if handler is None:
            shown = verb if isinstance(verb, str) else codec.dumps(verb).decode()
            return self.failure(VerbNotFound(shown), message_id, count)
        return handler(connection, frame, message_id, count)

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
        text = self.messages.text(error)
        return {
            "status": text,
            "error": text,
            "context": "response",
            "messageId": message_id,
            "messageCount": count,
        }

    # -- verbs -------------------------------------------------------------------------------

    async def _action(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> dict[str, Any]:
        params = frame.get("params")
        result = await self.processor.process(
            connection, params if isinstance(params, dict) else {}
        )
        reply = result.response
        reply["context"] = "response"
        reply["messageId"] = message_id
        reply["messageCount"] = count
        return reply

    async def _say(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> dict[str, Any]:
        try:
            await self.rooms.say(connection, frame.get("room"), frame.get("message"))
        except Exception as error:
            return self.failure(error, message_id, count)
        return self.success(None, message_id, count, with_data=False)

    async def _room_add(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> dict[str, Any]:
        try:
            await self.rooms.join(connection, frame.get("room"))
        except Exception as error:
            return self.failure(error, message_id, count)
        return self.success(True, message_id, count)

    async def _room_leave(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> dict[str, Any]:
        try:
            await self.rooms.leave(connection, frame.get("room"))
        except Exception as error:
            return self.failure(error, message_id, count)
        return self.success(True, message_id, count)

    async def _room_view(
        self, connection: Connection, frame: dict[str, Any], message_id: Any, count: int
    ) -> dict[str, Any]:
        try:
            view = await self.rooms.view(connection, frame.get("room"))
        except Exception as error:
            return self.failure(error, message_id, count)
        return self.success(view, message_id, count)

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
