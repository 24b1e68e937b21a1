"""Actions over real HTTP: routes, methods, params, reply envelope, error statuses, CORS and
the fingerprint cookie (PROTOCOL.md §1, §3, §4)."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from testkit import NON_EMPTY_STR, POSITIVE_INT, Match, http_request, now_ms

from .support import API_VERSION, SERVER_NAME

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
NON_NEGATIVE_INT = Match("<int >= 0>", lambda v: isinstance(v, int) and v >= 0)


def cookie_value(header: str) -> str:
    """``sessionID=abc; Path=/; ...`` -> ``abc``."""
    name, _, rest = header.partition("=")
    assert name == "sessionID"
    return rest.split(";", 1)[0]


def test_http_remote_ip_ignores_forwarded_for_without_trustProxy(server):
    headers = {"X-Forwarded-For": "203.0.113.9"}
    response = http_request(server, "GET", "/api/status", headers=headers)
    assert response.json()["requesterInformation"]["remoteIP"] == "127.0.0.1"


def test_http_get_status_envelope(server):
    response = http_request(server, "GET", "/api/status", headers={"Cookie": "sessionID=fp-1"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert "error" not in body
    assert body["serverInformation"] == {
        "serverName": SERVER_NAME,
        "apiVersion": API_VERSION,
        "requestDuration": NON_NEGATIVE_INT,
        "currentTime": now_ms(),
    }
    assert body["requesterInformation"] == {
        "id": NON_EMPTY_STR,
        "fingerprint": "fp-1",
        "remoteIP": "127.0.0.1",
        "receivedParams": {"action": "status"},
    }
    assert body["connections"]["total"] == POSITIVE_INT


def test_http_action_in_query_string(server):
    response = http_request(server, "GET", "/api?action=echo&x=1&y=two")
    assert response.status == 200
    body = response.json()
    assert (body["action"], body["x"], body["y"]) == ("echo", "1", "two")


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_http_every_method_runs_the_action(server, method):
    response = http_request(server, method, "/api/echo?word=hi")
    assert (response.status, response.json()["word"]) == (200, "hi")


def test_http_json_body_keeps_types(server):
    payload = {"n": 3, "list": [1, "a"], "obj": {"k": None}, "flag": True}
    response = http_request(server, "POST", "/api/echo", json.dumps(payload), JSON)
    assert response.status == 200
    body = response.json()
    assert {key: body[key] for key in payload} == payload
    assert body["requesterInformation"]["receivedParams"] == {"action": "echo", **payload}


def test_http_action_named_in_json_body(server):
    response = http_request(server, "POST", "/api", json.dumps({"action": "echo", "z": 1}), JSON)
    assert (response.status, response.json()["action"], response.json()["z"]) == (200, "echo", 1)


def test_http_form_body(server):
    body = urllib.parse.urlencode({"a": "1", "b": "x y"})
    response = http_request(server, "POST", "/api/echo", body, FORM)
    assert response.status == 200
    assert (response.json()["a"], response.json()["b"]) == ("1", "x y")


def test_http_push_to_a_web_connection_is_dropped_quietly(server):
    body = json.dumps({"frames": [{"context": "alert", "text": "nobody listens"}]})
    response = http_request(server, "POST", "/api/pushTest", body, JSON)
    assert (response.status, response.json()["pushed"]) == (200, 1)


async def test_http_created_room_can_be_joined_over_the_socket(server, client):
    response = http_request(server, "POST", "/api/createChatRoom?name=from-http-room")
    assert response.status == 200
    assert (await client.request("roomAdd", room="from-http-room"))["status"] == "OK"


def test_http_malformed_json_body_is_400(server):
    response = http_request(server, "POST", "/api/echo", '{"a": ', JSON)
    assert response.status == 400
    assert isinstance(response.json()["error"], str)


UNKNOWN = "unknown action or invalid apiVersion"


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/api/noSuchAction", 404, UNKNOWN),
        ("/api", 404, UNKNOWN),
        ("/api/", 404, UNKNOWN),
        ("/api?action=", 404, UNKNOWN),
        ("/api/versionTest?apiVersion=9", 404, UNKNOWN),
        ("/api/inputsTest", 422, "needed is a required parameter for this action"),
        ("/api/inputsTest?needed=1&even=3", 422, 'Input for parameter "even" failed validation!'),
        ("/api/inputsTest?needed=1&word=LOUD", 422, "word must be lower case"),
        pytest.param(
            "/api/failTest",
            500,
            "this action fails on purpose",
            marks=pytest.mark.server_errors("this action fails on purpose"),
        ),
        # PROTOCOL §3: a PermissionError counts as Forbidden
        ("/api/forbiddenTest", 403, "members only"),
    ],
)
def test_http_refused_action_answers_its_status_and_error_in_json(server, path, status, error):
    response = http_request(server, "GET", path)
    assert response.headers["Content-Type"].startswith("application/json")
    assert (response.status, response.json()["error"]) == (status, error)


def test_http_apiVersion_selects_a_version(server):
    assert http_request(server, "GET", "/api/versionTest?apiVersion=1").json()["version"] == 1
    assert http_request(server, "GET", "/api/versionTest").json()["version"] == 2


def test_http_cors_and_configured_headers(server):
    response = http_request(server, "GET", "/api/status")
    assert response.headers["X-Powered-By"] == "squall"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_http_options_preflight_answers_with_cors_headers(server):
    response = http_request(
        server, "OPTIONS", "/api/echo", headers={"Origin": "http://page.example"}
    )
    assert 200 <= response.status < 300
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]


def test_http_without_cookie_sets_fingerprint_cookie(server):
    response = http_request(server, "GET", "/api/status")
    [header] = response.cookies()
    assert "Path=/" in [part.strip() for part in header.split(";")]
    value = cookie_value(header)
    assert value
    assert response.json()["requesterInformation"]["fingerprint"] == value


def test_http_with_cookie_sets_no_cookie(server):
    response = http_request(server, "GET", "/api/status", headers={"Cookie": "sessionID=kept"})
    assert response.cookies() == []
    assert response.json()["requesterInformation"]["fingerprint"] == "kept"


def test_http_fingerprint_cookie_flags_follow_config(server):
    [header] = http_request(server, "GET", "/api/status").cookies()
    flags = {part.strip() for part in header.split(";")[1:]}
    assert flags == {"Path=/", "HttpOnly", "SameSite=Lax"}


async def test_http_cookie_becomes_the_socket_fingerprint(server, connect):
    [header] = http_request(server, "GET", "/").cookies()
    page_fingerprint = cookie_value(header)
    client = await connect(server, headers={"Cookie": f"sessionID={page_fingerprint}"})
    details = await client.details()
    assert (details["fingerprint"], details["id"] != page_fingerprint) == (page_fingerprint, True)


def test_http_new_fingerprints_differ(server):
    first = cookie_value(http_request(server, "GET", "/api/status").cookies()[0])
    second = cookie_value(http_request(server, "GET", "/api/status").cookies()[0])
    assert first != second


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/noSuchAction"),
        ("GET", "/api/failTest"),
        ("OPTIONS", "/api/echo"),  # a CORS preflight
        ("GET", "/public/index.html"),
        ("HEAD", "/public/index.html"),
        ("GET", "/public/nope"),
        ("GET", "/"),
        ("GET", "/primus"),  # a plain GET of the socket's endpoint: 400
        ("POST", "/primus"),  # 405
        ("GET", "/health"),
        ("GET", "/ready"),
    ],
)
@pytest.mark.server_errors("this action fails on purpose")
def test_http_every_response_without_cookie_sets_it(server, method, path):
    """PROTOCOL.md §4: every HTTP response to a request without the cookie sets it."""
    [header] = http_request(server, method, path).cookies()
    assert header.startswith("sessionID=")


def test_http_error_400_without_cookie_sets_it(server):
    response = http_request(server, "POST", "/api/echo", "{", JSON)
    assert (response.status, len(response.cookies())) == (400, 1)
