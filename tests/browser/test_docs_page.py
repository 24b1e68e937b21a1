"""The API reference page (public/docs.html) as a person reads it: every action of
showDocumentation with its versions, inputs, output example and middleware, and a "try it" form
that calls the action over HTTP. Screenshots (desktop and phone) land in tests/artifacts/."""

from __future__ import annotations

import json
import shutil
import urllib.request

from playwright.sync_api import Page, expect
from testkit import ROOT, Server

from .support import ARTIFACTS, HERE, running_server


def documentation(server: Server) -> dict:
    with urllib.request.urlopen(f"{server.base_url}/api/showDocumentation", timeout=5) as reply:
        return json.loads(reply.read())["documentation"]


def open_docs(page: Page, server: Server, anchor: str = "") -> Page:
    page.goto(f"{server.base_url}/public/docs.html{anchor}")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    return page


def card(page: Page, name: str):
    return page.locator(f"section.endpoint[data-action='{name}']")


def test_index_links_to_the_docs_page(server, new_page):
    page = new_page()
    page.goto(f"{server.base_url}/")
    page.click("a[href='/public/docs.html']")
    expect(page.locator("h1")).to_have_text("API reference")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true")


def test_every_action_and_version_is_listed(server, new_page):
    page = open_docs(new_page(), server)
    docs = documentation(server)

    names = page.locator("section.endpoint").evaluate_all(
        "cards => cards.map(c => c.dataset.action)"
    )
    assert names == list(docs)
    expect(page.locator("#toc li")).to_have_count(len(docs))
    expect(page.locator("#status")).to_have_text(f"{len(docs)} actions")
    greet = card(page, "greet")
    expect(greet.locator(".version")).to_have_text(["v1", "v2"])
    expect(page.locator("#toc li[data-action='greet'] .count")).to_have_text("2 versions")
    expect(page.locator("#server")).to_have_text("squall · API 1.0.0")


def test_a_card_shows_description_inputs_example_and_middleware(server, new_page):
    page = open_docs(new_page(), server)
    greet = card(page, "greet")

    # The latest version is shown first.
    expect(greet.locator(".version[aria-selected='true']")).to_have_text("v2")
    expect(greet.locator(".description")).to_have_text(
        "Greets someone, politely and in any language"
    )
    expect(greet.locator(".path")).to_have_text("/api/greet")
    rows = greet.locator(".inputs-table tbody tr")
    expect(rows).to_have_count(3)
    name, language, times = (
        greet.locator(f"tr[data-input='{n}']") for n in ("name", "language", "times")
    )
    expect(name.locator(".badge")).to_have_text("required")
    expect(name.locator("td").nth(3)).to_have_text("who to greet")
    expect(language.locator(".badge")).to_have_text("optional")
    expect(language.locator(".default")).to_have_text('"en"')
    expect(times.locator(".default")).to_have_text("1")
    expect(greet.locator(".middleware .chip")).to_have_text(["stamp"])
    example = json.loads(greet.locator(".example").inner_text())
    assert example == {"greeting": "Hello, Ada", "stamped": True}

    # Version 1 has its own description and inputs, and no middleware.
    greet.locator(".version", has_text="v1").click()
    expect(greet.locator(".description")).to_have_text("Greets someone (the first version)")
    expect(greet.locator(".inputs-table tbody tr")).to_have_count(1)
    expect(greet.locator(".middleware-block")).to_be_hidden()

    # An action without inputs or example says so instead of showing empty boxes.
    destroy = card(page, "destroyTest")
    expect(destroy.locator(".inputs .none")).to_have_text("No inputs.")
    expect(destroy.locator(".example-block")).to_be_hidden()


