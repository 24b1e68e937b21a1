"""Display names for the demo chat (public/chat.html).

A user picks a name once; it is kept in their session (one per browser, across reloads and
reconnects) and shown to the other members of every room they join from then on, as the public
``info`` of their membership (PROTOCOL.md §8: in join frames and ``roomView``), and with every
message they say (``info`` in the say frame, as Centrifugo's publications carry their
publisher's), so that a message kept in a room's history still names its author once they have
left. Nothing else of the session is shown. A member who has not picked a name has no ``info``.
"""

from squall import ChatMiddleware, Input, action

#: The longest display name, in characters.
MAX_NAME_LENGTH = 32


def _checked_name(name: str) -> bool | str:
    """True, or why ``name`` cannot be a display name."""
    if not 1 <= len(name) <= MAX_NAME_LENGTH or not name.isprintable():
        return f"a display name is 1 to {MAX_NAME_LENGTH} printable characters"
    return True


@action(
    name="setDisplayName",
    description="Keep the caller's display name in its session; the rooms it joins from then "
    "on show it to their members as the join's info.name",
    inputs={
        "name": Input(
            required=True,
            formatter=lambda value: str(value).strip(),
            validator=_checked_name,
            description=f"1 to {MAX_NAME_LENGTH} printable characters (spaces around are trimmed)",
        )
    },
    output_example={"displayName": "Ada"},
)
async def set_display_name(data):
    data.connection.session["displayName"] = data.params["name"]
    return {"displayName": data.params["name"]}


def public_name(connection, room):
    """The member's public info: its display name, when it has picked one."""
    name = connection.session.get("displayName")
    return {"name": name} if name else None


def signed(connection, room, payload):
    """The say frame, with its sender's public info when it has any."""
    info = public_name(connection, room)
    if info is not None:
        payload["info"] = info
    return payload


display_name = ChatMiddleware(name="displayName", join=public_name, on_say_receive=signed)
