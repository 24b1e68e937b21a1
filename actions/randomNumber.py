"""randomNumber: a trivial action, handy to check that the server answers."""

import random

from squall import action


@action(
    name="randomNumber",
    description="A random number between 0 and 1",
    output_example={"randomNumber": 0.123, "stringRandomNumber": "Your random number is 0.123"},
)
async def random_number(data):
    number = random.random()
    return {"randomNumber": number, "stringRandomNumber": f"Your random number is {number}"}
