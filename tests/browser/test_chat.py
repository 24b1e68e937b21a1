"""The demo site as a user sees it: index.html, and chat.html with people chatting in a room with
presence and history (PROTOCOL.md §8, §9): display names, member lists that follow joins and
leaves, the recent history when the page opens, a page that loses its link and shows what it
missed once, in order, marked, and a server crash and restart. Screenshots of chat.html land in
tests/artifacts/."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from testkit import Server

from .support import ARTIFACTS, WELCOME, Link, running_server

#: The demo room as config/development.yaml sets it, and reconnects quick enough for a test.
CHAT_OPTIONS = {
    "general": {
        "startingChatRooms": {
            "defaultRoom": {"presence": True, "history": {"size": 100, "ttl": 3600000}}
        },
    },
    "servers": {"websocket": {"client": {"reconnect": {"min": 50, "max": 250}}}},
}

_tags = itertools.count()


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose defaultRoom has presence and history, shared by this module's tests: each
    one tells its own messages apart by a tag of its own."""
    with running_server(tmp_path_factory, "chat", CHAT_OPTIONS) as server:
        yield server


@pytest.fixture
def tag() -> str:
    return f"t{next(_tags)}"


def open_chat(page: Page, server: Server, name: str | None = None) -> Page:
    """Open chat.html, wait until it has joined defaultRoom, and pick `name` if given."""
    page.goto(f"{server.base_url}/public/chat.html")
    expect(page.locator("#state")).to_have_attribute("data-state", "connected")
    expect(page.locator(".notice", has_text="You joined defaultRoom")).to_be_visible()
    if name is not None:
        page.fill("#name", name)
        page.press("#name", "Enter")
        expect(page.locator("#me")).to_have_text(name)
        expect(page.locator(".notice", has_text=f"You are now {name}")).to_be_visible()
    return page


