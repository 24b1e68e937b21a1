"""Running one action: input pipeline, limits, middleware, thread pool, timeout, errors, drain."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Iterator

import pytest
from testkit import TIMEOUT

import squall
from squall import ActionMiddleware, ClientError, Input
from squall.actions import ActionRegistry
from squall.errors import (
    ActionTimeout,
    ErrorMessages,
    InvalidParam,
    MissingParam,
    ServerShuttingDown,
    TooManyPendingActions,
    UnknownAction,
    http_status_of,
)
from squall.processor import ActionData, ActionProcessor, apply_inputs
from squall.threads import ActionThreads

from .conftest import MESSAGES, bounded, declared, socket_connection

LOGGER = "squall.actions"


@pytest.fixture
def threads() -> Iterator[ActionThreads]:
    pool = ActionThreads(4, "unit-action")
    yield pool
    pool.shutdown()


@pytest.fixture
def connection():
    return socket_connection("conn-1")


def processor_for(*actions, middleware=(), simultaneous=5, timeout_ms=None, **options):
    return ActionProcessor(
        registry=ActionRegistry(actions),
        middleware=middleware,
        messages=options.pop("messages", MESSAGES),
        simultaneous_actions=simultaneous,
        timeout_ms=timeout_ms,
        **options,
    )


async def ok(data):
    return {"ok": True}


def pipeline_error(inputs: dict, params: dict) -> str:
    with pytest.raises(ClientError) as caught:
        apply_inputs(inputs, params)
    return caught.value.render(MESSAGES)


# -- input pipeline -----------------------------------------------------------------------


def test_apply_inputs_order_is_default_formatter_validator():
    steps: list[str] = []

    def formatter(value):
        steps.append(f"formatter({value!r})")
        return value.upper()

    def validator(value):
        steps.append(f"validator({value!r})")

    params: dict = {}
    apply_inputs({"x": Input(default="d", formatter=formatter, validator=validator)}, params)

    assert steps == ["formatter('d')", "validator('D')"]
    assert params == {"x": "D"}


def test_apply_inputs_validator_sees_the_formatted_value():
    seen = []

    params = {"n": "41"}
    apply_inputs({"n": Input(formatter=int, validator=lambda v: seen.append(v))}, params)

    assert seen == [41]
    assert params == {"n": 41}


def test_apply_inputs_required_is_checked_after_the_formatter():
    """default -> formatter -> validator -> required: a formatter that empties a value makes
    it missing (ActionHero checks required on the formatted value)."""
    spec = Input(required=True, formatter=lambda v: v.strip() or None)

    assert pipeline_error({"name": spec}, {"name": "   "}) == (
        "name is a required parameter for this action"
    )


def test_apply_inputs_required_satisfied_by_default():
    params: dict = {}
    apply_inputs({"x": Input(required=True, default=5)}, params)

    assert params == {"x": 5}


@pytest.mark.parametrize("absent", [{}, {"x": None}, {"x": ""}])
def test_apply_inputs_default_fills_absent_null_and_empty(absent):
    params = dict(absent)
    apply_inputs({"x": Input(default="fallback")}, params)

    assert params == {"x": "fallback"}


@pytest.mark.parametrize("present", [0, False, [], {}, "0"])
def test_apply_inputs_falsy_values_are_present(present):
    params = {"x": present}
    apply_inputs({"x": Input(required=True, default="fallback")}, params)

    assert params == {"x": present}


def test_apply_inputs_callable_default_gets_the_params():
    calls = []

    def double_a(params):
        calls.append(dict(params))
        return params["a"] * 2

    params = {"a": 21}
    apply_inputs({"a": Input(), "b": Input(default=double_a)}, params)

    assert params == {"a": 21, "b": 42}
    assert calls == [{"a": 21}]


def test_apply_inputs_callable_default_not_called_when_value_present():
    def never(params):
        raise AssertionError("called")

    params = {"b": 1}
    apply_inputs({"b": Input(default=never)}, params)

    assert params == {"b": 1}


def test_apply_inputs_default_goes_through_formatter():
    params: dict = {}
    apply_inputs({"n": Input(default="7", formatter=int)}, params)

    assert params == {"n": 7}


def test_apply_inputs_absent_optional_input_stays_absent():
    params = {"other": 1}
    apply_inputs({"x": Input(formatter=int, validator=lambda v: False)}, params)

    assert params == {"other": 1}


def test_apply_inputs_undeclared_params_pass_through():
    params = {"action": "a", "apiVersion": 2, "extra": [1, {"b": None}]}
    apply_inputs({"x": Input(default=1)}, params)

    assert params == {"action": "a", "apiVersion": 2, "extra": [1, {"b": None}], "x": 1}


@pytest.mark.parametrize("absent", [{}, {"x": None}, {"x": ""}])
def test_apply_inputs_missing_required(absent):
    assert pipeline_error({"x": Input(required=True)}, dict(absent)) == (
        "x is a required parameter for this action"
    )


def test_apply_inputs_callable_default_returning_none_is_missing():
    spec = Input(required=True, default=lambda params: None)

    assert pipeline_error({"x": spec}, {}) == "x is a required parameter for this action"


def test_apply_inputs_first_failing_input_in_declaration_order():
    inputs = {"b": Input(required=True), "a": Input(required=True)}

    assert pipeline_error(inputs, {}) == "b is a required parameter for this action"


def test_apply_inputs_validator_returning_false():
    spec = Input(validator=lambda v: v > 0)

    assert pipeline_error({"n": spec}, {"n": -1}) == 'Input for parameter "n" failed validation!'


def test_apply_inputs_validator_returning_a_string_is_the_message():
    spec = Input(validator=lambda v: "must be positive")

    assert pipeline_error({"n": spec}, {"n": -1}) == "must be positive"


def test_apply_inputs_validator_returning_empty_string_uses_configured_text():
    spec = Input(validator=lambda v: "")

    assert pipeline_error({"n": spec}, {"n": 1}) == 'Input for parameter "n" failed validation!'


def test_apply_inputs_validator_raising_gives_its_message():
    def positive(value):
        raise ValueError("n must be positive")

    assert pipeline_error({"n": Input(validator=positive)}, {"n": -1}) == "n must be positive"


def test_apply_inputs_validator_raising_without_message_uses_configured_text():
    def refuse(value):
        raise ValueError

    assert pipeline_error({"n": Input(validator=refuse)}, {"n": 1}) == (
        'Input for parameter "n" failed validation!'
    )


@pytest.mark.parametrize("verdict", [None, True, 0, 1, [], {}])
def test_apply_inputs_validator_passing_verdicts(verdict):
    params = {"n": 1}
    apply_inputs({"n": Input(validator=lambda v: verdict)}, params)

    assert params == {"n": 1}


def test_apply_inputs_formatter_raising_uses_configured_text():
    assert pipeline_error({"n": Input(formatter=int)}, {"n": "abc"}) == (
        'Input for parameter "n" failed validation!'
    )


def test_apply_inputs_formatter_error_is_invalid_param_with_cause():
    with pytest.raises(InvalidParam) as caught:
        apply_inputs({"n": Input(formatter=int)}, {"n": "abc"})

    assert caught.value.fields == {"param": "n"}
    assert isinstance(caught.value.__cause__, ValueError)
    assert caught.value.http_status == 422


def test_apply_inputs_invalid_text_is_configurable():
    messages = ErrorMessages({"invalidParams": "bad {param}", "missingParams": "need {param}"})

    with pytest.raises(InvalidParam) as invalid:
        apply_inputs({"n": Input(formatter=int)}, {"n": "x"})
    with pytest.raises(MissingParam) as missing:
        apply_inputs({"m": Input(required=True)}, {})

    assert invalid.value.render(messages) == "bad n"
    assert missing.value.render(messages) == "need m"


@pytest.mark.parametrize(
    ("raised", "text"),
    [
        (squall.InvalidParams("n must be even"), "n must be even"),
        (squall.Forbidden("not your number"), "not your number"),
        (PermissionError("not your number"), "not your number"),
        (TypeError("n must be a number"), "n must be a number"),
    ],
)
def test_apply_inputs_validator_refusing_on_purpose_is_invalid_param(raised, text):
    def refuse(value):
        raise raised

    with pytest.raises(InvalidParam) as caught:
        apply_inputs({"n": Input(validator=refuse)}, {"n": 1})

    assert (caught.value.render(MESSAGES), caught.value.http_status) == (text, 422)


def test_apply_inputs_formatter_raising_an_action_error_shows_its_message():
    def cents(value):
        raise squall.BadRequest("amount must be in cents")

    assert pipeline_error({"n": Input(formatter=cents)}, {"n": "1.5"}) == "amount must be in cents"


@pytest.mark.parametrize("step", ["formatter", "validator"])
def test_apply_inputs_bug_in_a_formatter_or_validator_is_no_invalid_param(step):
    """A KeyError in a validator is the app's bug, not a bad value: it goes on
    up as it is (the processor logs it and answers 500), never as a 422."""

    def buggy(value):
        return {}["missing key"]

    with pytest.raises(KeyError):
        apply_inputs({"n": Input(**{step: buggy})}, {"n": 1})


async def test_process_bug_in_a_validator_is_logged_and_answered_500(connection, caplog):
    def buggy(value):
        return value.no_such_attribute

    action = declared(ok, "checked", inputs={"n": Input(validator=buggy)})
    with caplog.at_level(logging.ERROR, LOGGER):
        result = await processor_for(action).process(connection, {"action": "checked", "n": 1})

    assert result.response == {"error": "'int' object has no attribute 'no_such_attribute'"}
    assert http_status_of(result.error) == 500
    assert caplog.records[0].exc_info[0] is AttributeError


# -- lookup and replies -------------------------------------------------------------------


async def test_process_returns_the_action_fields(connection):
    processor = processor_for(declared(ok))

    result = await processor.process(connection, {"action": "ok"})

    assert result.response == {"ok": True}
    assert result.error is None
    assert result.action.name == "ok"
    assert (connection.total_actions, connection.pending_actions) == (1, 0)


async def test_process_unknown_action(connection):
    processor = processor_for(declared(ok))

    result = await processor.process(connection, {"action": "nope"})

    assert result.response == {"error": "unknown action or invalid apiVersion"}
    assert isinstance(result.error, UnknownAction)
    assert result.action is None
    assert (connection.total_actions, connection.pending_actions) == (1, 0)


async def test_process_without_action_name(connection):
    result = await processor_for(declared(ok)).process(connection, {})

    assert result.response == {"error": "unknown action or invalid apiVersion"}


async def test_process_unknown_api_version(connection):
    processor = processor_for(declared(ok))

    result = await processor.process(connection, {"action": "ok", "apiVersion": 2})

    assert result.response == {"error": "unknown action or invalid apiVersion"}


async def test_process_api_version_selects(connection):
    async def v1(data):
        return {"v": 1}

    async def v2(data):
        return {"v": 2}

    processor = processor_for(declared(v1, "both"), declared(v2, "both", version=2))

    assert (await processor.process(connection, {"action": "both"})).response == {"v": 2}
    for api_version in ("1", 1, 1.0):
        params = {"action": "both", "apiVersion": api_version}
        assert (await processor.process(connection, params)).response == {"v": 1}


async def test_process_unknown_action_text_is_configurable(connection):
    processor = processor_for(declared(ok), messages=ErrorMessages({"unknownAction": "no such"}))

    assert (await processor.process(connection, {"action": "x"})).response == {"error": "no such"}


async def test_process_action_sees_connection_params_and_app(connection):
    seen = {}

    async def look(data: ActionData):
        seen.update(
            connection=data.connection, params=data.params, app=data.app, action=data.action
        )
        return {}

    app = object()
    processor = processor_for(declared(look), app=app)

    await processor.process(connection, {"action": "look", "a": 1})

    assert seen["connection"] is connection
    assert seen["params"] == {"action": "look", "a": 1}
    assert seen["app"] is app
    assert seen["action"].name == "look"


async def test_process_action_may_fill_response_instead_of_returning(connection):
    async def fill(data):
        data.response["filled"] = 1

    result = await processor_for(declared(fill)).process(connection, {"action": "fill"})

    assert result.response == {"filled": 1}


async def test_process_non_mapping_return_adds_nothing(connection):
    async def odd(data):
        return ["not", "a", "dict"]

    result = await processor_for(declared(odd)).process(connection, {"action": "odd"})

    assert result.response == {}
    assert result.error is None


@pytest.mark.parametrize("empty", [None, ""])
async def test_process_an_empty_error_the_action_returned_is_taken_out(connection, empty):
    async def tidy(data):
        return {"done": True, "error": empty}

    result = await processor_for(declared(tidy)).process(connection, {"action": "tidy"})

    assert result.response == {"done": True}
    assert result.error is None


@pytest.mark.parametrize("how", ["returned", "filled"])
async def test_process_an_error_the_action_answered_with_is_a_400_failure(connection, how):
    async def refuse(data):
        if how == "filled":
            data.response["error"] = "not today"
            return None
        return {"error": "not today", "kept": 1}

    processor = processor_for(declared(refuse))
    result = await processor.process(connection, {"action": "refuse"})

    assert result.response["error"] == "not today"
    assert http_status_of(result.error) == 400
    assert processor.stats.actions["refuse"].outcomes == {"action_error": 1}


async def test_process_params_are_copied_never_shared(connection):
    async def mutate(data):
        data.params["added"] = True
        return {"params": dict(data.params)}

    processor = processor_for(declared(mutate))
    params = {"action": "mutate", "a": 1}

    first = await processor.process(connection, params)
    second = await processor.process(connection, {"action": "mutate"})

    assert params == {"action": "mutate", "a": 1}
    assert first.response == {"params": {"action": "mutate", "a": 1, "added": True}}
    assert second.response == {"params": {"action": "mutate", "added": True}}
    assert connection.params == {}


async def test_process_input_errors_become_the_reply(connection):
    needs = declared(ok, "needs", inputs={"n": Input(required=True, formatter=int)})
    processor = processor_for(needs)

    missing = await processor.process(connection, {"action": "needs"})
    invalid = await processor.process(connection, {"action": "needs", "n": "x"})
    good = await processor.process(connection, {"action": "needs", "n": "3"})

    assert missing.response == {"error": "n is a required parameter for this action"}
    assert isinstance(missing.error, MissingParam)
    assert invalid.response == {"error": 'Input for parameter "n" failed validation!'}
    assert isinstance(invalid.error, InvalidParam)
    assert good.response == {"ok": True}
    assert connection.pending_actions == 0


async def test_process_inputs_reach_the_action_formatted(connection):
    async def add(data):
        return {"sum": data.params["a"] + data.params["b"]}

    add_action = declared(
        add, inputs={"a": Input(required=True, formatter=int), "b": Input(default=0)}
    )
    processor = processor_for(add_action)

    result = await processor.process(connection, {"action": "add", "a": "40", "b": 2})

    assert result.response == {"sum": 42}


# -- errors inside actions ----------------------------------------------------------------


async def test_process_action_raising_gives_its_message_and_logs_traceback(connection, caplog):
    async def boom(data):
        raise RuntimeError("it broke")

    with caplog.at_level(logging.ERROR, LOGGER):
        result = await processor_for(declared(boom)).process(connection, {"action": "boom"})

    assert result.response == {"error": "it broke"}
    assert isinstance(result.error, RuntimeError)
    assert [(r.name, r.levelno) for r in caplog.records] == [(LOGGER, logging.ERROR)]
    assert re.fullmatch(
        r"action boom failed \(connection conn-1\) \(ref [0-9a-f]{12}\)", caplog.records[0].message
    )
    assert caplog.records[0].exc_info[0] is RuntimeError
    assert connection.pending_actions == 0


async def test_process_action_raising_without_message_gives_exception_name(connection, caplog):
    async def boom(data):
        raise KeyError

    with caplog.at_level(logging.ERROR, LOGGER):
        result = await processor_for(declared(boom)).process(connection, {"action": "boom"})

    assert result.response == {"error": "KeyError"}


async def test_process_action_error_keeps_fields_set_before_it(connection, caplog):
    async def half(data):
        data.response["step"] = 1
        raise ValueError("step 2 failed")

    with caplog.at_level(logging.ERROR, LOGGER):
        result = await processor_for(declared(half)).process(connection, {"action": "half"})

    assert result.response == {"step": 1, "error": "step 2 failed"}


async def test_process_sync_action_raising(connection, threads, caplog):
    def boom(data):
        raise RuntimeError("sync broke")

    processor = processor_for(declared(boom), threads=threads)
    with caplog.at_level(logging.ERROR, LOGGER):
        result = await processor.process(connection, {"action": "boom"})

    assert result.response == {"error": "sync broke"}
    assert caplog.records[0].exc_info[0] is RuntimeError


async def test_process_expected_errors_are_not_logged(connection, caplog):
    async def refuse(data):
        raise PermissionError("not yours")

    needs = declared(ok, "needs", inputs={"n": Input(required=True)})
    processor = processor_for(declared(refuse), needs)

    with caplog.at_level(logging.DEBUG, LOGGER):
        refused = await processor.process(connection, {"action": "refuse"})
        missing = await processor.process(connection, {"action": "needs"})
        unknown = await processor.process(connection, {"action": "nope"})

    assert refused.response == {"error": "not yours"}
    assert missing.response == {"error": "n is a required parameter for this action"}
    assert unknown.response == {"error": "unknown action or invalid apiVersion"}
    assert caplog.records == []


async def test_process_action_error_reaches_the_client_with_its_status(connection, caplog):
    async def pay(data):
        raise squall.Conflict("this invoice is already paid")

    with caplog.at_level(logging.DEBUG, LOGGER):
        result = await processor_for(declared(pay)).process(connection, {"action": "pay"})

    assert result.response == {"error": "this invoice is already paid"}
    assert http_status_of(result.error) == 409
    assert caplog.records == []


async def test_process_hides_a_bug_when_errors_are_not_exposed(connection, caplog):
    async def leak(data):
        raise RuntimeError("connect to postgres://admin:hunter2@db failed")

    hidden = ErrorMessages({}, expose_errors=False)
    with caplog.at_level(logging.ERROR, LOGGER):
        result = await processor_for(declared(leak), messages=hidden).process(
            connection, {"action": "leak"}
        )

    ref = re.fullmatch(r"internal error \(ref ([0-9a-f]{12})\)", result.response["error"])
    assert ref, result.response
    assert caplog.records[0].getMessage().endswith(f"(ref {ref.group(1)})")
    assert "hunter2" in caplog.text  # the traceback keeps the truth for the operator
    assert http_status_of(result.error) == 500


async def test_process_hides_a_bug_in_middleware_when_errors_are_not_exposed(connection, caplog):
    def broken(data):
        raise RuntimeError("middleware secret")

    hidden = ErrorMessages({}, expose_errors=False)
    processor = processor_for(
        declared(ok),
        middleware=[ActionMiddleware("b", pre=broken, is_global=True)],
        messages=hidden,
    )
    with caplog.at_level(logging.ERROR, LOGGER):
        result = await processor.process(connection, {"action": "ok"})

    assert result.response["error"].startswith("internal error (ref ")
    assert "middleware secret" in caplog.text


# -- exceptions outside Exception (PROTOCOL.md §2.3) -----------------------------------------


async def test_process_system_exit_in_a_plain_def_action_is_an_error_reply(
    connection, threads, caplog
):
    """``sys.exit(2)`` (as argparse does) in a thread must not stop the
    server: it is the action's failure, logged with its traceback."""

    def exits(data):
        raise SystemExit(2)

    processor = processor_for(declared(exits), threads=threads)
    with caplog.at_level(logging.ERROR, LOGGER):
        result = await processor.process(connection, {"action": "exits"})

    assert result.response == {"error": "2"}
    assert isinstance(result.error, SystemExit)
    assert http_status_of(result.error) == 500
    assert caplog.records[0].exc_info[0] is SystemExit
    assert connection.pending_actions == 0 and processor.in_flight == 0


