"""The demo site as a user sees it: index.html, and chat.html with two people chatting, across a
server crash and restart. Screenshots of chat.html land in tests/artifacts/."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .support import ARTIFACTS, WELCOME, Server


def open_chat(page: Page, server: Server) -> Page:
    """Open chat.html and wait until it has joined defaultRoom."""
    page.goto(f"{server.url}/public/chat.html")
    expect(page.locator("#state")).to_have_attribute("data-state", "connected")
    expect(page.locator(".notice", has_text="You joined defaultRoom")).to_be_visible()
    return page


def send(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def guest_name(page: Page) -> str:
    return page.locator("#me").inner_text()


def test_index_says_what_squall_is_and_links_on(server, new_page):
    page = new_page()
    page.goto(f"{server.url}/")

    expect(page.locator("h1")).to_contain_text("Squall")
    expect(page.locator("a[href='/public/chat.html']")).to_be_visible()
    expect(page.locator("a[href='/public/docs.html']")).to_be_visible()


def test_two_pages_chat(server, new_page):
    alice = open_chat(new_page(1000, 700), server)
    bob = open_chat(new_page(375, 700), server)
    cookies = {c["name"]: c["value"] for c in bob.context.cookies()}
    expect(bob.locator("#fingerprint")).to_have_text(cookies["sessionID"])
    expect(alice.locator(".notice.welcome")).to_have_text(WELCOME)

    send(bob, "Hi Alice! Is this thing on?")
    line = alice.locator(".message", has_text="Is this thing on?")
    expect(line.locator(".author")).to_have_text(guest_name(bob))
    expect(line.locator("time")).to_have_text(re.compile(r"\d\d:\d\d"))
    expect(alice.locator(".notice", has_text=f"{guest_name(bob)} joined")).to_be_visible()
    expect(alice.locator("#members")).to_have_text("2")
    expect(bob.locator(".message.mine .author")).to_have_text("you")

    send(alice, "Loud and clear, Bob. Squall is up and running on one port.")
    expect(bob.locator(".message", has_text="Loud and clear")).to_be_visible()
    send(bob, "Long messages wrap inside their bubble on a phone-sized window, like this one.")
    expect(alice.locator(".message", has_text="phone-sized window")).to_be_visible()
    expect(bob.locator("#members")).to_have_text("2")

    ARTIFACTS.mkdir(exist_ok=True)
    alice.screenshot(path=ARTIFACTS / "chat.png")
    bob.screenshot(path=ARTIFACTS / "chat-phone.png")

    bob_name = guest_name(bob)
    bob.context.close()
    # Nobody announces a leave: the page notices at its next roomView (every 5 s).
    expect(alice.locator(".notice", has_text=f"{bob_name} left")).to_be_visible()
    expect(alice.locator("#members")).to_have_text("1")


def test_chat_survives_a_server_restart(own_server, new_page):
    alice = open_chat(new_page(), own_server)

    own_server.kill()
    expect(alice.locator("#state")).to_have_attribute("data-state", "reconnecting")
    expect(alice.locator("#state")).to_have_text("reconnecting")
    expect(alice.locator(".notice", has_text="Connection lost, reconnecting")).to_be_visible()
    own_server.start()  # the same port
    expect(alice.locator("#state")).to_have_attribute("data-state", "connected")
    expect(alice.locator(".notice", has_text="Reconnected, back in defaultRoom")).to_be_visible()

    bob = open_chat(new_page(), own_server)
    send(bob, "Anyone here after the restart?")
    expect(alice.locator(".message", has_text="after the restart")).to_be_visible()
    send(alice, "Still here.")
    expect(bob.locator(".message", has_text="Still here.")).to_be_visible()
    expect(alice.locator("#members")).to_have_text("2")
