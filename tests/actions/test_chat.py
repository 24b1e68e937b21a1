"""setDisplayName and the displayName join middleware: the demo chat's names, kept in the
session and shown to the other members as the join's public info (PROTOCOL.md §8)."""

import pytest


async def test_the_name_is_kept_in_the_session(squall):
    reply = await squall.run("setDisplayName", {"name": "  Ada Lovelace "})

    assert reply.status == 200
    assert reply == {"displayName": "Ada Lovelace"}
    assert await squall.session(reply.fingerprint) == {"displayName": "Ada Lovelace"}


@pytest.mark.parametrize("name", ["", "   ", "x" * 33, "tab\there", "zero\u200bwidth"])
async def test_a_name_that_cannot_be_shown_is_refused(squall, name):
    reply = await squall.run("setDisplayName", {"name": name})

    assert reply.status == 422
    assert reply.error in (
        "a display name is 1 to 32 printable characters",
        "name is a required parameter for this action",
    )


async def test_members_with_a_name_show_it_and_only_it(squall):
    named = await squall.run("setDisplayName", {"name": "Ada"})
    ada = await squall.connect(named.fingerprint)
    guest = await squall.connect()
    await ada.room_add("defaultRoom")
    await guest.room_add("defaultRoom")

    view = await guest.room_view("defaultRoom")

    members = view["data"]["members"]
    assert members[ada.id] == {
        "id": ada.id,
        "joinedAt": members[ada.id]["joinedAt"],
        "info": {"name": "Ada"},
    }
    assert members[guest.id] == {"id": guest.id, "joinedAt": members[guest.id]["joinedAt"]}