@pytest.mark.parametrize("raised", [SystemExit, KeyboardInterrupt, GeneratorExit])
async def test_process_base_exceptions_in_an_async_action_are_error_replies(
    connection, caplog, raised
):
    async def stops(data):
        raise raised()

    with caplog.at_level(logging.ERROR, LOGGER):
        result = await processor_for(declared(stops)).process(connection, {"action": "stops"})

    assert result.response == {"error": raised.__name__}
    assert caplog.records[0].exc_info[0] is raised


@pytest.mark.parametrize("timeout_ms", [None, 5000])
async def test_process_awaiting_a_future_cancelled_by_someone_else_is_an_error_reply(
    connection, caplog, timeout_ms
):
    """A cancelled future awaited inside an action that nobody cancelled: a reply and a log
    line (it used to leave the socket without a reply and log nothing)."""

    async def awaits_cancelled(data):
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    processor = processor_for(declared(awaits_cancelled), timeout_ms=timeout_ms)
    with caplog.at_level(logging.ERROR, LOGGER):
        result = await processor.process(connection, {"action": "awaits_cancelled"})

    assert result.response == {"error": "CancelledError"}
    assert caplog.records[0].exc_info[0] is asyncio.CancelledError
    assert connection.pending_actions == 0


async def test_process_cancelled_itself_goes_on_up(connection):
    """The request's own cancellation (shutdown, a vanished client) is no action failure."""
    started = asyncio.Event()

    async def waits(data):
        started.set()
        await asyncio.Event().wait()

    processor = processor_for(declared(waits))
    task = asyncio.ensure_future(processor.process(connection, {"action": "waits"}))
    await bounded(started.wait())
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert connection.pending_actions == 0 and processor.in_flight == 0


