"""randomNumber: a number in [0, 1), and the sentence that says it."""


async def test_random_number(squall):
    reply = await squall.run("randomNumber")

    assert reply.status == 200
    assert 0 <= reply["randomNumber"] < 1
    assert reply["stringRandomNumber"] == f"Your random number is {reply['randomNumber']}"


async def test_two_calls_give_two_numbers(squall):
    first, second = await squall.run("randomNumber"), await squall.run("randomNumber")

    assert first["randomNumber"] != second["randomNumber"]
