"""Declaring actions, looking them up by name and apiVersion, documenting them (PROTOCOL §2.1)."""

from __future__ import annotations

import pytest

from squall import Action, Input, action
from squall.actions import MISSING, ActionRegistry


async def run(data):
    return {}


def versions(name: str, *numbers: float) -> list[Action]:
    return [Action(name=name, run=run, version=v, source=f"{name}_v{v}.py") for v in numbers]


# -- the decorator ------------------------------------------------------------------------


def test_action_decorator_names_the_action_after_the_function():
    @action()
    async def greet(data):
        return {}

    assert isinstance(greet, Action)
    assert (greet.name, greet.version, greet.description) == ("greet", 1, "")
    assert greet.inputs == {}
    assert greet.middleware == ()
    assert greet.output_example is None
    assert greet.to_document is True
    assert greet.source == __file__


def test_action_decorator_takes_description_from_docstring():
    @action("hello")
    async def whatever(data):
        """Says hello.

        At length.
        """

    assert whatever.name == "hello"
    assert whatever.description == "Says hello.\n\nAt length."


def test_action_decorator_explicit_description_wins_over_docstring():
    @action(description="explicit")
    async def documented(data):
        """From the docstring."""

    assert documented.description == "explicit"


def test_action_decorator_keeps_every_option():
    spec = Input(required=True)

    @action(
        "full",
        description="d",
        version=2,
        inputs={"a": spec},
        output_example={"a": 1},
        middleware=["m1", "m2"],
        to_document=False,
    )
    def full(data):
        return {}

    assert (full.name, full.description, full.version) == ("full", "d", 2)
    assert full.inputs == {"a": spec}
    assert full.output_example == {"a": 1}
    assert full.middleware == ("m1", "m2")
    assert full.to_document is False


def test_action_is_async_for_coroutine_functions_only():
    def plain(data):
        return {}

    assert Action(name="a", run=run).is_async is True
    assert Action(name="p", run=plain).is_async is False


# -- problems() ---------------------------------------------------------------------------


def test_action_problems_empty_for_a_good_declaration():
    good = Action(name="a.b:c-d_1", run=run, version=1.5, inputs={"x": Input()})

    assert good.problems() == []


@pytest.mark.parametrize("name", ["", "1abc", "bad name", "../up", "_private", "__init__", "a/b"])
def test_action_problems_bad_name(name):
    assert Action(name=name, run=run).problems() == [
        f"action name {name!r} must start with a letter and use only letters, digits, "
        "'_', '.', ':' or '-'"
    ]


def test_action_problems_name_not_a_string():
    assert Action(name=5, run=run).problems() == [  # type: ignore[arg-type]
        "action name 5 must start with a letter and use only letters, digits, '_', '.', ':' or '-'"
    ]


def test_action_problems_run_not_callable():
    assert Action(name="a", run="nope").problems() == [  # type: ignore[arg-type]
        "action 'a': run must be a function taking (data), got str 'nope'"
    ]


def test_action_problems_run_taking_other_arguments():
    async def two(data, extra):
        return {}

    assert Action(name="a", run=two).problems() == [
        "action 'a': run must take (data), but takes (data, extra)"
    ]


@pytest.mark.parametrize("inputs", [["name"], ("name",), "name", 5])
def test_action_problems_inputs_not_a_mapping(inputs):
    """``inputs=[...]`` used to stop the boot with a cryptic ValueError."""
    assert Action(name="a", run=run, inputs=inputs).problems() == [  # type: ignore[arg-type]
        "action 'a': inputs must be a mapping of input name to Input(...), such as "
        f"{{'name': Input(required=True)}}; got a {type(inputs).__name__}"
    ]


def test_action_decorator_keeps_inputs_that_are_not_a_mapping_for_problems():
    declared = action(inputs=["name"])(run)  # type: ignore[arg-type]

    assert declared.problems()[0].startswith("action 'run': inputs must be a mapping")