# -- sync actions, timeout ----------------------------------------------------------------


async def test_process_sync_action_runs_in_the_pool_without_blocking_the_loop(connection, threads):
    loop = asyncio.get_running_loop()
    started = asyncio.Event()
    release = threading.Event()
    names = []

    def blocking(data):
        names.append(threading.current_thread().name)
        loop.call_soon_threadsafe(started.set)
        if not release.wait(TIMEOUT):
            raise TimeoutError("never released")
        return {"done": True}

    processor = processor_for(declared(blocking), threads=threads)
    task = asyncio.create_task(processor.process(connection, {"action": "blocking"}))

    await bounded(started.wait())  # the loop runs while the action holds its thread
    assert not task.done()
    assert connection.pending_actions == 1
    release.set()
    result = await bounded(task)

    assert result.response == {"done": True}
    assert len(names) == 1
    assert names[0].startswith("unit-action")
    assert connection.pending_actions == 0


async def test_process_async_action_timeout(connection, caplog):
    async def hang(data):
        await asyncio.Event().wait()

    processor = processor_for(declared(hang), timeout_ms=20)
    with caplog.at_level(logging.ERROR, LOGGER):
        result = await bounded(processor.process(connection, {"action": "hang"}))

    assert result.response == {"error": "the action timed out after 20 ms"}
    assert isinstance(result.error, ActionTimeout)
    assert [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records] == [
        (logging.ERROR, "action hang timed out after 20 ms (connection conn-1)", None)
    ]
    assert (connection.pending_actions, processor.in_flight) == (0, 0)


