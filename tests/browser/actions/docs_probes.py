"""Test-only actions for the API reference page: two versions of one action, inputs of every
kind (required, defaulted, described) and a middleware the page must list."""

from squall import ActionMiddleware, Input, action


def _stamp(data):
    data.response["stamped"] = True


stamp = ActionMiddleware(name="stamp", post=_stamp, is_global=False)

WORDS = {"en": "Hello", "fr": "Bonjour"}


@action(
    name="greet",
    version=1,
    description="Greets someone (the first version)",
    inputs={"name": Input(required=True, description="who to greet")},
    output_example={"greeting": "Hello, Ada"},
)
async def greet_v1(data):
    return {"greeting": f"Hello, {data.params['name']}"}


@action(
    name="greet",
    version=2,
    description="Greets someone, politely and in any language",
    inputs={
        "name": Input(required=True, description="who to greet"),
        "language": Input(
            default="en",
            validator=lambda value: value in WORDS or "language must be en or fr",
            description="en or fr",
        ),
        "times": Input(default=1, formatter=int, description="how many greetings"),
    },
    output_example={"greeting": "Hello, Ada", "stamped": True},
    middleware=["stamp"],
)
async def greet_v2(data):
    word = WORDS[data.params["language"]]
    return {"greeting": ", ".join([f"{word}, {data.params['name']}"] * data.params["times"])}
