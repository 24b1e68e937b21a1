"""Malformed input over HTTP: bad bodies, absurd headers and cookies, broken
requests, unknown or hostile action names, slowloris. Each gets a 4xx (JSON with an ``error``
key on the action path, PROTOCOL.md §3) or a closed connection, never a hang, and the server
keeps serving others."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import urllib.parse

import pytest
from testkit import open_stream, parse_response

from .support import assert_still_serving, dropped_when_idle, http, raw_http
from .test_ws_malformed import HOSTILE_ACTION_NAMES, nested

IDLE = 1.0  # servers.web.idleConnectionTimeout of the main server, in seconds
JSON = {"Content-Type": "application/json"}
UNKNOWN_ACTION = "unknown action or invalid apiVersion"


def refused_or_closed(raw: bytes) -> bool:
    """A 4xx response, or the connection closed with nothing sent."""
    response = parse_response(raw)
    return raw == b"" or (response is not None and 400 <= response.status < 500)


# --- JSON bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        "{",
        '{"a": 1,}',
        "\x00",
        "NaN",
        "'x'",
        pytest.param('{"x": ' + nested(100_000) + "}", id="arrays-nested-100000-levels"),
        pytest.param(
            '{"x": ' + '{"a":' * 100_000 + "1" + "}" * 100_001, id="objects-nested-100000-levels"
        ),
        pytest.param('{"n": ' + "9" * 10_000 + "}", id="integer-of-10000-digits"),
        pytest.param(b'{"word": "\xff\xfe"}', id="not-utf8"),
    ],
)
async def test_invalid_json_body_is_400_with_the_reason(main, body):
    response = await http(main, "POST", "/api/status", body, JSON)
    assert response.status == 400
    assert response.json()["error"].startswith("invalid JSON body: "), response.body
    await assert_still_serving(main)


@pytest.mark.parametrize("body", ["[1, 2]", "[]", '"status"', "42", "null", "true"])
async def test_json_body_that_is_not_an_object_is_400(main, body):
    response = await http(main, "POST", "/api/status", body, JSON)
    assert (response.status, response.json()) == (
        400,
        {"error": "a JSON body must be an object of params"},
    )
    await assert_still_serving(main)


@pytest.mark.server_errors("maximum recursion depth", "Recursion limit reached")
async def test_json_body_nested_just_under_the_parser_limit_gets_a_response(main):
    """Parsed (the parser allows 1024 levels) and echoed in requesterInformation.receivedParams:
    the client must get a response (the action's, or an error), never a hung connection."""
    body = '{"x": ' + nested(1000) + "}"
    response = await http(main, "POST", "/api/status", body, JSON, timeout=2)  # ms, normally
    assert response.status in (200, 400, 422, 500), response
    assert response.json()
    await assert_still_serving(main)


async def test_query_integer_of_10000_digits_fails_validation(main):
    response = await http(main, "GET", "/api/sleepTest?sleepDuration=" + "9" * 10_000)
    assert (response.status, response.json()["error"]) == (
        422,
        'Input for parameter "sleepDuration" failed validation!',
    )
    await assert_still_serving(main)


async def test_form_body_that_is_not_utf8_is_read_with_replacement(main):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = await http(main, "POST", "/api/echo", b"word=%ff%fe", form)
    assert (response.status, response.json()["word"]) == (200, "\ufffd\ufffd")
    await assert_still_serving(main)


async def test_huge_string_in_a_json_body_round_trips(main):
    text = "s" * (4 * 1024 * 1024)
    response = await http(main, "POST", "/api/echo", '{"text": "' + text + '"}', JSON, timeout=15)
    assert (response.status, response.json()["text"]) == (200, text)
    await assert_still_serving(main)


async def test_body_over_maxBodySize_is_refused(main):
    head = b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n"
    assert refused_or_closed(await raw_http(main, head))
    await assert_still_serving(main)


@pytest.mark.parametrize(
    "params",
    [
        {"action": ["status"]},
        {"action": {"name": "status"}},
        {"action": 42},
        {"action": "status", "apiVersion": {"v": 1}},
        {"action": "status", "apiVersion": "one"},
    ],
)
async def test_action_named_with_the_wrong_type_in_a_json_body_is_404(main, params):
    response = await http(main, "POST", "/api", json.dumps(params), JSON)
    assert (response.status, response.json()["error"]) == (404, UNKNOWN_ACTION)
    await assert_still_serving(main)


# --- hostile action names -----------------------------------------------------------------------


def on_the_wire(name: str) -> str:
    """``name`` as a request path may carry it: bytes a request line cannot hold are escaped."""
    return urllib.parse.quote(name, safe="/.%:_-\\")


@pytest.mark.parametrize("name", HOSTILE_ACTION_NAMES)
async def test_hostile_action_name_in_the_path_is_404(main, name):
    response = await http(main, "GET", "/api/" + on_the_wire(name))
    assert response.status == 404, response
    assert response.json()["error"] == UNKNOWN_ACTION
    await assert_still_serving(main)


@pytest.mark.parametrize("name", HOSTILE_ACTION_NAMES)
async def test_hostile_action_name_in_the_query_is_404(main, name):
    response = await http(main, "GET", "/api?action=" + urllib.parse.quote(name, safe=""))
    assert response.status == 404, response
    assert response.json()["error"] == UNKNOWN_ACTION
    await assert_still_serving(main)


@pytest.mark.parametrize(
    "path", ["/api/../api/status", "/api/status/../echo", "/api/.%2e/status", "/api//status"]
)
async def test_dot_segments_in_the_action_path_are_not_resolved(main, path):
    response = await http(main, "GET", path)
    assert (response.status, response.json()["error"]) == (404, UNKNOWN_ACTION)
    await assert_still_serving(main)


# --- headers, cookies and broken requests -----------------------------------------------------


HEAD_TOO_LARGE = {
    "error": "the request head is larger than servers.web.maxHeaderSize (65536 bytes)"
}


@pytest.mark.parametrize(
    "field",
    [b"X-Big: " + b"a" * 100_000, b"Cookie: sessionID=" + b"c" * 100_000, b"X-Many: x\r\n" * 9000],
    ids=["100 kB header", "100 kB cookie", "9000 headers"],
)
@pytest.mark.parametrize("path", [b"/api/status", b"/public/index.html"])
async def test_request_head_over_maxHeaderSize_is_answered_431(main, path, field):
    """Answered before the connection closes, never a silent close (PROTOCOL.md §3)."""
    request = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + field + b"\r\n\r\n"
    response = parse_response(await raw_http(main, request))
    assert response is not None, "the connection closed without an answer"
    assert (response.status, response.json()) == (431, HEAD_TOO_LARGE)
    assert response.headers.get("Connection") == "close"
    await assert_still_serving(main)


async def test_request_head_growing_past_maxHeaderSize_byte_by_chunk_is_431(main):
    """A head sent in small writes is bounded as it grows, not once it is complete."""
    reader, writer = await open_stream(main)
    try:
        writer.write(b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        with contextlib.suppress(ConnectionError):
            for _ in range(200):  # 200 writes of 1 kB: past 64 kB, and the header never ends
                writer.write(b"s" * 1024)
                await writer.drain()
        received = await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.transport.abort()
    response = parse_response(received)
    assert response is not None and response.status == 431, received[:200]
    await assert_still_serving(main)


@pytest.mark.parametrize(
    "cookie", ["c" * 60_000, "c" * 129, "a b", "caf\u00e9", "x\\y", "a,b", "a=b"]
)
@pytest.mark.parametrize("path", ["/api/status", "/public/index.html"])
async def test_cookie_that_is_not_a_fingerprint_is_replaced_by_a_new_one(main, path, cookie):
    """Only 1 to 128 characters of [A-Za-z0-9_-] are a fingerprint (PROTOCOL.md §4): any other
    cookie is ignored as if absent, and never echoed into a header."""
    response = await http(main, "GET", path, headers={"Cookie": f"sessionID={cookie}"})
    assert response.status == 200
    [set_cookie] = response.cookies()
    fingerprint = set_cookie.split(";")[0].removeprefix("sessionID=")
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,128}", fingerprint), set_cookie
    assert set_cookie == f"sessionID={fingerprint}; Path=/; HttpOnly; SameSite=Lax"
    if path.startswith("/api"):
        assert response.json()["requesterInformation"]["fingerprint"] == fingerprint
    await assert_still_serving(main)


async def test_cookie_of_128_allowed_characters_is_the_fingerprint(main):
    value = "A-z_0" + "9" * 123
    response = await http(main, "GET", "/api/status", headers={"Cookie": f"sessionID={value}"})
    assert response.status == 200 and response.cookies() == []
    assert response.json()["requesterInformation"]["fingerprint"] == value
    await assert_still_serving(main)


async def test_six_thousand_cookies_are_read(main):
    cookies = "; ".join(f"c{n}=v" for n in range(6000)) + "; sessionID=last"
    response = await http(main, "GET", "/api/status", headers={"Cookie": cookies})
    assert response.status == 200
    assert response.json()["requesterInformation"]["fingerprint"] == "last"
    await assert_still_serving(main)


async def test_three_thousand_headers_are_read(main):
    headers = {f"X-H{n}": "v" for n in range(3000)}
    assert (await http(main, "GET", "/api/status", headers=headers)).status == 200
    await assert_still_serving(main)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"\r\n\r\n\r\n",
        b"GET /api/status HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /api/status HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /api/status HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /api/status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /api/status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ffffffffffffffff\r\n",
        b"POST /api/status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
        b"GET /api/status HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        b"GET /api/status HTTP/1.1\r\nHost: x\r\n Folded: continuation\r\n\r\n",
    ],
    ids=[
        "garbage line",
        "blank lines",
        "HTTP/9.9",
        "negative length",
        "length not a number",
        "length and chunked",
        "chunk size 2^64",
        "unknown transfer coding",
        "NUL in a header",
        "header without colon",
        "folded first header",
    ],
)
async def test_broken_request_is_400_or_closed(main, request_bytes):
    assert refused_or_closed(await raw_http(main, request_bytes))
    await assert_still_serving(main)