async def test_process_sync_action_timeout(connection, threads, caplog):
    release = threading.Event()

    def stuck(data):
        release.wait(TIMEOUT)
        return {}

    processor = processor_for(declared(stuck), timeout_ms=20, threads=threads)
    try:
        with caplog.at_level(logging.ERROR, LOGGER):
            result = await bounded(processor.process(connection, {"action": "stuck"}))
    finally:
        release.set()

    assert result.response == {"error": "the action timed out after 20 ms"}
    assert connection.pending_actions == 0


async def test_process_fast_action_beats_the_timeout(connection):
    processor = processor_for(declared(ok), timeout_ms=TIMEOUT * 1000)

    assert (await processor.process(connection, {"action": "ok"})).response == {"ok": True}


# -- simultaneousActions ------------------------------------------------------------------


class Gate:
    """Holds actions until opened; ``entered`` fires when ``expected`` of them are waiting."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.waiting = 0
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()

    async def pass_through(self, data):
        self.waiting += 1
        if self.waiting == self.expected:
            self.entered.set()
        await self.opened.wait()
        return {"passed": True}


async def test_process_sixth_concurrent_action_fails_at_once(connection):
    gate = Gate(5)
    processor = processor_for(declared(gate.pass_through, "slow"), simultaneous=5)
    held = [asyncio.create_task(processor.process(connection, {"action": "slow"})) for _ in "12345"]
    await bounded(gate.entered.wait())

    sixth = await processor.process(connection, {"action": "slow"})

    assert sixth.response == {"error": "you have too many pending requests"}
    assert isinstance(sixth.error, TooManyPendingActions)
    assert (connection.total_actions, connection.pending_actions) == (6, 5)
    gate.opened.set()
    results = await bounded(asyncio.gather(*held))
    assert [r.response for r in results] == [{"passed": True}] * 5
    assert (connection.total_actions, connection.pending_actions) == (6, 0)
    assert processor.in_flight == 0
    after = await processor.process(connection, {"action": "slow"})
    assert after.response == {"passed": True}


async def test_process_limit_is_per_connection(connection):
    gate = Gate(2)
    processor = processor_for(declared(gate.pass_through, "slow"), declared(ok), simultaneous=2)
    held = [asyncio.create_task(processor.process(connection, {"action": "slow"})) for _ in "12"]
    await bounded(gate.entered.wait())

    other = socket_connection("conn-2")
    assert (await processor.process(other, {"action": "ok"})).response == {"ok": True}
    refused = await processor.process(connection, {"action": "ok"})
    assert refused.response == {"error": "you have too many pending requests"}

    gate.opened.set()
    await bounded(asyncio.gather(*held))


async def test_process_pending_counters_return_to_zero_after_errors(connection, caplog):
    async def boom(data):
        raise RuntimeError("x")

    async def hang(data):
        await asyncio.Event().wait()

    def refuse(data):
        raise PermissionError("blocked")

    processor = processor_for(
        declared(boom),
        declared(hang),
        declared(ok, "needs", inputs={"n": Input(required=True)}),
        middleware=[ActionMiddleware("guard", pre=refuse, is_global=False)],
        timeout_ms=20,
    )
    guarded = declared(ok, "guarded", middleware=("guard",))
    processor.registry.add(guarded)

    with caplog.at_level(logging.ERROR, LOGGER):
        for name in ("boom", "hang", "needs", "guarded", "unknown"):
            result = await bounded(processor.process(connection, {"action": name}))
            assert "error" in result.response, name

    assert (connection.total_actions, connection.pending_actions) == (5, 0)
    assert processor.in_flight == 0


# -- middleware ---------------------------------------------------------------------------


def recorder(log: list[str], name: str) -> dict:
    def pre(data):
        log.append(f"pre:{name}")

    async def post(data):
        log.append(f"post:{name}")

    return {"pre": pre, "post": post}


async def test_process_middleware_runs_by_priority_around_the_action(connection):
    log: list[str] = []

    async def work(data):
        log.append("action")
        return {}

    middleware = [
        ActionMiddleware("late", priority=200, **recorder(log, "late"), is_global=True),
        ActionMiddleware("early", priority=1, **recorder(log, "early"), is_global=True),
        ActionMiddleware("default", **recorder(log, "default"), is_global=True),
    ]
    processor = processor_for(declared(work), middleware=middleware)

    await processor.process(connection, {"action": "work"})

    assert log == [
        "pre:early",
        "pre:default",
        "pre:late",
        "action",
        "post:early",
        "post:default",
        "post:late",
    ]


async def test_process_middleware_ties_keep_declaration_order(connection):
    log: list[str] = []
    middleware = [ActionMiddleware(n, **recorder(log, n), is_global=True) for n in ("b", "a", "c")]
    processor = processor_for(declared(ok), middleware=middleware)

    await processor.process(connection, {"action": "ok"})

    assert log == ["pre:b", "pre:a", "pre:c", "post:b", "post:a", "post:c"]


async def test_process_opt_in_middleware_wraps_only_actions_naming_it(connection):
    log: list[str] = []
    middleware = [
        ActionMiddleware("global", priority=50, **recorder(log, "global"), is_global=True),
        ActionMiddleware("auth", priority=10, is_global=False, **recorder(log, "auth")),
    ]
    processor = processor_for(
        declared(ok, "open"), declared(ok, "closed", middleware=("auth",)), middleware=middleware
    )

    await processor.process(connection, {"action": "open"})
    opened = list(log)
    log.clear()
    await processor.process(connection, {"action": "closed"})

    assert opened == ["pre:global", "post:global"]
    assert log == ["pre:auth", "pre:global", "post:auth", "post:global"]


async def test_process_middleware_is_opt_in_by_default(connection):
    """A new user's token check must not lock every action, status included."""

    def require_token(data):
        if data.params.get("token") != "s3cret":
            raise PermissionError("a valid token is required")

    processor = processor_for(
        declared(ok, "status"),
        declared(ok, "secret", middleware=("auth",)),
        middleware=[ActionMiddleware("auth", pre=require_token)],
    )

    assert (await processor.process(connection, {"action": "status"})).response == {"ok": True}
    refused = await processor.process(connection, {"action": "secret"})
    assert refused.response == {"error": "a valid token is required"}


