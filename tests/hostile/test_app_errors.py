"""App mistakes and errors, over a real server:
exceptions outside ``Exception`` become error replies and the server lives; errors raised on
purpose reach the client with their status; any other exception is logged with its traceback
and reaches the client only when ``general.exposeErrors`` is true, else as
``internal error (ref <id>)`` with the same id in the log (PROTOCOL.md §2.3, §3)."""

from __future__ import annotations

import re

import pytest
from testkit import Peer

from .support import assert_still_serving, http, running_server

REF = re.compile(r"internal error \(ref ([0-9a-f]{12})\)")


def action_error(message: str, message_id: int = 1, count: int = 1) -> dict:
    return {"error": message, "context": "response", "messageId": message_id, "messageCount": count}


@pytest.fixture(scope="module")
def hidden(tmp_path_factory):
    """A server that keeps unexpected errors to its log, as production does."""
    with running_server(tmp_path_factory, "hidden", {"general": {"exposeErrors": False}}) as server:
        yield server


# --- exceptions outside Exception -----------------------------------------------------------------


@pytest.mark.server_errors("action hostileExit failed", "action hostileAwaitsCancelled failed")
@pytest.mark.parametrize(
    ("name", "text", "logged"),
    [
        ("hostileExit", "2", "SystemExit: 2"),  # sys.exit(2) in a plain def, as argparse does
        ("hostileAwaitsCancelled", "CancelledError", "CancelledError"),
    ],
)
async def test_exception_outside_exception_is_an_error_reply_and_the_server_lives(
    main, name, text, logged
):
    log_start = main.log_size()
    peer = await Peer.open(main)

    assert await peer.action(name) == action_error(text)
    response = await http(main, "GET", f"/api/{name}")

    assert (response.status, response.json()["error"]) == (500, text)
    await main.wait_log(rf"ERROR squall\.actions: action {name} failed", log_start)
    assert logged in main.log_text(log_start)
    assert (await peer.request("detailsView"))["data"]["pendingActions"] == 0
    await assert_still_serving(main)


# --- errors raised on purpose (PROTOCOL.md §3) -----------------------------------------------

KINDS = [
    ("BadRequest", 400),
    ("Unauthorized", 401),
    ("Forbidden", 403),
    ("NotFound", 404),
    ("Conflict", 409),
    ("InvalidParams", 422),
    ("TooManyRequests", 429),
]


@pytest.mark.parametrize("exposed", [True, False])
@pytest.mark.parametrize(("kind", "status"), KINDS)
async def test_error_kinds_reach_the_client_with_their_status(main, hidden, exposed, kind, status):
    server = main if exposed else hidden
    log_start = server.log_size()
    peer = await Peer.open(server)

    reply = await peer.action("hostileKind", kind=kind)
    response = await http(server, "GET", f"/api/hostileKind?kind={kind}")

    assert reply == action_error(f"{kind} on purpose")
    assert (response.status, response.json()["error"]) == (status, f"{kind} on purpose")
    assert not server.logged(r" (ERROR|WARNING) ", log_start)


@pytest.mark.parametrize("server_name", ["main", "hidden"])
async def test_action_error_status_and_permission_error_over_http(request, server_name):
    server = request.getfixturevalue(server_name)

    paid = await http(server, "GET", "/api/hostileKind?kind=ActionError&status=409")
    default = await http(server, "GET", "/api/hostileKind?kind=ActionError")
    permission = await http(server, "GET", "/api/hostileKind?kind=PermissionError")

    assert (paid.status, paid.json()["error"]) == (409, "paid already")
    assert (default.status, default.json()["error"]) == (400, "paid already")
    assert (permission.status, permission.json()["error"]) == (403, "members only")


# --- any other exception: logged, shown only when exposed -----------------------------------------


@pytest.mark.server_errors("action hostileLeak failed")
async def test_unexpected_error_text_is_shown_when_errors_are_exposed(main):
    peer = await Peer.open(main)
    reply = await peer.action("hostileLeak")
    assert reply == action_error("cannot reach postgres://admin:hunter2@10.0.0.5/app")


@pytest.mark.server_errors("action hostileLeak failed")
async def test_unexpected_error_is_a_reference_to_its_log_line_when_hidden(hidden):
    log_start = hidden.log_size()
    peer = await Peer.open(hidden)

    reply = await peer.action("hostileLeak")
    response = await http(hidden, "GET", "/api/hostileLeak")

    socket_ref = REF.fullmatch(reply["error"]).group(1)
    http_ref = REF.fullmatch(response.json()["error"]).group(1)
    assert response.status == 500 and socket_ref != http_ref
    assert b"hunter2" not in response.body and "hunter2" not in str(reply)
    for ref in (socket_ref, http_ref):
        line = await hidden.wait_log(rf"ERROR squall\.actions: .*\(ref {ref}\)", log_start)
        assert "action hostileLeak failed" in line
    log = hidden.log_text(log_start)
    assert "Traceback (most recent call last)" in log and "hunter2" in log
    await assert_still_serving(hidden)


@pytest.mark.server_errors("roomAdd failed")
async def test_chat_hook_bug_is_hidden_and_a_refusal_is_shown(hidden):
    log_start = hidden.log_size()
    peer = await Peer.open(hidden)
    for room in ("hostile-leaky-join", "hostile-forbidden-join"):
        assert (await http(hidden, "POST", f"/api/createChatRoom?name={room}")).status == 200

    leaky = await peer.request("roomAdd", room="hostile-leaky-join")
    forbidden = await peer.request("roomAdd", room="hostile-forbidden-join")

    ref = REF.fullmatch(leaky["error"]).group(1)
    await hidden.wait_log(rf"ERROR squall\.protocol: roomAdd failed .*\(ref {ref}\)", log_start)
    assert "s3cret" in hidden.log_text(log_start) and "s3cret" not in str(leaky)
    assert forbidden["error"] == "team red only"
    assert (await peer.request("detailsView"))["data"]["rooms"] == []


@pytest.mark.server_errors("connection middleware failed")
async def test_create_hook_bug_closes_4001_with_a_reference_when_hidden(hidden):
    log_start = hidden.log_size()
    peer = await Peer.open(hidden, query="?sessionID=leaky-create-1", welcome=False)

    code, reason = await peer.wait_closed()

    assert code == 4001
    ref = REF.fullmatch(reason).group(1)
    await hidden.wait_log(rf"ERROR squall: connection middleware failed .*\(ref {ref}\)", log_start)
    await assert_still_serving(hidden)


# --- a bug in a validator is no bad input ---------------------------------------------------------


@pytest.mark.server_errors("action hostileBuggyValidator failed")
async def test_validator_bug_is_a_500_never_a_422(main, hidden):
    exposed = await http(main, "GET", "/api/hostileBuggyValidator?n=1")
    kept = await http(hidden, "GET", "/api/hostileBuggyValidator?n=1")

    assert (exposed.status, exposed.json()["error"]) == (500, "'no such key'")
    assert kept.status == 500 and REF.fullmatch(kept.json()["error"])
