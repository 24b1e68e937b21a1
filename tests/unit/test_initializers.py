"""Initializers: declared like middleware, started in priority order at boot (awaited), stopped
in reverse after every connection is gone; what they open is on app.state for actions."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from squall import Initializer
from squall.errors import ActionLoadError
from squall.initializers import Initializers
from squall.testing import Harness

from .conftest import write_app

RECORDER = """
    from pathlib import Path

    LOG = Path(__file__).resolve().parents[1] / "events.log"


    def record(line):
        with LOG.open("a") as log:
            log.write(line + "\\n")
"""

POOL = """
    import asyncio

    from squall import ConnectionMiddleware, Initializer, action

    from ._recorder import record


    class Pool:
        def __init__(self):
            self.open = True


    async def open_pool(app):
        await asyncio.sleep(0)  # a start may await (open a connection pool)
        app.state.pool = Pool()
        record("start pool")


    async def close_pool(app):
        app.state.pool.open = False
        record("stop pool")


    pool = Initializer(name="pool", start=open_pool, stop=close_pool, priority=20)


    def start_cache(app):
        record(f"start cache (pool there: {hasattr(app.state, 'pool')})")
        app.state.cache = {}


    def stop_cache(app):
        record(f"stop cache (pool open: {app.state.pool.open})")


    cache = Initializer(name="cache", start=start_cache, stop=stop_cache, priority=30)


    @action()
    def pool_state(data):
        return {"open": data.app.state.pool.open, "cache": data.app.state.cache}


    APP = {}


    def _keep_app(app):
        APP["app"] = app


    def _gone(connection):
        record(f"destroy (pool open: {APP['app'].state.pool.open})")


    watch = ConnectionMiddleware(name="watch", destroy=_gone)
    keeper = Initializer(name="keeper", start=_keep_app, priority=1)
"""


def events(root: Path) -> list[str]:
    log = root / "events.log"
    return log.read_text().splitlines() if log.exists() else []


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    return write_app(tmp_path / "project", {"actions/_recorder.py": RECORDER, **files})


def harness(root: Path) -> Harness:
    return Harness(root, config_files=[root / "config" / "unit.yaml"])


async def test_start_in_priority_order_and_state_reaches_actions(tmp_path):
    root = project(tmp_path, {"actions/pool.py": POOL})

    async with harness(root) as squall:
        assert events(root) == ["start pool", "start cache (pool there: True)"]
        reply = await squall.run("pool_state")
        assert reply == {"open": True, "cache": {}}


async def test_stop_in_reverse_order_after_the_connections_are_gone(tmp_path):
    root = project(
        tmp_path,
        {
            "actions/pool.py": POOL,
            "config/extra.yaml": "servers:\n  websocket:\n    enabled: true\n",
        },
    )
    squall = Harness(root, config_files=[root / "config" / "unit.yaml", root / "config/extra.yaml"])
    await squall.start()
    await squall.connect()

    await squall.stop()

    assert events(root)[2:] == [
        "destroy (pool open: True)",
        "stop cache (pool open: True)",
        "stop pool",
    ]


async def test_initializers_have_a_folder_of_their_own(tmp_path):
    root = project(
        tmp_path,
        {
            "initializers/clock.py": """
                from squall import Initializer

                from ._helper import NOW

                clock = Initializer(name="clock", start=lambda app: setattr(app.state, "now", NOW))
            """,
            "initializers/_helper.py": "NOW = 1234\n",
            "actions/now.py": """
                from squall import action


                @action()
                async def now(data):
                    return {"now": data.app.state.now}
            """,
        },
    )

    async with harness(root) as squall:
        assert await squall.run("now") == {"now": 1234}


async def test_a_start_that_raises_stops_the_boot_naming_the_file(tmp_path):
    broken = """
        from squall import Initializer


        def connect(app):
            raise ConnectionRefusedError("no database at db:5432")


        database = Initializer(name="database", start=connect, priority=50)
    """
    root = project(tmp_path, {"actions/pool.py": POOL, "initializers/database.py": broken})

    with pytest.raises(ActionLoadError) as refused:
        await harness(root).start()

    path = root / "initializers" / "database.py"
    assert str(refused.value) == (
        f"{path}:6: initializer 'database' failed to start: "
        "ConnectionRefusedError: no database at db:5432"
    )
    # what started before it is stopped again, in reverse
    assert events(root) == [
        "start pool",
        "start cache (pool there: True)",
        "stop cache (pool open: True)",
        "stop pool",
    ]


async def test_two_initializers_of_one_name_stop_the_boot_naming_both_files(tmp_path):
    one = "from squall import Initializer\n\ndb = Initializer(name='db', start=print)\n"
    root = project(tmp_path, {"actions/one.py": one, "initializers/two.py": one})

    with pytest.raises(ActionLoadError) as refused:
        await harness(root).start()

    first, second = root / "actions" / "one.py", root / "initializers" / "two.py"
    assert str(refused.value) == (
        f"{second}: initializer 'db' is declared twice ({first} and {second})"
    )


async def test_a_broken_declaration_names_its_file(tmp_path):
    bad = "from squall import Initializer\n\ndb = Initializer(name='db', start='connect')\n"
    root = project(tmp_path, {"actions/bad.py": bad})

    with pytest.raises(ActionLoadError, match=r"bad\.py: initializer 'db': start is not callable"):
        await harness(root).start()


async def test_one_imported_into_two_files_counts_once(tmp_path):
    root = project(
        tmp_path,
        {
            "actions/pool.py": POOL,
            "actions/reexport.py": "from .pool import cache, pool  # noqa: F401\n",
        },
    )

    async with harness(root):
        assert events(root) == ["start pool", "start cache (pool there: True)"]


async def test_a_stop_that_raises_is_logged_and_the_others_still_stop(caplog):
    stopped = []

    def fail(app):
        raise RuntimeError("cannot flush")

    runner = Initializers(
        [
            (Initializer(name="first", stop=lambda app: stopped.append("first")), Path("a.py")),
            (Initializer(name="second", stop=fail), Path("b.py")),
        ]
    )
    await runner.start(None)

    with caplog.at_level(logging.ERROR, logger="squall"):
        await runner.stop(None)

    assert stopped == ["first"]
    assert "initializer second failed to stop (b.py)" in caplog.text
    assert "cannot flush" in caplog.text