@pytest.mark.parametrize(
    "target", [b"../api/status", b"*", b"http://127.0.0.1/../../etc/passwd", b"/\xff\xfe"]
)
async def test_odd_request_targets_get_an_error_status(main, target):
    raw = await raw_http(main, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert refused_or_closed(raw), raw[:200]
    assert b"root:" not in raw
    await assert_still_serving(main)


# --- slow clients -------------------------------------------------------------------------------


async def _drip(server, request: bytes, interval: float) -> float:
    """Send ``request`` one byte every ``interval`` s (a slowloris client: slowness is the
    behaviour under test); how long until the server closed the connection."""
    reader, writer = await open_stream(server)
    started = time.monotonic()
    try:
        for index in range(len(request)):
            writer.write(request[index : index + 1])
            try:
                await asyncio.wait_for(reader.read(1024), interval)
            except TimeoutError:
                continue  # still open: the next byte, as slowly
            return time.monotonic() - started  # EOF or a response: the server ended it
        raise AssertionError("the whole slow request went through")
    except ConnectionError:
        return time.monotonic() - started
    finally:
        writer.transport.abort()


async def test_slowloris_headers_are_dropped_after_idleConnectionTimeout(main):
    request = b"GET /api/status HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"s" * 200 + b"\r\n\r\n"
    drips = [asyncio.create_task(_drip(main, request, 0.1)) for _ in range(30)]
    # while thirty slow clients hold connections, everyone else is served
    for _ in range(5):
        await assert_still_serving(main)
    lasted = await asyncio.wait_for(asyncio.gather(*drips), IDLE + 5)
    assert all(IDLE * 0.8 <= t <= IDLE + 3 for t in lasted), lasted
    await assert_still_serving(main)


async def test_silent_client_after_connecting_is_dropped_after_idleConnectionTimeout(main):
    reader, writer = await open_stream(main)
    try:
        assert await dropped_when_idle(reader, IDLE) == b""
    finally:
        writer.transport.abort()
    await assert_still_serving(main)


async def test_silent_body_after_headers_is_dropped_after_idleConnectionTimeout(main):
    """Headers complete, Content-Length promises a body that never comes (the slow-body
    variant of slowloris): the connection is idle and must be dropped like any idle one."""
    reader, writer = await open_stream(main)
    writer.write(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    try:
        data = await dropped_when_idle(reader, IDLE)
        assert refused_or_closed(data) or data.startswith(b"HTTP/1.1 408"), data
    finally:
        writer.transport.abort()
    await assert_still_serving(main)
