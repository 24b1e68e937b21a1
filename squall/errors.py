"""Every failure a client or a user can act on, as one class each.

The tree::

    SquallError
    ├── ConfigError            bad YAML, unknown section or key, wrong type (stops the boot)
    ├── ActionLoadError        an actions/ file that fails to import or declares a broken action
    ├── ConnectionRefused      connection middleware refused a socket; the text is its 4001 reason
    └── ClientError            something a client asked for that cannot be done; has a wire text
        ├── ActionError            400  raised on purpose by an app: (message, status=400)
        │   ├── BadRequest         400
        │   ├── Unauthorized       401  (no message: the configured ``unauthorized`` text)
        │   ├── Forbidden          403  (a PermissionError counts as one)
        │   ├── NotFound           404
        │   ├── Conflict           409
        │   ├── InvalidParams      422
        │   └── TooManyRequests    429
        ├── UnknownAction          404  unknown action or invalid apiVersion
        ├── MissingParam           422  <param> is a required parameter for this action
        ├── InvalidParam           422  the validator's message, or the configured text
        ├── InvalidRoomName        422  invalid room name
        ├── InvalidRoomOptions     422  invalid room options: <key>: <why>
        ├── TooManyPendingActions  429  (also: too many verbs of any kind in flight)
        ├── ServerShuttingDown     503
        ├── TooManyRooms           500  too many rooms (§3: "500 anything else")
        ├── BrokerUnavailable      503  Redis is away and the request cannot wait for it
        ├── ActionTimeout, FileNotFound, VerbNotFound, InvalidMessageId
        ├── SayRequiresRoomAndMessage, RoomNotExist, AlreadyInRoom, NotInRoom, RoomDeleted
        ├── InvalidSince, InvalidLimit      roomAdd's since, roomHistory's limit (§9)
        └── InvalidJson, FrameNotObject, BinaryFrame, RateLimited, UnencodableReply

The number is the HTTP status of an action that fails with it; a ``PermissionError`` is a 403
and any other error a 500 (PROTOCOL.md §3).

A ``ClientError`` names the template key under ``errors:`` in the config and carries the values
the template needs; :class:`ErrorMessages` renders the text a client sees (PROTOCOL.md §3).
Errors raised on purpose (a ``ClientError``, an ``ActionError`` and a ``PermissionError``) reach
the client as they are. Any other exception is a bug: :meth:`ErrorMessages.report` logs it with
its traceback and a reference, and the client sees its text only when ``general.exposeErrors``
is true, else ``internal error (ref <id>)`` with the same reference.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "TYPE_NAMES",
    "ActionError",
    "ActionLoadError",
    "ActionTimeout",
    "AlreadyInRoom",
    "BadRequest",
    "BinaryFrame",
    "BrokerUnavailable",
    "ClientError",
    "ConfigError",
    "Conflict",
    "ConnectionRefused",
    "ErrorMessages",
    "FileNotFound",
    "Forbidden",
    "FrameNotObject",
    "InvalidJson",
    "InvalidLimit",
    "InvalidMessageId",
    "InvalidParam",
    "InvalidParams",
    "InvalidRoomName",
    "InvalidRoomOptions",
    "InvalidSince",
    "MissingParam",
    "NotFound",
    "NotInRoom",
    "RateLimited",
    "RoomDeleted",
    "RoomNotExist",
    "SayRequiresRoomAndMessage",
    "ServerShuttingDown",
    "SquallError",
    "TooManyPendingActions",
    "TooManyRequests",
    "TooManyRooms",
    "Unauthorized",
    "UnencodableReply",
    "UnknownAction",
    "VerbNotFound",
    "http_status_of",
    "is_expected",
    "is_own_cancellation",
    "kind_of",
]


class SquallError(Exception):
    """Base class of Squall's own errors."""


class ConfigError(SquallError):
    """A configuration file or value that cannot be used; the text names file, key and why."""

    def __init__(self, source: str, key: str, why: str) -> None:
        self.source, self.key, self.why = source, key, why
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {why}")


