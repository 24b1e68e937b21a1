"""The error tree: texts a client sees (PROTOCOL.md §3), HTTP statuses, configurable templates."""

from __future__ import annotations

import pytest
import yaml

from squall import errors
from squall.errors import (
    DEFAULT_TEMPLATES,
    ActionLoadError,
    ActionTimeout,
    AlreadyInRoom,
    ClientError,
    ConfigError,
    ErrorMessages,
    FileNotFound,
    InvalidJson,
    InvalidParam,
    MissingParam,
    NotInRoom,
    RoomNotExist,
    ServerShuttingDown,
    SquallError,
    TooManyPendingActions,
    UnknownAction,
    VerbNotFound,
    http_status_of,
)

from .conftest import DEFAULT_YAML

CLIENT_ERRORS = [
    value
    for value in vars(errors).values()
    if isinstance(value, type) and issubclass(value, ClientError) and value is not ClientError
]


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (UnknownAction(), "unknown action or invalid apiVersion"),
        (MissingParam("name"), "name is a required parameter for this action"),
        (InvalidParam("n"), 'Input for parameter "n" failed validation!'),
        (InvalidParam("n", "n must be even"), "n must be even"),
        (TooManyPendingActions(), "you have too many pending requests"),
        (ServerShuttingDown(), "the server is shutting down"),
        (FileNotFound(), "That file is not found"),
        (VerbNotFound("dance"), "verb not found or not allowed (dance)"),
        (errors.SayRequiresRoomAndMessage(), "both room and message are required"),
        (RoomNotExist("lobby"), "room does not exist"),
        (AlreadyInRoom("lobby"), "connection already in this room (lobby)"),
        (NotInRoom("lobby"), "connection not in this room (lobby)"),
        (errors.RoomDeleted(), "this room has been deleted"),
        (ActionTimeout(250), "the action timed out after 250 ms"),
    ],
)
def test_client_error_texts_match_protocol(error, text):
    assert str(error) == text
    assert error.render(ErrorMessages({})) == text


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (UnknownAction(), 404),
        (MissingParam("x"), 422),
        (InvalidParam("x"), 422),
        (TooManyPendingActions(), 429),
        (ServerShuttingDown(), 503),
        (RuntimeError("bug"), 500),
        (PermissionError("no"), 500),
        (ActionTimeout(10), 500),
        (RoomNotExist("lobby"), 500),
        (NotInRoom("lobby"), 500),
    ],
)
def test_http_status_of_action_errors(error, status):
    assert http_status_of(error) == status


def test_every_client_error_has_a_default_template():
    assert CLIENT_ERRORS
    for cls in CLIENT_ERRORS:
        assert cls.key in DEFAULT_TEMPLATES, cls.__name__


def test_default_yaml_errors_section_matches_the_defaults():
    configured = yaml.safe_load(DEFAULT_YAML.read_text())["errors"]

    assert configured == DEFAULT_TEMPLATES


def test_error_tree():
    assert issubclass(ConfigError, SquallError)
    assert issubclass(ActionLoadError, SquallError)
    assert issubclass(ClientError, SquallError)
    assert all(issubclass(cls, SquallError) for cls in CLIENT_ERRORS)


def test_configured_template_wins():
    messages = ErrorMessages({"connectionNotInRoom": "join {room} first"})

    assert messages.text(NotInRoom("lobby")) == "join lobby first"


def test_empty_configured_template_falls_back_to_default():
    assert ErrorMessages({"unknownAction": ""}).text(UnknownAction()) == (
        "unknown action or invalid apiVersion"
    )


def test_template_with_unknown_placeholder_is_shown_as_written():
    messages = ErrorMessages({"roomNotExist": "no {nope} here", "missingParams": "bad {0}"})

    assert messages.text(RoomNotExist("lobby")) == "no {nope} here"
    assert messages.text(MissingParam("x")) == "bad {0}"


def test_template_values_are_not_reinterpreted():
    assert str(VerbNotFound("{room}")) == "verb not found or not allowed ({room})"
    assert str(InvalidJson("at {0}")) == "invalid JSON: at {0}"


def test_text_of_other_exceptions_is_their_message_or_name():
    messages = ErrorMessages({})

    assert messages.text(ValueError("bad value")) == "bad value"
    assert messages.text(KeyError()) == "KeyError"


def test_config_error_text_and_fields():
    error = ConfigError("config/test.yaml", "servers.web.port", "expected an integer")

    assert str(error) == "config/test.yaml: servers.web.port: expected an integer"
    assert (
        str(ConfigError("config/x.yaml", "", "file not found")) == "config/x.yaml: file not found"
    )


def test_action_load_error_text_and_fields():
    error = ActionLoadError("actions/a.py:3", "NameError: x")

    assert str(error) == "actions/a.py:3: NameError: x"
    assert (error.path, error.why) == ("actions/a.py:3", "NameError: x")
