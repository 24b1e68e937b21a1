"""createChatRoom: make a room that connections can join."""

from squall import Input, action


@action(
    name="createChatRoom",
    description="Create a chat room; didCreate is false when it already existed",
    inputs={"name": Input(required=True, formatter=str, description="the room to create")},
    output_example={"name": "lobby", "didCreate": True},
)
async def create_chat_room(data):
    name = data.params["name"]
    return {"name": name, "didCreate": await data.app.rooms.add(name)}