async def test_process_action_naming_a_global_middleware_runs_it_once(connection):
    log: list[str] = []
    middleware = [ActionMiddleware("global", **recorder(log, "global"), is_global=True)]
    processor = processor_for(declared(ok, middleware=("global",)), middleware=middleware)

    await processor.process(connection, {"action": "ok"})

    assert log == ["pre:global", "post:global"]


async def test_process_pre_raising_blocks_the_action(connection):
    log: list[str] = []

    async def work(data):
        log.append("action")
        return {"ran": True}

    def deny(data):
        raise PermissionError("a valid token is required")

    middleware = [
        ActionMiddleware("deny", pre=deny, priority=1, is_global=True),
        ActionMiddleware("after", priority=2, **recorder(log, "after"), is_global=True),
    ]
    processor = processor_for(declared(work), middleware=middleware)

    result = await processor.process(connection, {"action": "work"})

    assert result.response == {"error": "a valid token is required"}
    assert log == []
    assert connection.pending_actions == 0


async def test_process_pre_raising_unexpectedly_is_logged(connection, caplog):
    def broken(data):
        raise RuntimeError("middleware bug")

    processor = processor_for(
        declared(ok), middleware=[ActionMiddleware("b", pre=broken, is_global=True)]
    )
    with caplog.at_level(logging.ERROR, LOGGER):
        result = await processor.process(connection, {"action": "ok"})

    assert result.response == {"error": "middleware bug"}
    assert [r.getMessage()[:36] for r in caplog.records] == ["action ok failed (connection conn-1)"]
    assert caplog.records[0].exc_info[0] is RuntimeError


