"""The live admin page at ``servers.web.admin.path`` (default ``/admin``), only with a token.

Routes, under that path ``P`` (mounted only when ``servers.web.admin.token`` is set):

- ``GET P``: the page to a browser that presents the token (login cookie or Bearer header), else
  401 with the login form;
- ``POST P/login`` (form field ``token``): sets the login cookie and goes back to ``P``;
  ``POST P/logout`` clears it;
- ``GET P/assets/<name>``: the page's script, styles and uPlot (no data in them);
- ``P/live``: the admin socket. It is an ordinary Squall socket (the same upgrade, pump and
  verbs) with its own registry, admitted only with the token and from the page's own origin;
  :class:`squall.monitor.Monitor` pushes ``{"context": "admin", ...}`` frames to it.
"""

from __future__ import annotations

import html
from typing import Any

import tornado.web

from squall import Squall
from squall.admin import ASSETS, COOKIE, AdminAuth
from squall.origins import origin_allowed

#: The files of ``assets/`` the page may load, with their types (nothing else is served).
_ASSET_TYPES = {
    "admin.js": "text/javascript; charset=utf-8",
    "admin.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
}

#: No framing, no sniffing, no referrer to other sites, and only this server's scripts and sockets
#: ("same-origin", not "no-referrer": with that, browsers send the login form with "Origin: null").
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
}


def same_origin(request: Any) -> bool:
    """A request without ``Origin`` (not from a page), or from a page of this very server
    (the rule of a socket's default ``origins``: :func:`squall.origins.origin_allowed`)."""
    origin = request.headers.get("Origin")
    return origin is None or origin_allowed(origin, request.headers.get("Host"), None)


class AdminSocketAuthorizer:
    """The admin socket's ``authorize``: the token, from this server's own page only.

    The origin check matters because the login is a cookie: another site's page must not open
    the socket with it (SameSite=Strict already stops browsers that honour it).
    """

    def __init__(self, auth: AdminAuth) -> None:
        self.auth = auth

    def __call__(self, request: Any) -> bool:
        cookie = request.cookies.get(COOKIE)
        value = cookie.value if cookie else None
        return self.auth.allows(value, request.headers.get("Authorization")) and same_origin(
            request
        )


class _AdminHandler(tornado.web.RequestHandler):
    def initialize(self, app: Squall, auth: AdminAuth, path: str) -> None:
        self.app = app
        self.auth = auth
        self.admin_path = path

    def set_default_headers(self) -> None:
        for name, value in _PAGE_HEADERS.items():
            self.set_header(name, value)

    def allowed(self) -> bool:
        return self.auth.allows(self.get_cookie(COOKIE), self.request.headers.get("Authorization"))

    def render_asset(self, asset: str, **values: str) -> None:
        """An HTML file of ``assets/`` with ``{{name}}`` placeholders filled (escaped)."""
        text = (ASSETS / asset).read_text(encoding="utf-8")
        for key, value in {"path": self.admin_path, **values}.items():
            text = text.replace("{{" + key + "}}", html.escape(value))
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(text)

    def login_form(self, status: int, problem: str = "") -> None:
        self.set_status(status)
        self.render_asset("login.html", problem=problem, name=self.app.name)


class AdminPage(_AdminHandler):
    """``GET P``: the page, or the login form (401)."""

    def get(self) -> None:
        if not self.allowed():
            self.login_form(401)
            return
        self.render_asset("index.html", name=self.app.name)


class AdminLogin(_AdminHandler):
    """``POST P/login``: a right token sets the cookie; a wrong one shows the form again."""

    def post(self) -> None:
        if not same_origin(self.request):
            self.login_form(403, "This form must be sent from this server's own page.")
            return
        if not self.auth.token_matches(self.get_body_argument("token", None)):
            self.login_form(401, "That is not the admin token.")
            return
        self.set_cookie(
            COOKIE,
            self.auth.issue(),
            path=self.admin_path,
            httponly=True,
            samesite="Strict",
            secure=self.request.protocol == "https",
            max_age=self.auth.lifetime,
        )
        self.redirect(self.admin_path, status=303)


class AdminLogout(_AdminHandler):
    """``POST P/logout``: forget the login cookie."""

    def post(self) -> None:
        self.clear_cookie(COOKIE, path=self.admin_path)
        self.redirect(self.admin_path, status=303)


class AdminAsset(_AdminHandler):
    """``GET P/assets/<name>``: one of the page's files (a fixed list)."""

    def get(self, name: str) -> None:
        content_type = _ASSET_TYPES.get(name)
        if content_type is None:
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-cache")
        self.finish((ASSETS / name).read_bytes())


def admin_routes(app: Squall, path: str, token: str) -> list[Any]:
    """The page's HTTP routes (the socket's route is added by ``server.py`` with its registry)."""
    options = {"app": app, "auth": AdminAuth(token), "path": path}
    return [
        (path, AdminPage, options),
        (f"{path}/login", AdminLogin, options),
        (f"{path}/logout", AdminLogout, options),
        (f"{path}/assets/([A-Za-z0-9_.-]+)", AdminAsset, options),
    ]