class ActionLoadError(SquallError):
    """A drop-in file under actions/ that cannot be loaded; the text names the file."""

    def __init__(self, path: str, why: str) -> None:
        self.path, self.why = path, why
        super().__init__(f"{path}: {why}")


class ConnectionRefused(SquallError):
    """Connection middleware refused a new socket; the text is the close reason the client
    sees with code 4001 (PROTOCOL.md §6), already decided as :meth:`ErrorMessages.report` says."""


class ClientError(SquallError):
    """An expected failure reported to the client with a configurable text.

    Subclasses set ``key`` (the template under ``errors:``) and ``http_status``; instance
    attributes fill the template's ``{placeholders}``.
    """

    key: ClassVar[str] = ""
    http_status: int = 500

    def __init__(self, **fields: Any) -> None:
        self.fields = fields
        super().__init__(self.key, fields)

    def render(self, messages: ErrorMessages) -> str:
        return messages.render(self.key, self.fields)

    def __str__(self) -> str:
        return DEFAULT_MESSAGES.render(self.key, self.fields)


# -- errors applications raise on purpose (PROTOCOL.md §3) --------------------------------------


class ActionError(ClientError):
    """An error an application raises on purpose: its message always reaches the client, over
    HTTP with ``status`` and over the socket as the reply's ``error``::

        raise ActionError("this invoice is already paid", status=409)

    The kinds below fix the status; raised without a message, each says what it is.
    """

    status: ClassVar[int] = 400
    default: ClassVar[str | None] = "bad request"

    def __init__(self, message: str | None = None, status: int | None = None) -> None:
        super().__init__()
        self.message = self.default if message is None else str(message)
        self.http_status = self.status if status is None else status
        self.args = (self.message, self.http_status)

    def render(self, messages: ErrorMessages) -> str:
        return super().render(messages) if self.message is None else self.message

    def __str__(self) -> str:
        return super().__str__() if self.message is None else self.message


class BadRequest(ActionError):
    """400: the request cannot be served as it was sent."""


class Unauthorized(ActionError):
    """401: who is asking is not known (no or a bad credential). Without a message the client
    sees the configured ``errors.unauthorized`` text, as a refused upgrade does."""

    key, status, default = "unauthorized", 401, None


class Forbidden(ActionError):
    """403: who is asking is known and may not do this (a ``PermissionError`` counts as one)."""

    status, default = 403, "forbidden"


class NotFound(ActionError):
    """404: what the request names does not exist."""

    status, default = 404, "not found"


class Conflict(ActionError):
    """409: the request contradicts the current state (already done, taken, changed)."""

    status, default = 409, "conflict"


class InvalidParams(ActionError):
    """422: the params are well-formed but not acceptable."""

    status, default = 422, "invalid params"


class TooManyRequests(ActionError):
    """429: the caller must slow down."""

    status, default = 429, "too many requests"


# -- Squall's own client errors --------------------------------------------------------------


class UnknownAction(ClientError):
    key, http_status = "unknownAction", 404


class MissingParam(ClientError):
    key, http_status = "missingParams", 422

    def __init__(self, param: str) -> None:
        super().__init__(param=param)


class InvalidParam(ClientError):
    """A validator refused a value: its own message wins over the configured text."""

    key, http_status = "invalidParams", 422

    def __init__(self, param: str, message: str | None = None) -> None:
        self.message = message
        super().__init__(param=param)

    def render(self, messages: ErrorMessages) -> str:
        return self.message or super().render(messages)

    def __str__(self) -> str:
        return self.message or super().__str__()


class TooManyPendingActions(ClientError):
    key, http_status = "tooManyPendingActions", 429


class ServerShuttingDown(ClientError):
    key, http_status = "serverShuttingDown", 503


class BrokerUnavailable(ClientError):
    """Redis cannot be reached, and what was asked needs it now: the other servers' members, a
    room this server has never seen, or a message the full outbox cannot keep (503)."""

    key, http_status = "brokerUnavailable", 503

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail)


