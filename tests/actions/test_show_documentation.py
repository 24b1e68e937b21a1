"""showDocumentation: every action, by version, with its inputs, as the documentation verb."""


async def test_documents_every_shipped_action(squall):
    reply = await squall.run("showDocumentation")

    docs = reply["documentation"]
    assert reply.status == 200
    assert {"createChatRoom", "echo", "randomNumber", "showDocumentation", "sleepTest"} <= set(docs)
    assert docs["sleepTest"]["1"]["inputs"] == {
        "sleepDuration": {
            "required": False,
            "default": 1000,
            "description": "how long to sleep, in ms",
        }
    }
    assert docs["createChatRoom"]["1"]["outputExample"] == {"name": "lobby", "didCreate": True}


async def test_matches_the_documentation_verb(squall):
    socket = await squall.connect()

    verb = await socket.documentation()

    assert verb["data"] == (await squall.run("showDocumentation"))["documentation"]
