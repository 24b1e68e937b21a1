"""``--workers 2`` with metrics: whichever worker a scrape lands on answers for the whole machine,
and a total never goes down when a worker is replaced."""

from __future__ import annotations

import asyncio
import http.client

import pytest
from prometheus_client.parser import text_string_to_metric_families
from testkit import BOOT_TIMEOUT, TIMEOUT, Server, eventually

from .support import kill_worker_of, one_client_per_worker

OK = ("squall_actions_total", (("action", "randomNumber"), ("outcome", "ok")))
PROCESSES = ("squall_processes", ())
SOCKETS = ("squall_connections", (("type", "webSocket"),))


def scrape_sync(server: Server) -> dict[tuple[str, tuple], float]:
    """One scrape on a fresh connection (so on either worker), parsed by prometheus-client."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/metrics")
        reply = conn.getresponse()
        assert reply.status == 200
        text = reply.read().decode()
    finally:
        conn.close()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(server: Server) -> dict[tuple[str, tuple], float]:
    return await asyncio.to_thread(scrape_sync, server)


@pytest.mark.server_errors("was killed by SIGKILL")
async def test_any_worker_answers_for_the_machine(redis_server, launch, connect):
    metrics_on = {"servers": {"web": {"metrics": {"enabled": True}}}}
    (server,) = launch(redis_server.url, ("metrics",), workers=2, extra=metrics_on)
    await eventually(
        lambda: scrape(server), lambda found: found[PROCESSES] == 2, BOOT_TIMEOUT, "2 workers"
    )

    first, second = (await one_client_per_worker(server, connect)).values()
    for _ in range(7):
        await first.action("randomNumber")
    for _ in range(5):
        await second.action("randomNumber")

    async def six_scrapes() -> list[dict]:
        return [await scrape(server) for _ in range(6)]

    def whole_machine(answers: list[dict]) -> bool:
        return all(
            found.get(OK) == 12 and found[PROCESSES] == 2 and found[SOCKETS] >= 2
            for found in answers
        )

    # every scrape, whichever worker answers it, counts both (once each has shared its second)
    answers = await eventually(six_scrapes, whole_machine, BOOT_TIMEOUT, "12 actions, any scrape")
    found = answers[-1]
    assert found[("squall_redis_state", (("state", "ok"),))] == 2  # both workers' links
    assert found[("squall_redis_state", (("state", "reconnecting"),))] == 0
    assert 0 < found[("squall_redis_round_trip_seconds", ())] < TIMEOUT

    # a worker killed and replaced: its actions still count, its sockets no longer do (the scrapes
    # above showed its 7: the worker that answered each had shared what it showed)
    await kill_worker_of(first)

    async def scrape_while_replacing() -> dict:
        try:
            return await scrape(server)
        except OSError:  # a connection the kernel gave the dead worker's socket is reset
            return {}

    def replaced(found) -> bool:
        return found.get(PROCESSES) == 2 and found.get(OK) == 12 and found.get(SOCKETS) == 1

    await eventually(scrape_while_replacing, replaced, BOOT_TIMEOUT, "the killed worker replaced")