async def test_process_async_pre_may_block(connection):
    async def deny(data):
        raise PermissionError("async no")

    processor = processor_for(
        declared(ok), middleware=[ActionMiddleware("d", pre=deny, is_global=True)]
    )

    assert (await processor.process(connection, {"action": "ok"})).response == {"error": "async no"}


async def test_process_pre_runs_before_the_input_pipeline(connection):
    def fill(data):
        data.params.setdefault("token", "from-middleware")

    async def show(data):
        return {"token": data.params["token"]}

    needs = declared(show, inputs={"token": Input(required=True)})
    processor = processor_for(
        needs, middleware=[ActionMiddleware("fill", pre=fill, is_global=True)]
    )

    result = await processor.process(connection, {"action": "show"})

    assert result.response == {"token": "from-middleware"}


async def test_process_post_sees_and_changes_the_response(connection):
    seen = []

    def stamp(data):
        seen.append(dict(data.response))
        data.response["stamped"] = True

    processor = processor_for(
        declared(ok), middleware=[ActionMiddleware("s", post=stamp, is_global=True)]
    )

    result = await processor.process(connection, {"action": "ok"})

    assert seen == [{"ok": True}]
    assert result.response == {"ok": True, "stamped": True}


async def test_process_post_skipped_when_the_action_fails(connection, caplog):
    log: list[str] = []

    async def boom(data):
        raise RuntimeError("no")

    processor = processor_for(
        declared(boom), middleware=[ActionMiddleware("r", **recorder(log, "r"), is_global=True)]
    )
    with caplog.at_level(logging.ERROR, LOGGER):
        await processor.process(connection, {"action": "boom"})

    assert log == ["pre:r"]


