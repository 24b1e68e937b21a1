"""createChatRoom: make a room that connections can join.

The room is temporary: once it has stayed empty for ``general.emptyRoomTtl`` it is destroyed, so
rooms nobody uses do not pile up. A name must be 1 to ``general.maxRoomNameLength`` characters
without control characters (else ``invalid room name``, 422).
"""

from squall import Input, action


@action(
    name="createChatRoom",
    description="Create a chat room; didCreate is false when it already existed. The room is "
    "destroyed once it has stayed empty for general.emptyRoomTtl",
    inputs={"name": Input(required=True, formatter=str, description="the room to create")},
    output_example={"name": "lobby", "didCreate": True},
)
async def create_chat_room(data):
    name = data.params["name"]
    return {"name": name, "didCreate": await data.app.rooms.add(name, temporary=True)}
