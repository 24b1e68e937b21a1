"""Seeing inside a running server: ``/metrics`` read with prometheus-client's own
parser while real clients act, the admin page and its socket behind the token, access lines
and JSON logs."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families
from testkit import (
    ROOT,
    TIMEOUT,
    Client,
    Response,
    Server,
    action_frame,
    deep_merge,
    eventually,
    http_request,
    is_reply,
)
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from .support import running_server, stalled_member

METRICS_TOKEN = "metrics-token-for-tests"
ADMIN_TOKEN = "admin-token-for-tests"
OBSERVED = {
    "general": {"startingChatRooms": {"watched": {"presence": True, "history": {"size": 10}}}},
    "servers": {
        "web": {
            "metrics": {"enabled": True, "token": METRICS_TOKEN},
            "admin": {"token": ADMIN_TOKEN},
        }
    },
}
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    """A server with metrics behind a token and the admin page on."""
    with running_server(tmp_path_factory, "observed", OBSERVED) as server:
        yield server


def scrape(server: Server) -> dict[tuple[str, tuple], float]:
    """``{(sample, sorted labels): value}`` of one scrape, parsed by prometheus-client."""
    reply = http_request(server, "GET", "/metrics", headers=SCRAPE)
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def actions_ok(found: dict, action: str) -> float:
    return found.get(("squall_actions_total", (("action", action), ("outcome", "ok"))), 0)


def durations_count(found: dict, action: str) -> float:
    return found.get(("squall_action_duration_seconds_count", (("action", action),)), 0)


# -- /metrics ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {METRICS_TOKEN}"}],
)
def test_a_scrape_without_the_token_is_refused(observed, headers):
    reply = http_request(observed, "GET", "/metrics", headers=headers)
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == 'Bearer realm="squall metrics"'
    assert b"squall_" not in reply.body


def test_metrics_are_off_by_default(server):
    assert http_request(server, "GET", "/metrics").status == 404


async def test_n_actions_grow_the_counter_by_exactly_n(observed, connect):
    before = scrape(observed)
    client = await connect(observed)
    for index in range(25):
        await client.send(action_frame(index + 1, "randomNumber"))
    for index in range(25):
        assert "randomNumber" in await client.reply(index + 1)
    for _ in range(5):
        assert http_request(observed, "GET", "/api/randomNumber").status == 200
    after = scrape(observed)

    assert actions_ok(after, "randomNumber") - actions_ok(before, "randomNumber") == 30
    assert durations_count(after, "randomNumber") - durations_count(before, "randomNumber") == 30
    # the five API calls, and the first scrape (counted once its answer was sent)
    ok = ("squall_http_requests_total", (("code", "200"),))
    assert after[ok] - before[ok] == 6
    assert after[("squall_connections", (("type", "webSocket"),))] >= 1
    assert after[("squall_processes", ())] == 1


async def test_failures_count_by_kind_and_unknown_names_share_one_label(observed, connect):
    client = await connect(observed)
    before = scrape(observed)
    assert (await client.action("no-such-action"))["error"]
    assert (await client.action("another-unknown"))["error"]
    reply = http_request(observed, "GET", "/api/sleepTest?sleepDuration=not-a-number")
    assert reply.status == 422
    after = scrape(observed)

    unknown = ("squall_actions_total", (("action", "(unknown)"), ("outcome", "unknown_action")))
    assert after[unknown] - before.get(unknown, 0) == 2
    invalid = ("squall_actions_total", (("action", "sleepTest"), ("outcome", "invalid_param")))
    assert after[invalid] - before.get(invalid, 0) == 1
    assert not [labels for _, labels in after if ("action", "no-such-action") in labels]


async def test_rooms_says_and_deliveries(observed, connect):
    first, second = await connect(observed), await connect(observed)
    before = scrape(observed)
    for member in (first, second):
        assert (await member.request("roomAdd", room="defaultRoom"))["status"] == "OK"
    assert (await first.request("say", room="defaultRoom", message="hi"))["status"] == "OK"
    for member in (first, second):
        await member.next(lambda f: f.get("context") == "user" and f["message"] == "hi")
    after = scrape(observed)

    assert after[("squall_says_total", ())] - before[("squall_says_total", ())] == 1
    assert after[("squall_deliveries_total", ())] - before[("squall_deliveries_total", ())] == 2
    assert after[("squall_room_members", (("room", "defaultRoom"),))] >= 2
    assert after[("squall_rooms", ())] >= 1


async def test_presence_frames_history_stores_and_recoveries(observed, connect):
    first, second = await connect(observed), await connect(observed)
    before = scrape(observed)
    for member in (first, second):
        assert (await member.request("roomAdd", room="watched"))["status"] == "OK"
    await second.next(lambda f: f.get("context") == "presence")  # its own join
    assert (await first.request("say", room="watched", message="hi"))["status"] == "OK"
    said = await second.next(lambda f: f.get("context") == "user")
    since = {"offset": said["offset"], "epoch": said["epoch"]}
    late = await connect(observed)
    assert (await late.request("roomAdd", room="watched", since=since))["data"]["recovered"]
    await late.next(lambda f: f.get("context") == "presence")  # its own join: the last one
    after = scrape(observed)

    def grew(sample: str, labels: tuple = ()) -> float:
        return after[(sample, labels)] - before[(sample, labels)]

    assert grew("squall_presence_frames_total") == 1 + 2 + 3  # the joins of 1, 2, 3 members
    assert grew("squall_history_stores_total") == 1
    assert grew("squall_recoveries_total", (("outcome", "recovered"),)) == 1
    assert grew("squall_recoveries_total", (("outcome", "missed"),)) == 0


async def test_sockets_count_by_close_code_and_frames_both_ways(observed, connect):
    before = scrape(observed)
    polite, quitter = await connect(observed), await connect(observed)
    for _ in range(3):
        assert "pong" in (await polite.request("ping"))["data"]
    await quitter.send({"event": "quit"})
    assert (await quitter.wait_closed())[0] == 4000
    await polite.close()

    def counted(found) -> bool:
        return delta(found, before, "squall_socket_disconnects_total", code="1000") == 1

    after = await eventually(lambda: scrape(observed), counted)
    assert delta(after, before, "squall_socket_connects_total") == 2
    assert delta(after, before, "squall_socket_disconnects_total", code="4000") == 1
    assert delta(after, before, "squall_socket_frames_received_total") == 4  # 3 pings, a quit
    assert delta(after, before, "squall_socket_frames_sent_total") == 5  # 2 welcomes, 3 pongs


def delta(after: dict, before: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0)


async def test_a_slow_reader_dropped_with_1008_counts_once(tmp_path_factory, connect):
    options = deep_merge(
        OBSERVED, {"servers": {"websocket": {"server": {"maxBufferedBytes": 65536}}}}
    )
    with running_server(tmp_path_factory, "slow-reader", options) as server:
        before = scrape(server)
        speaker = await connect(server)
        await speaker.request("roomAdd", room="defaultRoom")
        stalled = await stalled_member(server, speaker, members=2)
        chunk, said = "x" * 32_000, 0
        while delta(scrape(server), before, "squall_slow_readers_dropped_total") == 0:
            assert said < 1000, "the stalled reader was never dropped"
            for n in range(said, said + 20):
                await speaker.send(
                    {"event": "say", "room": "defaultRoom", "message": {"n": n, "pad": chunk}}
                )
            said += 20
            await speaker.request("ping")  # the says before it are handled
        stalled.resume_reading()
        assert (await stalled.wait_closed())[0] == 1008
        after = await eventually(
            lambda: scrape(server),
            lambda found: delta(found, before, "squall_socket_disconnects_total", code="1008") == 1,
        )
        assert delta(after, before, "squall_slow_readers_dropped_total") == 1


# -- the admin page ------------------------------------------------------------------------------


def test_the_admin_page_asks_for_the_token(observed):
    page = http_request(observed, "GET", "/admin")
    assert page.status == 401
    assert b'<form method="post" action="/admin/login">' in page.body
    assert page.headers["X-Frame-Options"] == "DENY"

    wrong = log_in(observed, "nope")
    assert wrong.status == 401
    assert b"That is not the admin token." in wrong.body
    assert admin_cookies(wrong) == []


def admin_cookies(response: Response) -> list[str]:
    """The login cookies a response sets (a fingerprint cookie, PROTOCOL.md §4, may be there)."""
    return [cookie for cookie in response.cookies() if cookie.startswith("squallAdmin=")]


def log_in(server: Server, token: str, origin: str | None = None) -> Response:
    """POST the login form, as a page of ``origin`` (the server's own by default) would."""
    return http_request(
        server,
        "POST",
        "/admin/login",
        body=f"token={token}",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": origin or server.base_url,
        },
    )


