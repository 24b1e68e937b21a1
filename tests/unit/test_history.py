"""A room's history in memory (PROTOCOL.md §9): offsets without gaps, one epoch, trimming by
size and by age, and what a recovery answers. No loop, no socket: a clock the test moves."""

from __future__ import annotations

import json

import pytest

from squall.history import Kept, RoomHistory, recover

from .conftest import Clock


def said(text: str) -> dict:
    return {"context": "user", "message": text, "room": "r", "from": "c0", "sentAt": 5}


def fill(history: RoomHistory, *texts: str) -> list[dict]:
    return [json.loads(history.append(said(text))) for text in texts]


def messages(kept: Kept) -> list[str]:
    return [frame["message"] for frame in kept.messages()]


def test_offsets_count_from_one_without_gaps_under_one_epoch():
    history = RoomHistory(size=10, ttl_ms=60_000)

    frames = fill(history, "a", "b", "c")

    assert [f["offset"] for f in frames] == [1, 2, 3]
    assert {f["epoch"] for f in frames} == {history.epoch}
    assert history.top == 3


def test_the_offset_and_epoch_come_last_in_the_frame_pushed():
    history = RoomHistory(size=10, ttl_ms=60_000)

    frame = history.append(said("a"))

    assert list(json.loads(frame)) == [
        "context",
        "message",
        "room",
        "from",
        "sentAt",
        "offset",
        "epoch",
    ]


def test_each_history_has_its_own_epoch():
    epochs = {RoomHistory(size=1, ttl_ms=1000).epoch for _ in range(50)}

    assert len(epochs) == 50
    assert all(len(epoch) == 12 for epoch in epochs)


def test_only_the_last_size_messages_are_kept():
    history = RoomHistory(size=3, ttl_ms=60_000)
    fill(history, "a", "b", "c", "d", "e")

    assert messages(history.last(10)) == ["c", "d", "e"]
    assert messages(history.last(2)) == ["d", "e"]
    assert history.last(10).offset == 5


def test_messages_older_than_the_ttl_are_dropped():
    clock = Clock()
    history = RoomHistory(size=10, ttl_ms=2000, clock=clock)
    fill(history, "old")
    clock.now += 1.5
    fill(history, "newer")

    clock.now += 0.5  # "old" is 2 s old now
    assert messages(history.last(10)) == ["newer"]
    clock.now += 1.5
    assert messages(history.last(10)) == []
    assert history.last(10).offset == 2  # the numbering goes on


def test_a_member_that_missed_kept_messages_recovers_exactly_those():
    history = RoomHistory(size=10, ttl_ms=60_000)
    fill(history, "a", "b", "c", "d")

    recovery = history.since(2, history.epoch)

    assert recovery.recovered is True
    assert messages(recovery.kept) == ["c", "d"]
    assert (recovery.kept.offset, recovery.kept.epoch) == (4, history.epoch)


def test_a_member_that_missed_nothing_recovers_nothing():
    history = RoomHistory(size=10, ttl_ms=60_000)
    fill(history, "a")

    recovery = history.since(1, history.epoch)

    assert (recovery.recovered, messages(recovery.kept)) == (True, [])


def test_a_member_whose_missed_messages_were_trimmed_is_told_and_gets_what_is_kept():
    history = RoomHistory(size=2, ttl_ms=60_000)
    fill(history, "a", "b", "c", "d")

    recovery = history.since(1, history.epoch)  # "b" is gone

    assert recovery.recovered is False
    assert messages(recovery.kept) == ["c", "d"]


def test_a_member_whose_missed_messages_expired_is_told():
    clock = Clock()
    history = RoomHistory(size=10, ttl_ms=1000, clock=clock)
    fill(history, "a", "b")
    clock.now += 1
    fill(history, "c")

    recovery = history.since(0, history.epoch)

    assert (recovery.recovered, messages(recovery.kept)) == (False, ["c"])


def test_a_member_of_another_epoch_gets_all_kept_messages_and_recovered_false():
    history = RoomHistory(size=10, ttl_ms=60_000)
    fill(history, "a", "b")

    recovery = history.since(7, "an old epoch")

    assert recovery.recovered is False
    assert messages(recovery.kept) == ["a", "b"]
    assert recovery.reply()["epoch"] == history.epoch


def test_an_offset_from_the_future_is_not_recovered():
    history = RoomHistory(size=10, ttl_ms=60_000)
    fill(history, "a")

    recovery = history.since(5, history.epoch)

    assert (recovery.recovered, messages(recovery.kept)) == (False, [])


@pytest.mark.parametrize(
    ("since", "kept", "expected"),
    [
        (3, [(4, b"{}"), (5, b"{}")], True),
        (3, [(5, b"{}")], False),
        (5, [], True),
        (0, [], False),
    ],
)
def test_recover_is_true_when_as_many_are_kept_as_were_said_after(since, kept, expected):
    assert recover(since, "e", "e", 5, kept).recovered is expected


def test_recovery_reply_shape():
    history = RoomHistory(size=10, ttl_ms=60_000)
    frames = fill(history, "a")

    assert history.since(0, history.epoch).reply() == {
        "recovered": True,
        "messages": frames,
        "offset": 1,
        "epoch": history.epoch,
    }
