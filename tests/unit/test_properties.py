"""Property tests: whatever comes in, a well-formed answer or a clear error.

- the frame dispatcher: any text or bytes frame gives a reply dict or an error frame;
- the input pipeline: any params give a reply or a :class:`~squall.ClientError`;
- the config loader: any layered YAML gives a :class:`~squall.Config` or a one-line
  :class:`~squall.ConfigError`.

Examples are kept modest so the unit tier stays fast.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from squall import ClientError, Config, ConfigError, Input, codec, load_config

from .conftest import DEFAULT_YAML, declared, feed, strict_json, transport_of

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,  # no example database: every run stands alone
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

VERBS = [
    "action",
    "say",
    "roomAdd",
    "roomLeave",
    "roomView",
    "detailsView",
    "file",
    "documentation",
    "ping",
    "quit",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63, max_value=10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)


def nested(leaves: st.SearchStrategy) -> st.SearchStrategy:
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )


json_values = nested(scalars)
#: What server code may hand over, beyond what JSON can carry: infinities.
python_values = nested(scalars | st.floats(allow_nan=False))


# -- the actions the properties run -------------------------------------------------------------


async def reply_params(data):
    return {"params": dict(data.params)}


def positive(value):
    return value > 0 or "must be positive"


def first_letter(value):
    if not value:
        raise ValueError("empty")
    return value[0]


PIPELINE_ACTIONS = [
    declared(reply_params, "echo"),
    declared(
        reply_params,
        "typed",
        inputs={
            "n": Input(required=True, formatter=int, validator=positive),
            "x": Input(formatter=float),
            "s": Input(default="  padded ", formatter=str.strip, validator=lambda v: len(v) < 50),
            "first": Input(formatter=first_letter),
            "flag": Input(
                default=lambda params: "n" in params, validator=lambda v: v in (True, False)
            ),
        },
    ),
    declared(
        reply_params,
        "typed",
        version=2,
        inputs={"list": Input(required=True, validator=lambda v: isinstance(v, list) or "a list")},
    ),
    declared(reply_params, "strict", inputs={"v": Input(validator=lambda v: v == "ok")}),
]
ACTION_NAMES = ["echo", "typed", "strict", "nope", "", "__class__", "../echo"]
api_versions = st.none() | st.sampled_from(["1", "2", "2.0", "", "x", "nan", "1e999"]) | scalars


def params_strategy(values: st.SearchStrategy = json_values) -> st.SearchStrategy:
    fields = st.dictionaries(
        st.sampled_from(["n", "x", "s", "first", "flag", "list", "v", "other"])
        | st.text(max_size=6),
        values,
        max_size=6,
    )
    return st.builds(
        lambda name, version, extra: {
            **extra,
            "action": name,
            **({} if version is None else {"apiVersion": version}),
        },
        st.sampled_from(ACTION_NAMES) | json_values,
        api_versions,
        fields,
    )


@pytest.fixture
async def core(make_core, public):
    (public / "index.html").write_text("<p>hi</p>")
    return await make_core(actions=PIPELINE_ACTIONS, rooms=["defaultRoom", "other"])


# -- the frame dispatcher ---------------------------------------------------------------------


def frame_strategy():
    structured = st.fixed_dictionaries(
        {"event": st.sampled_from(VERBS) | json_values},
        optional={
            "messageId": json_values,
            "params": params_strategy() | json_values,
            "room": st.sampled_from(["defaultRoom", "other", "nowhere", ""]) | json_values,
            "message": json_values,
            "file": st.sampled_from(["index.html", "../secret", "", "/"])
            | st.text(max_size=30)
            | json_values,
        },
    )
    as_text = st.builds(lambda f, a: json.dumps(f, ensure_ascii=a), structured, st.booleans())
    return as_text | st.text(max_size=200) | st.binary(max_size=200) | json_values.map(json.dumps)


def assert_well_formed(reply: Any, data: str | bytes, connection) -> None:
    """A reply dict (§2.2, §2.3), an error frame (§2.5), or None for quit only."""
    if reply is None:
        assert transport_of(connection).closes == [(4000, "connection destroyed")]
        return
    assert isinstance(reply, dict)
    strict_json(codec.dumps(reply))  # the transport can always encode it, as valid JSON
    if reply.get("context") == "error":
        assert set(reply) == {"context", "error"}
        assert isinstance(reply["error"], str) and reply["error"]
        return
    assert reply["context"] == "response"
    assert reply["messageCount"] == connection.message_count == 1
    sent = codec.loads(data)  # read as the server read it (orjson: big integers as floats)
    message_id = sent.get("messageId")
    if isinstance(message_id, (bool, list, dict)):  # §2.1: refused, never echoed
        assert reply["error"] == "messageId must be a string or a number"
        assert "messageId" not in reply
    elif message_id is not None:
        assert reply["messageId"] == sent["messageId"]
    else:
        assert isinstance(reply["messageId"], str) and len(reply["messageId"]) == 36
    if "status" in reply:
        assert reply["status"] == "OK" or reply["status"] == reply["error"]
    if reply.get("error") is not None:  # a found file says "error": null (§2.4)
        assert isinstance(reply["error"], str) and reply["error"]


@PROPERTY
@given(data=frame_strategy())
@example(data=b"")
@example(data="")
@example(data='{"event": "ping", "messageId": 18446744073709551617}')
@example(data='{"event": "action", "params": {"action": "echo", "apiVersion": 1' + "0" * 400 + "}}")
@example(data='{"event": "action", "params": {"action": "typed", "n": 1e400}}')
@example(data="[" * 100_000 + "]" * 100_000)
@example(data='{"event": "file", "file": "\\u0000"}')
async def test_receive_any_frame_gives_a_well_formed_reply(core, data):
    connection = core.connect()

    reply = await feed(core.protocol, connection, data)

    assert_well_formed(reply, data, connection)


# -- the input pipeline -------------------------------------------------------------------------


@PROPERTY
@given(params=params_strategy(python_values))
@example(params={"action": "typed", "n": "12", "x": "1e999"})
@example(params={"action": "typed", "n": 1e300, "x": 10**400})
@example(params={"action": "typed", "apiVersion": 10**400})
@example(params={"action": "typed", "n": "9" * 5000})
async def test_process_any_params_gives_a_reply_or_a_client_error(core, params):
    connection = core.connect()

    result = await core.processor.process(connection, params)

    assert isinstance(result.response, dict)
    strict_json(codec.dumps(result.response))
    if result.error is None:
        assert "error" not in result.response
        assert result.response["params"]["action"] == params["action"]
    else:
        assert isinstance(result.error, ClientError), repr(result.error)
        assert isinstance(result.response["error"], str) and result.response["error"]
    assert connection.pending_actions == 0
    assert connection.total_actions == 1


# -- the config loader --------------------------------------------------------------------------

DEFAULTS = yaml.safe_load(DEFAULT_YAML.read_text())


def _paths(tree: dict, prefix: tuple = ()) -> list[tuple[str, ...]]:
    found = []
    for key, value in tree.items():
        found.append((*prefix, key))
        if isinstance(value, dict):
            found.extend(_paths(value, (*prefix, key)))
    return found


KNOWN_PATHS = _paths(DEFAULTS)


def _nest(items: list[tuple[tuple[str, ...], Any]]) -> dict:
    tree: dict = {}
    for path, value in items:
        node = tree
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    return tree


yaml_values = json_values.filter(lambda v: not isinstance(v, int) or abs(v) < 2**63)
layer_items = st.lists(
    st.tuples(
        st.sampled_from(KNOWN_PATHS)
        | st.lists(
            st.sampled_from(["general", "servers", "web", "x", "port", "app"]),
            min_size=1,
            max_size=4,
        ).map(tuple),
        yaml_values,
    ),
    max_size=6,
)
yamlish = st.text(alphabet="abcdefgs:-[]{}#&*!|>'\"%@`,?\n\t 0123456789.~", max_size=80)
layer_text = layer_items.map(lambda items: yaml.safe_dump(_nest(items))) | yamlish


@settings(PROPERTY, max_examples=40)  # each example parses default.yaml (pure-Python YAML)
@given(env_text=layer_text, extra_text=st.none() | layer_text, port=st.none() | st.text(max_size=6))
@example(env_text="general: " + "[" * 600 + "]" * 600, extra_text=None, port=None)
@example(env_text="a: !!python/object:os.system {}", extra_text=None, port=None)
@example(env_text="&a [*a]", extra_text=None, port=None)
@example(env_text="app: &a {x: *a}", extra_text="app: {y: 1}", port="\uff18\uff10")
async def test_load_config_any_layers_give_config_or_config_error(
    tmp_path, env_text, extra_text, port
):
    root = tmp_path / "app"
    (root / "config").mkdir(parents=True, exist_ok=True)
    if not (root / "config" / "default.yaml").exists():
        shutil.copy(DEFAULT_YAML, root / "config" / "default.yaml")
    (root / "config" / "test.yaml").write_text(env_text)
    extra = []
    if extra_text is not None:
        (root / "extra.yaml").write_text(extra_text)
        extra.append(root / "extra.yaml")
    environ = {} if port is None else {"PORT": port}

    try:
        config = load_config(root, "test", extra, environ=environ)
    except ConfigError as error:
        assert "\n" not in str(error)
        assert str(error).startswith(("config/test.yaml: ", "extra.yaml: ", "environment: "))
    else:
        assert isinstance(config, Config)
        assert set(config.data) == set(DEFAULTS)