def test_logging_in_sets_a_strict_http_only_cookie(observed):
    login = log_in(observed, ADMIN_TOKEN)
    assert login.status == 303
    assert login.headers["Location"] == "/admin"
    (cookie,) = admin_cookies(login)
    assert re.match(r"squallAdmin=\d+\.[0-9a-f]{64};", cookie), cookie
    assert ADMIN_TOKEN not in cookie
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/admin"):
        assert flag in cookie

    value = cookie.split(";")[0]
    page = http_request(observed, "GET", "/admin", headers={"Cookie": value})
    assert page.status == 200
    assert b'<script src="/admin/assets/admin.js"></script>' in page.body
    bearer = http_request(
        observed, "GET", "/admin", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert bearer.status == 200


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://[::1"])
def test_a_login_from_another_site_is_refused(observed, origin):
    """Only the page's own host, as a socket's default origins (an Origin that is not even a
    URL was a 500 and a traceback)."""
    reply = log_in(observed, ADMIN_TOKEN, origin=origin)
    assert reply.status == 403
    assert admin_cookies(reply) == []


def test_the_admin_page_is_off_without_a_token(server):
    assert http_request(server, "GET", "/admin").status == 404
    assert http_request(server, "GET", "/admin/assets/admin.js").status == 404


def test_assets_are_a_fixed_list(observed):
    script = http_request(observed, "GET", "/admin/assets/uPlot.iife.min.js")
    assert script.status == 200
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert http_request(observed, "GET", "/admin/assets/__init__.py").status == 404
    assert http_request(observed, "GET", "/admin/assets/..%2f__init__.py").status == 404


async def admin_socket(server: Server, **headers: str) -> Client:
    ws = await ws_connect(
        f"ws://127.0.0.1:{server.port}/admin/live",
        additional_headers=headers,
        open_timeout=TIMEOUT,
        ping_interval=None,
    )
    return Client(ws, server)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Cookie": "squallAdmin=1999999999.0000"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}", "Origin": "https://evil.example"},
    ],
)
async def test_the_admin_socket_refuses_without_the_token(observed, headers):
    with pytest.raises(InvalidStatus) as refused:
        await admin_socket(observed, **headers)
    # another site's page is refused by the default origin check first (403, PROTOCOL §6)
    assert refused.value.response.status_code == (403 if "Origin" in headers else 401)