class ActionTimeout(ClientError):
    key = "actionTimeout"

    def __init__(self, timeout: int) -> None:
        super().__init__(timeout=timeout)


class FileNotFound(ClientError):
    key = "fileNotFound"


class VerbNotFound(ClientError):
    key = "verbNotFound"

    def __init__(self, verb: object) -> None:
        super().__init__(verb=verb)


class InvalidMessageId(ClientError):
    key = "invalidMessageId"


class SayRequiresRoomAndMessage(ClientError):
    key = "sayRequiresRoomAndMessage"


class InvalidRoomName(ClientError):
    """Empty, too long, not a string, or holding control characters (PROTOCOL.md §5)."""

    key, http_status = "invalidRoomName", 422


class InvalidRoomOptions(ClientError):
    """Room options that cannot be used (PROTOCOL.md §5): ``key`` names the option
    (``history.size``; empty for the whole map) and ``why`` what it expects."""

    key, http_status = "invalidRoomOptions", 422

    def __init__(self, option: str, why: str) -> None:
        self.option, self.why = option, why
        super().__init__(detail=f"{option}: {why}" if option else why)


class InvalidSince(ClientError):
    """``roomAdd``'s ``since`` is not ``{"offset": integer >= 0, "epoch": string}`` (§9)."""

    key = "invalidSince"


class InvalidLimit(ClientError):
    """``roomHistory``'s ``limit`` is not a positive integer (§9)."""

    key = "invalidLimit"


class TooManyRooms(ClientError):
    """``general.maxRooms`` rooms exist already: the server cannot make more for now. Over HTTP
    a 500: PROTOCOL.md §3 gives every error it does not name that status."""

    key = "tooManyRooms"


class RoomNotExist(ClientError):
    key = "roomNotExist"

    def __init__(self, room: str) -> None:
        super().__init__(room=room)


class AlreadyInRoom(ClientError):
    key = "connectionAlreadyInRoom"

    def __init__(self, room: str) -> None:
        super().__init__(room=room)


class NotInRoom(ClientError):
    key = "connectionNotInRoom"

    def __init__(self, room: str) -> None:
        super().__init__(room=room)


class RoomDeleted(ClientError):
    key = "roomDeleted"


class InvalidJson(ClientError):
    key = "invalidJson"

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail)


class FrameNotObject(ClientError):
    key = "frameNotObject"


class BinaryFrame(ClientError):
    key = "binaryFrame"


class RateLimited(ClientError):
    key = "rateLimited"


class UnencodableReply(ClientError):
    key = "unencodableReply"

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail)


# -- what a failure looks like from outside ----------------------------------------------------


#: How an error message names a type it expected.
TYPE_NAMES: dict[type, str] = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a map",
}


def kind_of(value: Any) -> str:
    """A value as an error message shows it: ``null``, ``a list``, ``str 'x'``."""
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return TYPE_NAMES[type(value)]
    return f"{type(value).__name__} {value!r}"


def is_expected(error: BaseException) -> bool:
    """Raised on purpose (PROTOCOL.md §3): a :class:`ClientError`, an :class:`ActionError` or a
    ``PermissionError``. Such an error is an answer, not a bug: its text reaches the client and
    nothing is logged."""
    return isinstance(error, (ClientError, PermissionError))


def is_own_cancellation(error: BaseException) -> bool:
    """True when ``error`` cancels the running task itself (shutdown, a vanished client): it
    must go on up. A ``CancelledError`` that an action merely received, awaiting a future
    someone else cancelled, is that action's failure like any other exception."""
    if not isinstance(error, asyncio.CancelledError):
        return False
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def http_status_of(error: BaseException) -> int:
    """The HTTP status for an action's error (PROTOCOL.md §3): a client error's own (an
    ``ActionError``'s ``status``), 403 for a ``PermissionError``, else 500."""
    if isinstance(error, ClientError):
        return error.http_status
    return Forbidden.status if isinstance(error, PermissionError) else 500


