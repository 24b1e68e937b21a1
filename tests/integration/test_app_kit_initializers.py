"""Initializers in a real server: started before the port opens, their state read by actions over
HTTP, stopped after every socket is closed at SIGTERM; a start that raises stops the boot with
exit status 2 and a line naming the file."""

from __future__ import annotations

import asyncio
import signal
import textwrap

import pytest
from testkit import TIMEOUT, Peer, http_request

from .support import running_server
from .test_boot import failed_boot

CLOCK = """
import os
import time

from squall import Initializer, action


def _log(line):
    with open(os.environ["SQUALL_TEST_EVENT_LOG"], "a") as log:
        log.write(line + "\\n")


async def start(app):
    app.state.clock = {"bootedAt": time.time(), "ticks": 0}
    _log("initializer start clock")


def stop(app):
    _log(f"initializer stop clock after {app.state.clock['ticks']} ticks")


clock = Initializer(name="clock", start=start, stop=stop)


@action(name="tick")
def tick(data):
    data.app.state.clock["ticks"] += 1
    return {"ticks": data.app.state.clock["ticks"]}
"""


@pytest.fixture
def clock_options(tmp_path):
    folder = tmp_path / "initializers"
    folder.mkdir()
    (folder / "clock.py").write_text(CLOCK)
    return {"general": {"paths": {"initializers": [str(folder)]}}}


async def test_state_opened_at_boot_is_closed_after_the_sockets(
    clock_options, tmp_path_factory, connect
):
    with running_server(tmp_path_factory, "initializers", clock_options) as server:
        assert server.events("initializer") == ["start clock"]  # before the port answered
        assert http_request(server, "GET", "/api/tick").json()["ticks"] == 1
        client = await connect(server)
        assert (await client.action("tick"))["ticks"] == 2
        client_id = (await client.details())["id"]

        server.signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.wait_exit) == 0

    assert server.event_log.read_text().splitlines()[-2:] == [
        f"destroy {client_id}",
        "initializer stop clock after 2 ticks",
    ]


async def test_stop_waits_for_a_socket_that_never_answers_the_close(
    clock_options, tmp_path_factory
):
    with running_server(tmp_path_factory, "initializers-stuck", clock_options) as server:
        peer = await Peer.open(server)
        peer.pause_reading()  # never reads, never answers: the server aborts it after 3 s
        server.signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.wait_exit, TIMEOUT * 2) == 0

    assert [line.split()[0] for line in server.event_log.read_text().splitlines()] == [
        "initializer",
        "destroy",
        "initializer",
    ]


def test_a_start_that_raises_stops_the_boot_naming_the_file(tmp_path):
    folder = tmp_path / "initializers"
    folder.mkdir()
    broken = folder / "database.py"
    broken.write_text(
        textwrap.dedent(
            """
            from squall import Initializer


            def connect(app):
                raise ConnectionRefusedError("no database at db:5432")


            database = Initializer(name="database", start=connect)
            """
        )
    )

    code, output = failed_boot(tmp_path, {"general": {"paths": {"initializers": [str(folder)]}}})

    assert code == 2
    assert (
        f"cannot start: {broken}:6: initializer 'database' failed to start: "
        "ConnectionRefusedError: no database at db:5432"
    ) in output
    assert "Traceback" not in output
