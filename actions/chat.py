"""Display names for the demo chat (public/chat.html).

A user picks a name once; it is kept in their session (one per browser, across reloads and
reconnects) and shown to the other members of every room they join from then on, as the public
``info`` of their membership (PROTOCOL.md §8: in join frames and ``roomView``). Nothing else of
the session is shown. A member who has not picked a name has no ``info``.

Only joins read the session: a say hook would cost every message a session read (a Redis round
trip with Redis), so a message names its sender by connection id alone.
"""

from squall import ChatMiddleware, Input, action
from squall.sessions import UnavailableSession

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
    """The member's public info: its display name, when it has picked one. A session that
    cannot be read now (Redis away) shows none, rather than refuse the join or the say."""
    if isinstance(connection.session, UnavailableSession):
        return None
    name = connection.session.get("displayName")
    return {"name": name} if name else None


display_name = ChatMiddleware(name="displayName", join=public_name)
