"""createChatRoom: make a room that connections can join, with presence and history if asked.

The room is temporary: once it has stayed empty for ``general.emptyRoomTtl`` it is destroyed, so
rooms nobody uses do not pile up. A name must be 1 to ``general.maxRoomNameLength`` characters
without control characters (else ``invalid room name``, 422).

A client may ask for ``presence`` (true or false) and a ``history`` (``{"size": n, "ttl": ms}``,
PROTOCOL.md §9), within bounds of its own so that clients cannot make the server keep much for
long: at most :data:`MAX_HISTORY_SIZE` messages for at most :data:`MAX_HISTORY_TTL` ms. What it
leaves out comes from ``general.roomDefaults``. Anything else is answered 422 ``invalid room
options: <option>: <why>``; server code (``app.rooms.add``) is bounded by the configuration only.
"""

from squall import Input, action
from squall.room_options import parse_room_options

#: The most messages a client's room keeps.
MAX_HISTORY_SIZE = 100
#: The longest a client's room keeps a message: one hour.
MAX_HISTORY_TTL = 3_600_000


def _flag(value):
    """true/false, also as the text a query string carries."""
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


@action(
    name="createChatRoom",
    description="Create a chat room, with presence and a history if asked; didCreate is false "
    "when it already existed. The room is destroyed once it has stayed empty for "
    "general.emptyRoomTtl",
    inputs={
        "name": Input(required=True, formatter=str, description="the room to create"),
        "presence": Input(
            formatter=_flag, description="true: members are pushed every join and leave"
        ),
        "history": Input(
            description=f"{{size, ttl}}: keep the last size messages (at most "
            f"{MAX_HISTORY_SIZE}) for ttl ms (at most {MAX_HISTORY_TTL}) for recovery"
        ),
    },
    output_example={"name": "lobby", "didCreate": True},
)
async def create_chat_room(data):
    name = data.params["name"]
    asked = {key: data.params[key] for key in ("presence", "history") if key in data.params}
    options = parse_room_options(
        asked, data.app.rooms.defaults, max_size=MAX_HISTORY_SIZE, max_ttl=MAX_HISTORY_TTL
    )
    return {"name": name, "didCreate": await data.app.rooms.add(name, options, temporary=True)}