def test_try_it_calls_the_action_over_http_and_shows_the_reply(server, new_page):
    page = open_docs(new_page(), server)
    greet = card(page, "greet")

    greet.locator("input[name='name']").fill("Ada")
    greet.locator("input[name='times']").fill("2")
    with page.expect_response("**/api/greet") as response:
        greet.locator(".run").click()
    assert response.value.request.post_data_json == {"apiVersion": "2", "name": "Ada", "times": "2"}
    expect(greet.locator(".http-status")).to_have_text("200 OK")
    reply = json.loads(greet.locator(".reply").inner_text())
    assert reply["greeting"] == "Hello, Ada, Hello, Ada"
    assert reply["stamped"] is True

    greet.locator("input[name='language']").fill("de")
    greet.locator(".run").click()
    expect(greet.locator(".http-status")).to_have_text("422 Unprocessable Entity")
    expect(greet.locator(".http-status")).to_have_class("http-status bad")
    reply = json.loads(greet.locator(".reply").inner_text())
    assert reply["error"] == "language must be en or fr"

    # The selected version is the one called.
    greet.locator(".version", has_text="v1").click()
    greet.locator("input[name='name']").fill("Bob")
    greet.locator(".run").click()
    expect(greet.locator(".reply")).to_contain_text('"greeting": "Hello, Bob"')
    assert "stamped" not in json.loads(greet.locator(".reply").inner_text())


def test_try_it_sends_json_objects_and_shows_missing_inputs(server, new_page):
    page = open_docs(new_page(), server)
    create = card(page, "createChatRoom")
    create.locator(".run").click()
    expect(create.locator(".http-status")).to_have_text("422 Unprocessable Entity")
    expect(create.locator(".reply")).to_contain_text("name is a required parameter for this action")

    push = card(page, "pushTest")
    push.locator("input[name='frames']").fill('[{"context": "alert", "n": 1}]')
    push.locator(".run").click()
    expect(push.locator(".http-status")).to_have_text("200 OK")
    assert json.loads(push.locator(".reply").inner_text())["pushed"] == 1


def test_filter_and_deep_links(server, new_page):
    page = open_docs(new_page(), server, "#sleepTest")
    expect(card(page, "sleepTest")).to_be_in_viewport()

    page.fill("#filter", "random")
    expect(page.locator("section.endpoint:visible")).to_have_count(1)
    expect(card(page, "randomNumber")).to_be_visible()
    page.fill("#filter", "no action is called like this")
    expect(page.locator("#no-match")).to_be_visible()
    page.fill("#filter", "")
    expect(page.locator("section.endpoint:visible")).to_have_count(len(documentation(server)))


def test_desktop_and_phone_layouts(server, new_page):
    ARTIFACTS.mkdir(exist_ok=True)
    desktop = open_docs(new_page(1280, 900), server)
    desktop.screenshot(path=ARTIFACTS / "docs.png")
    desktop.goto(f"{server.base_url}/public/docs.html#greet")
    greet = card(desktop, "greet")
    greet.locator("input[name='name']").fill("Ada")
    greet.locator(".run").click()
    expect(greet.locator(".http-status")).to_have_text("200 OK")
    # Side by side: the list of actions left of the cards, the form right of the reference.
    nav, main = (desktop.locator(s).bounding_box() for s in (".docs-nav", ".docs-main"))
    assert nav["x"] + nav["width"] <= main["x"]
    reference, form = (greet.locator(s).bounding_box() for s in (".reference", ".try"))
    assert reference["x"] + reference["width"] <= form["x"]
    desktop.screenshot(path=ARTIFACTS / "docs-try-it.png")

    phone = open_docs(new_page(375, 740), server, "#greet")
    greet = card(phone, "greet")
    # One column and nothing wider than the screen.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    reference, form = (greet.locator(s).bounding_box() for s in (".reference", ".try"))
    assert form["y"] >= reference["y"] + reference["height"]
    phone.screenshot(path=ARTIFACTS / "docs-phone.png", full_page=False)


def test_without_show_documentation_the_page_asks_the_socket(tmp_path_factory, new_page):
    actions = tmp_path_factory.mktemp("actions")
    for source in (ROOT / "actions" / "status.py", HERE / "actions" / "docs_probes.py"):
        shutil.copy(source, actions / source.name)
    options = {"general": {"paths": {"actions": [str(actions)]}}}
    with running_server(tmp_path_factory, "no-docs-action", options) as server:
        page = open_docs(new_page(), server)

        expect(page.locator("section.endpoint")).to_have_count(2)
        expect(card(page, "greet").locator(".version")).to_have_text(["v1", "v2"])
        expect(page.locator("#status")).to_have_text("2 actions")