async def test_the_admin_socket_pushes_samples_that_move(observed, connect):
    admin = await admin_socket(
        observed, Authorization=f"Bearer {ADMIN_TOKEN}", Origin=observed.base_url
    )
    try:
        await admin.next(lambda f: f.get("context") == "api")  # an ordinary Squall socket
        hello = await admin.next(lambda f: f.get("event") == "hello", timeout=TIMEOUT)
        assert hello["server"]["name"] == "squall-integration"
        assert hello["server"]["interval"] == 1.0

        client = await connect(observed)
        for index in range(10):
            await client.send(action_frame(index + 1, "randomNumber"))
        for index in range(10):
            await client.reply(index + 1)

        def moved(frame) -> bool:
            if frame.get("event") != "sample":
                return False
            row = frame["sample"]["actions"].get("randomNumber")
            return row is not None and row["rate"] > 0 and row["p99"] is not None

        pushed = await admin.next(moved, timeout=TIMEOUT)
        point = pushed["sample"]
        assert point["connections"]["webSocket"] >= 2  # the admin socket and the client
        assert point["rooms"] >= 1
        assert point["loopLagMs"] >= 0
        assert pushed["errors"] == []
        details = await admin.request("detailsView")
        assert is_reply(details) and details["data"]["type"] == "webSocket"
    finally:
        await admin.close()