def test_action_problems_input_names_must_be_strings():
    assert Action(name="a", run=run, inputs={1: Input()}).problems() == [  # type: ignore[dict-item]
        "action 'a': input names must be strings, got 1"
    ]


@pytest.mark.parametrize(
    ("step", "value", "problem"),
    [
        ("validator", "positive", "must be a function taking (value), got str 'positive'"),
        ("formatter", 5, "must be a function taking (value), got int 5"),
        ("validator", lambda: True, "must take (value), but takes ()"),
        ("formatter", lambda value, extra: value, "must take (value), but takes (value, extra)"),
    ],
)
def test_action_problems_formatter_or_validator_that_cannot_take_the_value(step, value, problem):
    declared = Action(name="a", run=run, inputs={"n": Input(**{step: value})})

    assert declared.problems() == [f"action 'a': input 'n' {step} {problem}"]


@pytest.mark.parametrize(
    "fn", [int, str, float, lambda value, base=10: value, lambda *values: values, print]
)
def test_action_problems_accept_what_can_take_one_value(fn):
    assert (
        Action(name="a", run=run, inputs={"n": Input(formatter=fn, validator=fn)}).problems() == []
    )


@pytest.mark.parametrize("version", ["2", True, None, [1]])
def test_action_problems_version_not_a_number(version):
    assert Action(name="a", run=run, version=version).problems() == [
        f"action 'a': version must be a number, got {version!r}"
    ]


def test_action_problems_input_not_an_input():
    declared = Action(name="a", run=run, inputs={"x": {"required": True}, "y": Input()})

    assert declared.problems() == ["action 'a': input 'x' must be an Input(...)"]


def test_action_problems_lists_every_problem():
    declared = Action(name="bad name", run=run, version="1", inputs={"x": 5})

    assert declared.problems() == [
        "action name 'bad name' must start with a letter and use only letters, digits, "
        "'_', '.', ':' or '-'",
        "action 'bad name': version must be a number, got '1'",
        "action 'bad name': input 'x' must be an Input(...)",
    ]


# -- registry lookup ----------------------------------------------------------------------


def test_registry_match_without_api_version_is_the_highest():
    registry = ActionRegistry(versions("greet", 1, 3, 2))

    assert registry.match("greet").version == 3
    assert registry.match("greet", None).version == 3
    assert registry.match("greet", "").version == 3


@pytest.mark.parametrize("api_version", ["2", 2, 2.0, "2.0", " 2 "])
def test_registry_match_api_version_selects(api_version):
    registry = ActionRegistry(versions("greet", 1, 2, 3))

    assert registry.match("greet", api_version).version == 2


def test_registry_match_fractional_version():
    registry = ActionRegistry(versions("greet", 1, 1.5))

    assert registry.match("greet", "1.5").version == 1.5
    assert registry.match("greet", 1).version == 1


@pytest.mark.parametrize("api_version", [4, "4", 0, -1, "two", True, False, [2], {"v": 2}, "nan"])
def test_registry_match_unknown_version_is_none(api_version):
    registry = ActionRegistry(versions("greet", 1, 2, 3))

    assert registry.match("greet", api_version) is None


def test_registry_match_huge_integer_version_is_none():
    """A JSON client may send any integer as apiVersion; one too big for a float is unknown."""
    registry = ActionRegistry(versions("greet", 1))

    outcome = escaped = None
    try:
        outcome = registry.match("greet", 10**400)
    except OverflowError as error:
        escaped = type(error).__name__  # failing outside the handler keeps the report short
    assert escaped is None, f"{escaped} escaped ActionRegistry.match"
    assert outcome is None


@pytest.mark.parametrize("name", ["nope", "", None, 5, ["greet"], {"greet": 1}, "GREET"])
def test_registry_match_unknown_name_is_none(name):
    registry = ActionRegistry(versions("greet", 1))

    assert registry.match(name) is None
    assert registry.match(name, 1) is None