# -- drain --------------------------------------------------------------------------------


async def test_drain_refuses_new_actions_and_waits_for_running_ones(connection):
    gate = Gate(1)
    processor = processor_for(declared(gate.pass_through, "slow"), declared(ok))
    running = asyncio.create_task(processor.process(connection, {"action": "slow"}))
    await bounded(gate.entered.wait())

    draining = asyncio.create_task(processor.drain(TIMEOUT * 1000))
    await asyncio.sleep(0)  # one loop turn: the drain task starts and marks the processor stopping
    assert processor.stopping is True
    refused = await processor.process(connection, {"action": "ok"})

    assert refused.response == {"error": "the server is shutting down"}
    assert isinstance(refused.error, ServerShuttingDown)
    assert connection.total_actions == 2
    assert not draining.done()
    gate.opened.set()
    assert (await bounded(running)).response == {"passed": True}
    assert await bounded(draining) is True
    assert processor.in_flight == 0


async def test_drain_with_nothing_running_returns_at_once(connection):
    processor = processor_for(declared(ok))

    assert await bounded(processor.drain(TIMEOUT * 1000)) is True
    assert (await processor.process(connection, {"action": "ok"})).response == {
        "error": "the server is shutting down"
    }


async def test_drain_gives_up_after_its_timeout(connection):
    gate = Gate(1)
    processor = processor_for(declared(gate.pass_through, "slow"))
    running = asyncio.create_task(processor.process(connection, {"action": "slow"}))
    await bounded(gate.entered.wait())

    assert await bounded(processor.drain(20)) is False

    gate.opened.set()
    await bounded(running)


