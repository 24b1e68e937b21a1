"""What ``/ready`` and ``status`` say: ready while the broker is in its cluster and
the server is not stopping; ``status`` says ``degraded`` with the reason otherwise."""

from __future__ import annotations


async def test_a_server_with_its_broker_up_is_ready(make_app):
    app = await make_app()

    assert app.readiness_problem() is None
    status = app.status()
    assert (status["state"], status["problems"]) == ("ok", [])


async def test_a_server_whose_broker_is_away_is_degraded(make_app):
    app = await make_app()
    app.broker.problem = "lost Redis at redis://cache:6379/0: Connection refused"

    assert app.readiness_problem() == "lost Redis at redis://cache:6379/0: Connection refused"
    status = app.status()
    assert (status["state"], status["problems"]) == (
        "degraded",
        ["lost Redis at redis://cache:6379/0: Connection refused"],
    )


async def test_a_stopping_server_is_not_ready(make_app):
    app = await make_app()
    await app.drain()  # what the first stop signal does

    assert app.readiness_problem() == "the server is shutting down"
