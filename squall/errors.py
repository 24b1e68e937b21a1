"""Every failure a client or a user can act on, as one class each.

The tree::

    SquallError
    ├── ConfigError            bad YAML, unknown section or key, wrong type (stops the boot)
    ├── ActionLoadError        an actions/ file that fails to import or declares a broken action
    └── ClientError            something a client asked for that cannot be done; has a wire text
        ├── UnknownAction          404  unknown action or invalid apiVersion
        ├── MissingParam           422  <param> is a required parameter for this action
        ├── InvalidParam           422  the validator's message, or the configured text
        ├── TooManyPendingActions  429
        ├── ServerShuttingDown     503
        ├── ActionTimeout, FileNotFound, VerbNotFound, Unauthorized
        ├── SayRequiresRoomAndMessage, RoomRequired, RoomNotExist,
        │   AlreadyInRoom, NotInRoom, RoomDeleted
        └── InvalidJson, FrameNotObject, BinaryFrame, RateLimited, UnencodableReply

The number is the HTTP status of an action that fails with it; any other error is a 500
(PROTOCOL.md §3).

A ``ClientError`` names the template key under ``errors:`` in the config and carries the values
the template needs; :class:`ErrorMessages` renders the text a client sees (PROTOCOL.md §3). Any
other exception raised by middleware or an action reaches the client as its own message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "ActionLoadError",
    "ActionTimeout",
    "AlreadyInRoom",
    "BinaryFrame",
    "ClientError",
    "ConfigError",
    "ErrorMessages",
    "FileNotFound",
    "FrameNotObject",
    "InvalidJson",
    "InvalidParam",
    "MissingParam",
    "NotInRoom",
    "RateLimited",
    "RoomDeleted",
    "RoomNotExist",
    "RoomRequired",
    "SayRequiresRoomAndMessage",
    "ServerShuttingDown",
    "SquallError",
    "TooManyPendingActions",
    "Unauthorized",
    "UnencodableReply",
    "UnknownAction",
    "VerbNotFound",
    "http_status_of",
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


class ClientError(SquallError):
    """An expected failure reported to the client with a configurable text.

    Subclasses set ``key`` (the template under ``errors:``) and ``http_status``; instance
    attributes fill the template's ``{placeholders}``.
    """

    key: ClassVar[str] = ""
    http_status: ClassVar[int] = 500

    def __init__(self, **fields: Any) -> None:
        self.fields = fields
        super().__init__(self.key, fields)

    def render(self, messages: ErrorMessages) -> str:
        return messages.render(self.key, self.fields)

    def __str__(self) -> str:
        return DEFAULT_MESSAGES.render(self.key, self.fields)


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


class SayRequiresRoomAndMessage(ClientError):
    key = "sayRequiresRoomAndMessage"


class RoomRequired(ClientError):
    key = "roomRequired"


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


class Unauthorized(ClientError):
    key = "unauthorized"


def http_status_of(error: BaseException) -> int:
    """The HTTP status for an action's error: a client error's own, else 500 (PROTOCOL.md §3)."""
    return error.http_status if isinstance(error, ClientError) else 500


class ErrorMessages:
    """The error texts of ``errors:`` in the config, rendered with their placeholders."""

    def __init__(self, templates: Mapping[str, str]) -> None:
        self.templates = dict(templates)

    def render(self, key: str, fields: Mapping[str, Any]) -> str:
        template = self.templates.get(key) or DEFAULT_TEMPLATES[key]
        try:
            return template.format(**fields)
        except (KeyError, IndexError, ValueError):
            # A hand-edited template with an unknown placeholder still says something useful.
            return template

    def text(self, error: BaseException) -> str:
        """What the client sees for any error: the template of a ClientError, else its message."""
        if isinstance(error, ClientError):
            return error.render(self)
        return str(error) or type(error).__name__


DEFAULT_TEMPLATES: dict[str, str] = {
    "unknownAction": "unknown action or invalid apiVersion",
    "missingParams": "{param} is a required parameter for this action",
    "invalidParams": 'Input for parameter "{param}" failed validation!',
    "tooManyPendingActions": "you have too many pending requests",
    "serverShuttingDown": "the server is shutting down",
    "fileNotFound": "That file is not found",
    "verbNotFound": "verb not found or not allowed ({verb})",
    "sayRequiresRoomAndMessage": "both room and message are required",
    "roomRequired": "a room is required",
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
}

DEFAULT_MESSAGES = ErrorMessages(DEFAULT_TEMPLATES)
