"""The error tree: texts a client sees (PROTOCOL.md §3), HTTP statuses, configurable templates."""

from __future__ import annotations

import logging
import re

import pytest
import yaml

import squall
from squall import errors
from squall.errors import (
    DEFAULT_TEMPLATES,
    ActionError,
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

MESSAGES_ANY = ErrorMessages({})

CLIENT_ERRORS = [
    value
    for value in vars(errors).values()
    if isinstance(value, type) and issubclass(value, ClientError) and value is not ClientError
]
#: Squall's own client errors: each has a configurable template.
SQUALL_CLIENT_ERRORS = [cls for cls in CLIENT_ERRORS if not issubclass(cls, ActionError)]
KINDS = [
    ("BadRequest", 400, "bad request"),
    ("Unauthorized", 401, "unauthorized"),
    ("Forbidden", 403, "forbidden"),
    ("NotFound", 404, "not found"),
    ("Conflict", 409, "conflict"),
    ("InvalidParams", 422, "invalid params"),
    ("TooManyRequests", 429, "too many requests"),
]
LOGGER = logging.getLogger("squall.test")


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
        (PermissionError("no"), 403),
        (ActionTimeout(10), 500),
        (RoomNotExist("lobby"), 500),
        (NotInRoom("lobby"), 500),
    ],
)
def test_http_status_of_action_errors(error, status):
    assert http_status_of(error) == status


def test_every_client_error_has_a_default_template():
    assert SQUALL_CLIENT_ERRORS
    for cls in SQUALL_CLIENT_ERRORS:
        assert cls.key in DEFAULT_TEMPLATES, cls.__name__


# -- errors raised on purpose (PROTOCOL.md §3) --------------------------------------------------


def test_action_error_keeps_its_message_and_status():
    error = squall.ActionError("this invoice is already paid", status=409)

    assert (str(error), error.http_status, http_status_of(error)) == (
        "this invoice is already paid",
        409,
        409,
    )
    assert ErrorMessages({}).text(error) == "this invoice is already paid"
    assert repr(error) == "ActionError('this invoice is already paid', 409)"


def test_action_error_status_defaults_to_400():
    assert http_status_of(squall.ActionError("nope")) == 400


@pytest.mark.parametrize(("name", "status", "default"), KINDS)
def test_error_kinds_are_exported_with_their_status(name, status, default):
    kind = getattr(squall, name)
    assert kind is getattr(errors, name)
    assert issubclass(kind, squall.ActionError)

    assert http_status_of(kind("the reason")) == status
    assert MESSAGES_ANY.text(kind("the reason")) == "the reason"
    assert MESSAGES_ANY.text(kind()) == default


def test_unauthorized_without_a_message_is_the_configured_text():
    assert ErrorMessages({"unauthorized": "log in first"}).text(squall.Unauthorized()) == (
        "log in first"
    )
    assert ErrorMessages({"unauthorized": "log in first"}).text(
        squall.Unauthorized("bad token")
    ) == ("bad token")


def test_permission_error_counts_as_forbidden():
    assert http_status_of(PermissionError("members only")) == 403
    assert MESSAGES_ANY.text(PermissionError("members only")) == "members only"
    assert MESSAGES_ANY.text(PermissionError()) == "forbidden"


# -- errors that are bugs: logged with a reference, shown only when exposed -------------------


@pytest.mark.parametrize(
    "error",
    [squall.Forbidden("members only"), PermissionError("members only"), UnknownAction()],
)
def test_report_of_an_error_raised_on_purpose_logs_nothing(error, caplog):
    hidden = ErrorMessages({}, expose_errors=False)

    with caplog.at_level(logging.DEBUG, "squall.test"):
        text = hidden.report(error, LOGGER, "action %s failed", "x")

    assert text == hidden.text(error)
    assert caplog.records == []


def test_report_of_a_bug_when_exposed_shows_its_text_and_logs_the_traceback(caplog):
    try:
        raise RuntimeError("db at 10.0.0.5 refused user admin")
    except RuntimeError as bug:
        error = bug
    with caplog.at_level(logging.ERROR, "squall.test"):
        text = ErrorMessages({}, expose_errors=True).report(error, LOGGER, "action %s failed", "x")

    assert text == "db at 10.0.0.5 refused user admin"
    (record,) = caplog.records
    assert re.fullmatch(r"action x failed \(ref [0-9a-f]{12}\)", record.getMessage())
    assert record.exc_info[1] is error
    assert "Traceback" in caplog.text


def test_report_of_a_bug_when_hidden_gives_the_reference_of_its_log_line(caplog):
    with caplog.at_level(logging.ERROR, "squall.test"):
        text = ErrorMessages({}, expose_errors=False).report(
            RuntimeError("db password is hunter2"), LOGGER, "action %s failed", "x"
        )

    match = re.fullmatch(r"internal error \(ref ([0-9a-f]{12})\)", text)
    assert match, text
    assert caplog.records[0].getMessage() == f"action x failed (ref {match.group(1)})"
    assert "hunter2" not in text


def test_report_references_differ_and_the_text_is_configurable(caplog):
    messages = ErrorMessages({"internalError": "oops, quote {ref}"}, expose_errors=False)
    with caplog.at_level(logging.ERROR, "squall.test"):
        first = messages.report(ValueError("a"), LOGGER, "failed")
        second = messages.report(ValueError("a"), LOGGER, "failed")

    assert first.startswith("oops, quote ") and first != second


def test_report_of_a_bug_without_text_shows_its_type_when_exposed(caplog):
    with caplog.at_level(logging.ERROR, "squall.test"):
        assert ErrorMessages({}).report(SystemExit(), LOGGER, "failed") == "SystemExit"


def test_report_of_a_backend_outage_is_one_warning_without_traceback(caplog):
    class Outage(Exception):
        pass

    messages = ErrorMessages({}, expose_errors=False, outages=(Outage,))
    with caplog.at_level(logging.WARNING, "squall.test"):
        text = messages.report(Outage("Redis at 10.0.0.7 refused"), LOGGER, "say failed")

    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    ref = re.fullmatch(r"internal error \(ref ([0-9a-f]{12})\)", text).group(1)
    assert record.getMessage() == f"say failed (ref {ref}): Redis at 10.0.0.7 refused"


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
