"""What waits for Redis (squall/backlog.py): the outbox keeps messages in order up to
its bounds and says why it refuses one; the journal keeps only the latest change of each key
and knows which changes Redis has confirmed."""

from __future__ import annotations

import pytest

from squall.backlog import Journal, Outbox


def test_outbox_keeps_messages_in_order():
    outbox = Outbox(max_messages=10, max_bytes=100)
    for n in range(3):
        outbox.append("say:r", f"m{n}".encode())

    assert (len(outbox), outbox.bytes) == (3, 6)
    assert outbox.peek(10, 100) == [("say:r", b"m0"), ("say:r", b"m1"), ("say:r", b"m2")]
    outbox.drop(2)
    assert outbox.peek(10, 100) == [("say:r", b"m2")]
    assert (len(outbox), outbox.bytes) == (1, 2)


def test_outbox_refuses_past_its_message_count():
    outbox = Outbox(max_messages=2, max_bytes=100)
    outbox.append("c", b"a")
    outbox.append("c", b"b")

    assert outbox.refusal(1) == "2 messages already wait for it (redis.outboxSize)"
    with pytest.raises(OverflowError):
        outbox.append("c", b"c")
    assert len(outbox) == 2


def test_outbox_refuses_past_its_bytes():
    outbox = Outbox(max_messages=10, max_bytes=10)
    outbox.append("c", b"123456")

    assert outbox.refusal(4) is None
    assert outbox.refusal(5) == (
        "1 messages of 6 bytes already wait for it and this one has 5 (redis.outboxBytes: 10)"
    )


def test_outbox_of_size_zero_keeps_nothing():
    assert Outbox(max_messages=0, max_bytes=100).refusal(1) is not None


def test_outbox_peek_takes_a_batch_bounded_in_bytes_but_never_empty():
    outbox = Outbox(max_messages=10, max_bytes=100)
    for body in (b"x" * 30, b"y" * 30, b"z" * 30):
        outbox.append("c", body)

    assert [len(body) for _, body in outbox.peek(10, 60)] == [30, 30]
    assert [len(body) for _, body in outbox.peek(2, 1000)] == [30, 30]
    assert [len(body) for _, body in outbox.peek(10, 1)] == [30]  # one, even if larger


def test_journal_keeps_the_latest_change_of_each_key():
    journal = Journal()
    journal.record(("member", "r", "c1"), 1)
    journal.record(("member", "r", "c2"), 2)
    last = journal.record(("member", "r", "c1"), None)

    assert len(journal) == 2
    assert journal.snapshot() == (last, {("member", "r", "c1"): None, ("member", "r", "c2"): 2})


def test_journal_confirm_keeps_what_changed_meanwhile():
    journal = Journal()
    first = journal.record("a", 1)
    journal.record("b", 1)
    upto, written = journal.snapshot()  # a writer takes these...
    newer = journal.record("a", 2)  # ...while "a" changes again
    journal.confirm(upto)

    assert written == {"a": 1, "b": 1}
    assert journal.snapshot() == (newer, {"a": 2})
    assert journal.confirmed == upto >= first
    assert journal.confirmed < newer


def test_journal_forget_drops_a_pending_change():
    journal = Journal()
    journal.record("a", 1)
    journal.forget("a")
    journal.forget("never recorded")

    assert len(journal) == 0