# -- logs ----------------------------------------------------------------------------------------


async def test_info_logs_one_line_per_request_and_socket(tmp_path_factory, connect):
    options = {"general": {"logLevel": "info"}}
    with running_server(tmp_path_factory, "access", options) as server:
        start = server.log_size()
        assert http_request(server, "GET", "/api/randomNumber?secret=1").status == 200
        assert http_request(server, "GET", "/public/hello.txt").status == 200
        assert http_request(server, "GET", "/public/missing.txt").status == 404
        client = await connect(server)
        socket_id = (await client.details())["id"]
        port = client.local_port
        await client.close()

        def access_lines() -> list[str]:
            lines = server.log_text(start).splitlines()
            return [
                line.split("squall.access: ", 1)[1] for line in lines if "squall.access" in line
            ]

        found = await eventually(access_lines, lambda found: any("closed" in ln for ln in found))
    # (the boot's readiness probe may log its GET /api/status line late)
    lines = [line for line in found if not line.startswith("GET /api/status ")]
    ms = r"\d+\.\d ms"
    assert re.fullmatch(rf"GET /api/randomNumber 200 {ms} from 127\.0\.0\.1", lines[0])
    assert re.fullmatch(rf"GET /public/hello\.txt 200 {ms} from 127\.0\.0\.1", lines[1])
    assert re.fullmatch(rf"GET /public/missing\.txt 404 {ms} from 127\.0\.0\.1", lines[2])
    sockets = [line for line in lines if line.startswith("socket ")]
    assert sockets[0] == f"socket {socket_id} open from 127.0.0.1:{port}"
    closed = rf"socket {socket_id} closed 1000 after \d+\.\d s from 127\.0\.0\.1:{port}"
    assert re.fullmatch(closed, sockets[1]), sockets


def test_json_logs_are_one_object_per_line(tmp_path_factory):
    options = {"general": {"logLevel": "info", "logFormat": "json"}}
    with running_server(tmp_path_factory, "json-logs", options) as server:
        assert http_request(server, "GET", "/api/status").status == 200
        entries = eventually_sync(
            lambda: [json.loads(line) for line in server.log_text().splitlines()],
            lambda found: any(e.get("event") == "http" for e in found),
        )
    banner = entries[0]
    assert banner["level"] == "INFO" and banner["logger"] == "squall.server"
    assert "listening on" in banner["message"]
    request = next(e for e in entries if e.get("event") == "http" and e["path"] == "/api/status")
    assert request["method"] == "GET" and request["status"] == 200
    assert isinstance(request["durationMs"], float) and request["remoteIP"] == "127.0.0.1"


def eventually_sync(fetch, accept, timeout: float = TIMEOUT):
    """``eventually`` for the sync tests: a line is written just after its reply is sent."""

    return asyncio.run(eventually(fetch, accept, timeout))


def test_metrics_without_prometheus_client_stop_the_boot(tmp_path):
    config = tmp_path / "metrics.yaml"
    config.write_text(json.dumps(OBSERVED))
    hide = (
        "import runpy, sys; sys.modules['prometheus_client'] = None; "
        "sys.argv = ['server.py', '--env', 'test', '--port', '0', '--config', sys.argv[1]]; "
        "runpy.run_path('server.py', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", hide, str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
    )
    assert done.returncode == 2
    assert (
        "cannot start: servers.web.metrics.enabled is true but prometheus-client is not "
        "installed: pip install 'squall[metrics]'"
    ) in done.stderr
