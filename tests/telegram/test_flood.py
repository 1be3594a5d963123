"""Flood control on a hand-driven clock: per chat, per group window, overall, and 429 waits."""

from __future__ import annotations

import pytest

from steward.telegram.flood import INFINITY, FloodControl, FloodLimits, is_group


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def send(flood: FloodControl, chat, clock: Clock, took: float = 0.0) -> None:
    flood.begin(chat)
    clock.now += took
    flood.end(chat)


def test_it_tells_groups_and_channels_from_private_chats():
    assert is_group(-1001234) and is_group("-5") and is_group("@channel")
    assert not is_group(42) and not is_group("42")


def test_it_spaces_a_private_chat_by_the_interval_plus_margin_from_the_answer(clock):
    flood = FloodControl(FloodLimits(per_chat_per_second=1.0, margin=0.02), clock)
    assert flood.wait(42) == 0
    send(flood, 42, clock, took=0.3)
    assert flood.wait(42) == pytest.approx(1.02)
    assert flood.wait(43) == 0  # another chat is not held back
    clock.now += 1.02
    assert flood.wait(42) == 0


def test_it_allows_one_message_in_flight_per_chat(clock):
    flood = FloodControl(FloodLimits(), clock)
    flood.begin(42)
    assert flood.earliest(42) == INFINITY
    flood.cancel(42)
    assert flood.wait(42) == 0


def test_it_allows_twenty_per_minute_in_a_group_in_a_sliding_window(clock):
    flood = FloodControl(FloodLimits(per_chat_per_second=1000, group_per_minute=20), clock)
    first = clock.now
    for _ in range(20):
        assert flood.wait(-100) == 0
        send(flood, -100, clock)
        clock.now += 0.03
    assert flood.earliest(-100) == pytest.approx(first + 60.02)
    clock.now = first + 60.02
    assert flood.wait(-100) == 0


def test_it_allows_thirty_per_second_overall_counting_sends_in_flight(clock):
    flood = FloodControl(FloodLimits(global_per_second=30), clock)
    for chat in range(30):
        assert flood.wait(chat) == 0
        flood.begin(chat)
    assert flood.earliest(99) == INFINITY  # all thirty could land in the same second
    for chat in range(30):
        flood.end(chat)
    assert flood.wait(99) == pytest.approx(1.02)


def test_it_holds_a_chat_for_its_retry_after_and_everyone_when_told_the_wait_is_global(clock):
    flood = FloodControl(FloodLimits(), clock)
    flood.penalize(1, 5)
    assert flood.wait(1) == pytest.approx(5)
    assert flood.wait(2) == 0
    flood.pause_all(3)
    assert flood.wait(2) == pytest.approx(3)
    clock.now += 3.5
    assert flood.wait(2) == 0 and flood.wait(1) == pytest.approx(1.5)


def test_replies_waiting_for_a_slot_go_before_the_outbox(clock):
    flood = FloodControl(FloodLimits(global_per_second=3, margin=0.0), clock)
    send(flood, 1, clock)
    send(flood, 2, clock)
    assert flood.wait(10) == 0 and flood.wait(10, reply=True) == 0
    flood.replies_waiting = 1  # a reply queued for the last free slot of this second
    assert flood.wait(10) > 0, "the outbox leaves the slot to the reply"
    assert flood.wait(11, reply=True) == 0
    flood.replies_waiting = 0
    assert flood.wait(10) == 0