class ErrorMessages:
    """The error texts of ``errors:`` in the config, and the rule of what a client may see.

    Args:
        templates: the ``errors:`` section.
        expose_errors: ``general.exposeErrors``: show the text of unexpected exceptions to
            clients (development); when false they see ``internal error (ref <id>)``.
        outages: exception types that mean a backend is unreachable (Redis errors when Redis
            is on): logged as one warning, since the broker reports the outage itself.
    """

    def __init__(
        self,
        templates: Mapping[str, str],
        expose_errors: bool = True,
        outages: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.templates = dict(templates)
        self.expose_errors = expose_errors
        self.outages = outages

    def render(self, key: str, fields: Mapping[str, Any]) -> str:
        template = self.templates.get(key) or DEFAULT_TEMPLATES[key]
        try:
            return template.format(**fields)
        except (KeyError, IndexError, ValueError):
            # A hand-edited template with an unknown placeholder still says something useful.
            return template

    def text(self, error: BaseException) -> str:
        """What the client sees for an error raised on purpose (see :func:`is_expected`)."""
        if isinstance(error, ClientError):
            return error.render(self)
        if isinstance(error, PermissionError):
            return str(error) or str(Forbidden.default)
        return str(error) or type(error).__name__

    def report(self, error: BaseException, logger: logging.Logger, what: str, *args: Any) -> str:
        """What the client sees for any ``error``; a bug is logged first (PROTOCOL.md §3).

        ``what`` and ``args`` say where it failed, as a logging format and its values
        (``"action %s failed (connection %s)"``). An error raised on purpose is not logged. A
        backend outage is one warning line. Anything else is an ERROR with its traceback; its
        reference (``ref <id>``) is in the log line and, unless errors are exposed, in the
        client's text, so a user's report leads to the traceback.
        """
        if is_expected(error):
            return self.text(error)
        ref = secrets.token_hex(6)
        if isinstance(error, self.outages):
            logger.warning(what + " (ref %s): %s", *args, ref, error)
        else:
            logger.error(what + " (ref %s)", *args, ref, exc_info=error)
        if self.expose_errors:
            return str(error) or type(error).__name__
        return self.render("internalError", {"ref": ref})


DEFAULT_TEMPLATES: dict[str, str] = {
    "unknownAction": "unknown action or invalid apiVersion",
    "missingParams": "{param} is a required parameter for this action",
    "invalidParams": 'Input for parameter "{param}" failed validation!',
    "tooManyPendingActions": "you have too many pending requests",
    "serverShuttingDown": "the server is shutting down",
    "fileNotFound": "That file is not found",
    "verbNotFound": "verb not found or not allowed ({verb})",
    "invalidMessageId": "messageId must be a string or a number",
    "sayRequiresRoomAndMessage": "both room and message are required",
    "invalidRoomName": "invalid room name",
    "invalidRoomOptions": "invalid room options: {detail}",
    "invalidSince": "since must hold an offset (an integer, 0 or more) and an epoch (a string)",
    "invalidLimit": "limit must be a positive integer",
    "tooManyRooms": "too many rooms",
    "roomNotExist": "room does not exist",
    "connectionAlreadyInRoom": "connection already in this room ({room})",
    "connectionNotInRoom": "connection not in this room ({room})",
    "roomDeleted": "this room has been deleted",
    "actionTimeout": "the action timed out after {timeout} ms",
    "invalidJson": "invalid JSON: {detail}",
    "frameNotObject": "a frame must be a JSON object",
    "binaryFrame": "binary frames are not supported; send JSON text",
    "rateLimited": "too many messages; slow down",
    "unauthorized": "unauthorized",
    "unencodableReply": "the reply cannot be sent as JSON ({detail})",
    "internalError": "internal error (ref {ref})",
    "brokerUnavailable": "Redis is unavailable: {detail}",
}

DEFAULT_MESSAGES = ErrorMessages(DEFAULT_TEMPLATES)