def test_registry_later_lower_version_keeps_the_highest_as_default():
    registry = ActionRegistry(versions("greet", 2))
    registry.add(versions("greet", 1)[0])

    assert registry.match("greet").version == 2


def test_registry_later_higher_version_becomes_the_default():
    registry = ActionRegistry(versions("greet", 2))
    registry.add(versions("greet", 5)[0])

    assert registry.match("greet").version == 5


def test_registry_same_name_and_version_twice_names_both_sources():
    registry = ActionRegistry(versions("greet", 1))

    with pytest.raises(ValueError) as caught:
        registry.add(Action(name="greet", run=run, version=1.0, source="other.py"))

    assert str(caught.value) == (
        "action 'greet' version 1.0 is declared twice (greet_v1.py and other.py)"
    )


def test_registry_len_and_iter_count_every_version():
    declared = versions("a", 1, 2) + versions("b", 1)
    registry = ActionRegistry(declared)

    assert len(registry) == 3
    assert list(registry) == declared


# -- documentation ------------------------------------------------------------------------


def test_input_document_minimal():
    assert Input().document() == {"required": False}


def test_input_document_with_default_and_description():
    spec = Input(required=True, default=3, description="how many")

    assert spec.document() == {"required": True, "default": 3, "description": "how many"}


def test_input_document_none_default_is_documented():
    assert Input(default=None).document() == {"required": False, "default": None}


def test_input_document_callable_default_is_left_out():
    assert Input(default=lambda params: 1).document() == {"required": False}


def test_input_missing_default_marker():
    assert Input().default is MISSING
    assert repr(MISSING) == "MISSING"


def test_registry_documentation_shape():
    registry = ActionRegistry(
        [
            Action(
                name="add",
                run=run,
                description="Add two numbers",
                inputs={
                    "a": Input(required=True, description="first"),
                    "b": Input(default=0),
                },
                output_example={"sum": 3},
            ),
            Action(name="add", run=run, version=2.0, description="v2"),
            Action(name="half", run=run, version=0.5),
            Action(name="hidden", run=run, to_document=False),
        ]
    )

    assert registry.documentation() == {
        "add": {
            "1": {
                "name": "add",
                "version": 1,
                "description": "Add two numbers",
                "inputs": {
                    "a": {"required": True, "description": "first"},
                    "b": {"required": False, "default": 0},
                },
                "outputExample": {"sum": 3},
            },
            "2": {"name": "add", "version": 2.0, "description": "v2", "inputs": {}},
        },
        "half": {"0.5": {"name": "half", "version": 0.5, "description": "", "inputs": {}}},
    }


def test_registry_documentation_lists_names_and_versions_in_order():
    registry = ActionRegistry(versions("b", 3, 1) + versions("a", 2, 10))

    docs = registry.documentation()

    assert list(docs) == ["a", "b"]
    assert list(docs["a"]) == ["2", "10"]
    assert list(docs["b"]) == ["1", "3"]


def test_action_document_names_its_middleware_only_when_asked_and_it_has_some():
    guarded = Action(name="guarded", run=run, middleware=("auth", "audit"))

    assert guarded.document(middleware=True)["middleware"] == ["auth", "audit"]
    assert "middleware" not in guarded.document()  # the documentation verb's shape, §2.1
    assert "middleware" not in Action(name="open", run=run).document(middleware=True)


def test_registry_documentation_names_middleware_only_when_asked():
    registry = ActionRegistry([Action(name="guarded", run=run, middleware=("auth",))])

    assert registry.documentation() == {
        "guarded": {"1": {"name": "guarded", "version": 1, "description": "", "inputs": {}}}
    }
    assert registry.documentation(middleware=True)["guarded"]["1"]["middleware"] == ["auth"]


def test_registry_documentation_empty():
    assert ActionRegistry().documentation() == {}
