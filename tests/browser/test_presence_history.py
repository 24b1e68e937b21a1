"""The client's presence and history side (PROTOCOL.md §7, §8, §9) in Chromium against a real
server, once with ``actionheroClient.js`` and once with ``.min.js``: the ``join``, ``leave`` and
``recover`` events and ``roomHistory``, each with the exact frames. A room of its own per test
(``createChatRoom`` with options); a page's link is cut and restored through Playwright (Link)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from playwright.sync_api import Page

from .support import Link, client_page

_rooms = itertools.count()

PRESENCE = {"presence": True}
HISTORY = {"presence": False, "history": {"size": 2, "ttl": 60000}}


@pytest.fixture(params=["actionheroClient.js", "actionheroClient.min.js"])
def script(request: pytest.FixtureRequest) -> str:
    return request.param


def new_room(page: Page, options: dict[str, Any]) -> str:
    name = f"live-{next(_rooms)}"
    reply = page.evaluate(
        """async ([name, options]) => within(
            new ActionheroClient().action("createChatRoom", {name, ...options}), "room")""",
        [name, options],
    )
    assert reply["didCreate"] is True, reply
    return name


def test_join_and_leave_events_are_the_presence_frames(server, new_page, script):
    page = client_page(new_page(), server, script)
    room = new_room(page, PRESENCE)

    result = page.evaluate(
        """async (room) => {
        const watcher = new ActionheroClient();
        const member = new ActionheroClient();
        await within(Promise.all([watcher.connect(), member.connect()]), "connect");
        const seen = [];
        for (const name of ["join", "leave"]) watcher.on(name, (frame) => seen.push([name, frame]));
        const own = next(watcher, "join");
        const added = await within(watcher.roomAdd(room), "roomAdd");
        const r = {added, own: await own, watcher: watcher.id, member: member.id};
        // each step, then the presence frame it makes
        const steps = [
            ["join", () => member.roomAdd(room)],
            ["leave", () => member.roomLeave(room)],
            ["join", () => member.roomAdd(room)],
            ["leave", () => member.disconnect()],
        ];
        for (const [event, step] of steps) {
            const pushed = next(watcher, event);
            await within(Promise.resolve(step()), "a step to " + event);
            await pushed;
        }
        r.seen = seen;
        watcher.disconnect();
        return r;
    }""",
        room,
    )

    watcher, member = result["watcher"], result["member"]
    assert result["added"]["data"] is True
    own = result["own"]
    assert own == {
        "context": "presence",
        "event": "join",
        "room": room,
        "id": watcher,
        "joinedAt": own["joinedAt"],
    }

    def join(frame: dict) -> list:
        assert isinstance(frame["joinedAt"], int)
        return [
            "join",
            {
                "context": "presence",
                "event": "join",
                "room": room,
                "id": member,
                "joinedAt": frame["joinedAt"],
            },
        ]

    def leave(reason: str) -> list:
        return [
            "leave",
            {"context": "presence", "event": "leave", "room": room, "id": member, "reason": reason},
        ]

    seen = result["seen"]
    assert seen[0] == ["join", own]
    assert seen[1:] == [join(seen[1][1]), leave("left"), join(seen[3][1]), leave("disconnected")]


@pytest.mark.parametrize("style", ["callback", "promise"])
def test_room_history_answers_the_last_kept_messages(server, new_page, script, style):
    page = client_page(new_page(), server, script)
    room = new_room(page, HISTORY)

    result = page.evaluate(
        """async ([style, room]) => {
        recordSent();
        const client = new ActionheroClient();
        await within(client.connect(), "connect");
        await within(client.roomAdd(room), "roomAdd");
        const says = [];
        client.on("say", (frame) => says.push(frame));
        for (const text of ["one", "two", "three"]) await within(client.say(room, text), text);
        const r = {says};
        r.all = await invoke(style, client, "roomHistory", room);
        r.last = await invoke(style, client, "roomHistory", room, 1);
        r.sent = sent.filter((frame) => frame.event === "roomHistory");
        client.disconnect();
        return r;
    }""",
        [style, room],
    )

    one, two, three = result["says"]
    epoch = three["epoch"]
    assert [say["offset"] for say in (one, two, three)] == [1, 2, 3]
    assert isinstance(epoch, str) and epoch
    assert three == {
        "context": "user",
        "message": "three",
        "room": room,
        "from": three["from"],
        "sentAt": three["sentAt"],
        "offset": 3,
        "epoch": epoch,
    }
    all_kept, last = result["all"], result["last"]
    assert all_kept["data"] == {"room": room, "epoch": epoch, "offset": 3, "messages": [two, three]}
    assert last["data"] == {"room": room, "epoch": epoch, "offset": 3, "messages": [three]}
    assert (all_kept["status"], last["status"]) == ("OK", "OK")
    first, second = result["sent"]
    assert first == {"event": "roomHistory", "room": room, "messageId": first["messageId"]}
    assert second == {
        "event": "roomHistory",
        "room": room,
        "limit": 1,
        "messageId": second["messageId"],
    }


def test_recover_after_a_lost_link_emits_each_missed_message_once(server, new_page, script):
    listener_page = new_page()
    link = Link(listener_page)
    listener = client_page(listener_page, server, script)
    speaker = client_page(new_page(), server, script)
    room = new_room(speaker, {"history": {"size": 10, "ttl": 60000}})
    listener.evaluate(
        """async (room) => {
        window.client = track(new ActionheroClient({reconnect: {min: 20, max: 100}}));
        recordSent();
        await within(client.connect(), "connect");
        await within(client.roomAdd(room), "roomAdd");
    }""",
        room,
    )
    speaker.evaluate(
        """async (room) => {
        window.client = new ActionheroClient();
        await within(client.connect(), "connect");
        await within(client.roomAdd(room), "roomAdd");
    }""",
        room,
    )

    def say(text: str) -> None:
        reply = speaker.evaluate("(args) => within(client.say(...args), 'say')", [room, text])
        assert reply["status"] == "OK"

    say("before")
    listener.wait_for_function(
        "() => events.some(([n, f]) => n === 'say' && f.message === 'before')"
    )
    link.cut()
    listener.wait_for_function("() => client.state === 'reconnecting'")
    say("missed 1")
    say("missed 2")
    link.restore()
    listener.wait_for_function("() => names().includes('recover')")
    say("after")
    listener.wait_for_function(
        "() => events.some(([n, f]) => n === 'say' && f.message === 'after')"
    )
    result = listener.evaluate("""() => ({
        events: events.filter(([name]) => ["say", "recover", "reconnect"].includes(name)),
        rejoin: sent.filter((frame) => frame.event === "roomAdd").slice(-1)[0],
    })""")

    before, reconnect, missed_1, missed_2, recover, after = result["events"]
    epoch = before[1]["epoch"]
    assert before[1]["offset"] == 1
    assert reconnect == ["reconnect", None]
    assert result["rejoin"] == {
        "event": "roomAdd",
        "room": room,
        "since": {"offset": 1, "epoch": epoch},
        "messageId": result["rejoin"]["messageId"],
    }
    for (name, frame), text, offset in (
        (missed_1, "missed 1", 2),
        (missed_2, "missed 2", 3),
        (after, "after", 4),
    ):
        assert name == "say"
        assert frame == {
            "context": "user",
            "message": text,
            "room": room,
            "from": frame["from"],
            "sentAt": frame["sentAt"],
            "offset": offset,
            "epoch": epoch,
        }
    assert recover == ["recover", {"room": room, "recovered": True, "count": 2}]
