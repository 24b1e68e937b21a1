"""echo: return the params the action received, as reply fields."""

from squall import action


@action(
    description="Returns the params it received (after parsing) as the fields of its reply",
    output_example={"action": "echo", "hello": "world"},
)
async def echo(data):
    return dict(data.params)