def send(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def guest_name(page: Page) -> str:
    return page.locator("#me").inner_text()


def member_names(page: Page) -> list[str]:
    return page.locator("#member-list .member-name").all_inner_texts()


def said(page: Page, tag: str) -> list[str]:
    """The texts of the messages on the page that carry `tag`, top to bottom."""
    return [text for text in page.locator(".message .text").all_inner_texts() if tag in text]


def test_index_says_what_squall_is_and_links_on(server, new_page):
    page = new_page()
    page.goto(f"{server.base_url}/")

    expect(page.locator("h1")).to_contain_text("Squall")
    expect(page.locator("a[href='/public/chat.html']")).to_be_visible()
    expect(page.locator("a[href='/public/docs.html']")).to_be_visible()


def test_two_pages_chat(chat_server, new_page, tag):
    alice = open_chat(new_page(1000, 700), chat_server, "Alice")
    bob = open_chat(new_page(375, 700), chat_server)
    cookies = {c["name"]: c["value"] for c in bob.context.cookies()}
    expect(bob.locator("#fingerprint")).to_have_text(cookies["sessionID"])
    expect(alice.locator(".notice.welcome")).to_have_text(WELCOME)

    send(bob, f"Hi Alice! Is this thing on? ({tag})")
    line = alice.locator(".message", has_text=f"Is this thing on? ({tag})")
    expect(line.locator(".author")).to_have_text(guest_name(bob))
    expect(line.locator("time")).to_have_text(re.compile(r"\d\d:\d\d"))
    expect(alice.locator(".notice", has_text=f"{guest_name(bob)} joined")).to_be_visible()
    expect(alice.locator("#members")).to_have_text("2")
    expect(bob.locator(".message.mine .author").last).to_have_text("you")
    expect(bob.locator(".message", has_text=f"({tag})").locator(".author")).to_have_text("you")

    send(alice, f"Loud and clear. Squall is up and running on one port. ({tag})")
    reply = bob.locator(".message", has_text=f"running on one port. ({tag})")
    expect(reply.locator(".author")).to_have_text("Alice")
    send(bob, f"Long messages wrap inside their bubble on a phone-sized window, like this. ({tag})")
    expect(alice.locator(".message", has_text=f"like this. ({tag})")).to_be_visible()
    expect(bob.locator("#members")).to_have_text("2")

    ARTIFACTS.mkdir(exist_ok=True)
    alice.screenshot(path=ARTIFACTS / "chat.png")
    bob.screenshot(path=ARTIFACTS / "chat-phone.png")

    bob_name = guest_name(bob)
    bob.context.close()
    # Pushed by the server as Bob's socket closes (a presence leave): no polling.
    expect(alice.locator(".notice", has_text=f"{bob_name} lost their connection")).to_be_visible()
    expect(alice.locator("#members")).to_have_text("1")


def test_member_lists_follow_joins_renames_and_leaves(chat_server, new_page, tag):
    alice = open_chat(new_page(), chat_server, "Alice")
    bob = open_chat(new_page(375, 700), chat_server)
    guest = guest_name(bob)
    expect(alice.locator("#member-list .member")).to_have_count(2)
    assert member_names(alice) == ["Alice", guest]  # the page's own first, then by name
    expect(alice.locator(".member.me .badge")).to_have_text("you")
    send(bob, f"{tag} said as a guest")
    line = alice.locator(".message", has_text=f"{tag} said as a guest")
    expect(line.locator(".author")).to_have_text(guest)

    bob.fill("#name", "Bob")
    bob.press("#name", "Enter")
    expect(alice.locator(".notice", has_text=f"{guest} is now Bob")).to_be_visible()
    expect(line.locator(".author")).to_have_text("Bob")  # what Bob said before, too
    expect(alice.locator("#member-list .member-name")).to_have_text(["Alice", "Bob"])
    expect(bob.locator("#member-list .member-name")).to_have_text(["Bob", "Alice"])

    carol = open_chat(new_page(), chat_server, "Carol")
    for page, names in ((alice, ["Alice", "Bob", "Carol"]), (bob, ["Bob", "Alice", "Carol"])):
        expect(page.locator("#member-list .member-name")).to_have_text(names)
        expect(page.locator("#members")).to_have_text("3")

    bob.reload()  # the name is in the session: the new page joins as Bob
    expect(bob.locator(".notice", has_text="You joined defaultRoom")).to_be_visible()
    expect(bob.locator("#me")).to_have_text("Bob")
    expect(bob.locator("#name")).to_have_value("Bob")
    expect(alice.locator(".notice", has_text="Bob joined")).to_be_visible()

    carol.context.close()
    for page, names in ((alice, ["Alice", "Bob"]), (bob, ["Bob", "Alice"])):
        expect(page.locator(".notice", has_text="Carol lost their connection")).to_be_visible()
        expect(page.locator("#member-list .member-name")).to_have_text(names)
        expect(page.locator("#members")).to_have_text("2")


def test_the_page_opens_with_the_rooms_recent_history(chat_server, new_page, tag):
    alice = open_chat(new_page(), chat_server, "Alice")
    earlier = [f"{tag} first", f"{tag} second", f"{tag} third"]
    for text in earlier:
        send(alice, text)
    expect(alice.locator(".message", has_text=earlier[-1])).to_be_visible()

    dave = open_chat(new_page(), chat_server)

    expect(dave.locator(".message", has_text=earlier[-1])).to_be_visible()
    assert said(dave, tag) == earlier
    authors = dave.locator(".message", has_text=tag).locator(".author").all_inner_texts()
    assert authors == ["Alice"] * 3
    # above the page's own join, under a divider
    items = dave.locator("#messages > li")
    texts = items.all_inner_texts()
    joined = texts.index("You joined defaultRoom")
    assert [i for i, text in enumerate(texts) if tag in text] == [
        joined - 3,
        joined - 2,
        joined - 1,
    ]
    assert "Earlier in defaultRoom" in texts[: joined - 3]


def test_a_page_that_lost_its_link_shows_what_it_missed_once_in_order(chat_server, new_page, tag):
    alice_page = new_page(1000, 760)
    link = Link(alice_page)
    alice = open_chat(alice_page, chat_server, "Alice")
    bob = open_chat(new_page(375, 760), chat_server, "Bob")
    send(bob, f"{tag} before the drop")
    expect(alice.locator(".message", has_text=f"{tag} before the drop")).to_be_visible()

    link.cut()
    expect(alice.locator("#state")).to_have_attribute("data-state", "reconnecting")
    expect(alice.locator(".notice", has_text="Connection lost, reconnecting")).to_be_visible()
    expect(bob.locator(".notice", has_text="Alice lost their connection")).to_be_visible()
    expect(bob.locator("#member-list .member-name")).to_have_text(["Bob"])
    missed = [f"{tag} missed one", f"{tag} missed two", f"{tag} missed three"]
    for text in missed:
        send(bob, text)
    expect(bob.locator(".message", has_text=missed[-1])).to_be_visible()

    link.restore()
    expect(alice.locator("#state")).to_have_attribute("data-state", "connected")
    expect(alice.locator(".notice", has_text="3 missed messages recovered")).to_be_visible()
    send(bob, f"{tag} after the return")
    expect(alice.locator(".message", has_text=f"{tag} after the return")).to_be_visible()

    every = [f"{tag} before the drop", *missed, f"{tag} after the return"]
    assert said(alice, tag) == every  # each once, in order
    recovered = alice.locator(".message.recovered")
    expect(recovered.locator(".text")).to_have_text(missed)
    expect(recovered.locator(".tag")).to_have_text(["recovered"] * 3)
    # in place: after the loss, before the notice that the page is back
    texts = alice.locator("#messages > li").all_inner_texts()
    lost = max(i for i, text in enumerate(texts) if "Connection lost" in text)
    back = next(i for i, text in enumerate(texts) if "3 missed messages recovered" in text)
    assert [i for i, text in enumerate(texts) if text.endswith(tuple(missed))] == [
        lost + 1,
        lost + 2,
        lost + 3,
    ]
    assert back == lost + 4
    expect(bob.locator(".notice", has_text="Alice joined")).to_be_visible()
    expect(bob.locator("#member-list .member-name")).to_have_text(["Bob", "Alice"])
    expect(alice.locator("#member-list .member-name")).to_have_text(["Alice", "Bob"])

    ARTIFACTS.mkdir(exist_ok=True)
    alice.screenshot(path=ARTIFACTS / "chat-recovered.png")
    bob.screenshot(path=ARTIFACTS / "chat-recovered-phone.png")


def test_chat_survives_a_server_restart(tmp_path_factory, new_page):
    with running_server(tmp_path_factory, "restarted", CHAT_OPTIONS) as own:
        alice = open_chat(new_page(), own, "Alice")
        send(alice, "said before the crash")
        expect(alice.locator(".message", has_text="said before the crash")).to_be_visible()

        own.kill9()
        expect(alice.locator("#state")).to_have_attribute("data-state", "reconnecting")
        expect(alice.locator("#state")).to_have_text("reconnecting")
        expect(alice.locator(".notice", has_text="Connection lost, reconnecting")).to_be_visible()
        own.start()  # the same port, a history begun again (a new epoch)
        expect(alice.locator("#state")).to_have_attribute("data-state", "connected")
        back = alice.locator(".notice", has_text="Reconnected, back in defaultRoom")
        expect(back).to_contain_text("some messages may be missing")

        bob = open_chat(new_page(), own, "Bob")
        send(bob, "Anyone here after the restart?")
        expect(alice.locator(".message", has_text="after the restart")).to_be_visible()
        send(alice, "Still here.")
        expect(bob.locator(".message", has_text="Still here.")).to_be_visible()
        expect(alice.locator("#members")).to_have_text("2")
        expect(alice.locator("#member-list .member-name")).to_have_text(["Alice", "Bob"])
