"""Exponential backoff (squall/backoff.py): doubling from base, capped, reset after success."""

from __future__ import annotations

import pytest

from squall.backoff import Backoff


def test_backoff_doubles_up_to_the_cap():
    delays = Backoff(0.5, 4.0)

    assert [delays.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert delays.failures == 6


def test_backoff_reset_starts_again_from_base():
    delays = Backoff(0.1, 1.0)
    delays.next()
    delays.next()
    delays.reset()

    assert (delays.failures, delays.next()) == (0, 0.1)


@pytest.mark.parametrize("rand, expected", [(0.0, [0.5, 1.0, 2.0]), (1.0, [1.0, 2.0, 4.0])])
def test_backoff_jitter_draws_between_half_and_the_whole_delay(rand, expected):
    delays = Backoff(1.0, 8.0, jitter=True, rand=lambda: rand)

    assert [delays.next() for _ in range(3)] == expected


def test_backoff_stays_capped_after_very_many_failures():
    delays = Backoff(0.05, 0.5)
    for _ in range(5000):
        delay = delays.next()

    assert delay == 0.5


@pytest.mark.parametrize("base, cap", [(0, 1), (-1, 1), (2, 1)])
def test_backoff_refuses_a_base_it_cannot_grow_from(base, cap):
    with pytest.raises(ValueError, match="backoff needs 0 < base <= cap"):
        Backoff(base, cap)