async def test_process_several_timeouts_at_once(connection, caplog):
    async def hang(data):
        await asyncio.Event().wait()

    processor = processor_for(declared(hang), declared(ok), timeout_ms=20)
    with caplog.at_level(logging.ERROR, LOGGER):
        results = await bounded(
            asyncio.gather(*(processor.process(connection, {"action": "hang"}) for _ in "123"))
        )
        after = await processor.process(connection, {"action": "ok"})

    assert [r.response for r in results] == [{"error": "the action timed out after 20 ms"}] * 3
    assert after.response == {"ok": True}
    assert (connection.pending_actions, processor.in_flight) == (0, 0)


async def test_process_timeout_in_the_callers_own_task(connection, caplog):
    """The deadline cancels the task awaiting process(); the caller's task goes on unharmed."""

    async def hang(data):
        await asyncio.Event().wait()

    processor = processor_for(declared(hang), timeout_ms=20)
    with caplog.at_level(logging.ERROR, LOGGER):
        result = await processor.process(connection, {"action": "hang"})

    assert result.response == {"error": "the action timed out after 20 ms"}
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0
    await asyncio.sleep(0)  # a pending cancel would be delivered at this await


async def test_process_nested_action_times_out_with_its_caller(connection, caplog):
    async def inner(data):
        await asyncio.Event().wait()

    async def outer(data):
        result = await data.app.process(data.connection, {"action": "inner"})
        return {"inner": result.response}

    processor = processor_for(declared(inner), declared(outer), timeout_ms=20)
    processor.app = processor
    with caplog.at_level(logging.ERROR, LOGGER):
        result = await bounded(processor.process(connection, {"action": "outer"}))

    assert result.response == {"error": "the action timed out after 20 ms"}
    assert (connection.total_actions, connection.pending_actions) == (2, 0)
    assert processor.in_flight == 0


async def test_process_action_finishing_in_time_is_not_cancelled_later(connection):
    async def quick(data):
        return {"quick": True}

    async def post(data):
        data.response["post"] = True

    processor = processor_for(
        declared(quick),
        timeout_ms=20,
        middleware=[ActionMiddleware("p", post=post, is_global=True)],
    )

    result = await processor.process(connection, {"action": "quick"})
    # Real time is the behaviour here: outlive the 20 ms deadline and its sweep. A stray
    # cancel of this task would surface as CancelledError instead of the TimeoutError.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.Event().wait(), 0.08)

    assert result.response == {"quick": True, "post": True}
