"""handlers/routing.py: which delegate a request path reaches, and that the request's calls
(head, body, end, a client that leaves) reach that delegate unchanged."""

from __future__ import annotations

from typing import Any

import pytest
import tornado.httputil

from handlers.routing import ServerRouter


class Target(tornado.httputil.HTTPServerConnectionDelegate):
    """Records each request it is given and every call made on it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, Any]] = []

    def start_request(self, server_conn: object, request_conn: Any) -> Any:
        target = self

        class Message(tornado.httputil.HTTPMessageDelegate):
            def headers_received(self, start_line: Any, headers: Any) -> str:
                target.calls.append(("head", start_line.path))
                return "head taken"

            def data_received(self, chunk: bytes) -> None:
                target.calls.append(("body", chunk))

            def finish(self) -> None:
                target.calls.append(("finish", None))

            def on_connection_close(self) -> None:
                target.calls.append(("gone", None))

        return Message()


@pytest.fixture
def router() -> ServerRouter:
    sockets = {"/primus": Target("socket"), "/admin/live": Target("admin socket")}
    return ServerRouter("/api", Target("api"), sockets, Target("application"))


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api", "api"),
        ("/api?action=status", "api"),
        ("/api/randomNumber", "api"),
        ("/api/randomNumber?x=1", "api"),
        ("/apikey", "application"),
        ("/primus", "socket"),
        ("/primus?sessionID=abc", "socket"),
        ("/primus/more", "application"),
        ("/admin/live", "admin socket"),
        ("/public/chat.html", "application"),
        ("/", "application"),
    ],
)
def test_each_path_reaches_its_delegate(router, path, name):
    message = router.start_request(None, None)
    start = tornado.httputil.RequestStartLine("GET", path, "HTTP/1.1")
    assert message.headers_received(start, tornado.httputil.HTTPHeaders()) == "head taken"
    reached = [t for t in (router.api, router.application, *router.sockets.values()) if t.calls]
    assert [t.name for t in reached] == [name]


def test_body_end_and_a_vanished_client_reach_the_same_delegate(router):
    message = router.start_request(None, None)
    start = tornado.httputil.RequestStartLine("POST", "/api/echo", "HTTP/1.1")
    message.headers_received(start, tornado.httputil.HTTPHeaders())
    message.data_received(b"word=hi")
    message.finish()
    message.on_connection_close()
    assert router.api.calls == [
        ("head", "/api/echo"),
        ("body", b"word=hi"),
        ("finish", None),
        ("gone", None),
    ]


def test_without_http_actions_the_action_path_is_the_applications():
    """``servers.web.enabled`` false: no ApiServer, the path is only a path."""
    router = ServerRouter("/api", None, {}, Target("application"))
    message = router.start_request(None, None)
    start = tornado.httputil.RequestStartLine("GET", "/api/status", "HTTP/1.1")
    message.headers_received(start, tornado.httputil.HTTPHeaders())
    assert router.application.calls == [("head", "/api/status")]
