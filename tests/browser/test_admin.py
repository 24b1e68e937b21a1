"""The admin page as an operator sees it: refused without the token, then live
numbers that move while a client acts. Screenshots land in tests/artifacts/."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from testkit import Server
from websockets.sync.client import connect

from .support import ARTIFACTS, running_server

TOKEN = "browser-admin-token"


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    options = {"servers": {"web": {"admin": {"token": TOKEN}, "metrics": {"enabled": True}}}}
    with running_server(tmp_path_factory, "admin", options) as server:
        yield server


def log_in(page: Page, server: Server) -> Page:
    page.goto(f"{server.base_url}/admin")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    expect(page.locator("#link")).to_have_attribute("data-state", "live")
    return page


def test_the_page_refuses_a_wrong_token(admin_server, new_page):
    page = new_page()
    response = page.goto(f"{admin_server.base_url}/admin")
    assert response is not None and response.status == 401
    expect(page.locator("h1")).to_have_text("Sign in to squall")
    page.fill("#token", "not the token")
    page.click("button[type=submit]")
    expect(page.locator(".problem")).to_have_text("That is not the admin token.")
    expect(page.locator("#link")).to_have_count(0)
    assert [c for c in page.context.cookies() if c["name"] == "squallAdmin"] == []


@pytest.mark.server_errors("this action fails on purpose")
def test_numbers_move_as_a_client_acts(admin_server, new_page, page_errors):
    page = log_in(new_page(1280, 900), admin_server)
    expect(page.locator("#server-name")).to_have_text("squall")
    cookie = next(c for c in page.context.cookies() if c["name"] == "squallAdmin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/admin"

    with connect(f"ws://127.0.0.1:{admin_server.port}/primus") as client:
        client.recv(timeout=10)  # welcome
        for message_id in range(1, 41):
            client.send(
                json.dumps(
                    {
                        "event": "action",
                        "messageId": message_id,
                        "params": {"action": "randomNumber"},
                    }
                )
            )
        client.send(json.dumps({"event": "roomAdd", "messageId": 99, "room": "otherRoom"}))
        client.send(
            json.dumps({"event": "action", "messageId": 100, "params": {"action": "failTest"}})
        )
        replies = 0
        while replies < 42:
            if json.loads(client.recv(timeout=10)).get("context") == "response":
                replies += 1

        row = page.locator('#actions tr[data-action="randomNumber"]')
        expect(row).to_be_visible()
        expect(row.locator(".rate")).not_to_have_text("0")
        expect(page.locator("#tile-sockets .value")).to_have_text("2")  # the page's and ours
        expect(page.locator('#rooms li[data-room="otherRoom"] .count')).to_have_text("1 member")
        error = page.locator("#errors li", has_text="action failTest failed")
        expect(error).to_be_visible()
        expect(error.locator(".detail")).to_contain_text(
            "RuntimeError: this action fails on purpose"
        )
        expect(page.locator("#chart-actions canvas")).to_be_visible()
        page.screenshot(path=ARTIFACTS / "admin.png", full_page=True)

    expect(page.locator("#tile-sockets .value")).to_have_text("1")  # ours closed
    phone = log_in(new_page(390, 844), admin_server)
    expect(phone.locator('#actions tr[data-action="randomNumber"]')).to_be_visible()
    phone.screenshot(path=ARTIFACTS / "admin-phone.png", full_page=True)


def test_signing_out_ends_the_session(admin_server, new_page):
    page = log_in(new_page(), admin_server)
    page.click("text=Sign out")
    expect(page.locator("h1")).to_have_text("Sign in to squall")
    assert [c for c in page.context.cookies() if c["name"] == "squallAdmin"] == []
