"""The outbox: callers never wait, a full outbox drops its oldest message and counts it, and a message in
flight leaves only once the broker took it."""

from __future__ import annotations

import asyncio

from agent.adapters.mqtt import Outbox, Outgoing


def _msg(topic: str, n: int) -> Outgoing:
    return Outgoing(topic, str(n).encode(), qos=1)


async def _drain(box: Outbox) -> list[bytes]:
    sent = []
    while len(box):
        head = await box.head()
        box.sent(head)
        sent.append(head.payload)
    return sent


async def test_a_full_outbox_drops_the_oldest_and_counts_every_drop() -> None:
    box = Outbox(3)
    for n in range(7):
        box.put(_msg("lcm/ns/c/m/events", n))
    assert (len(box), box.dropped) == (3, 4)
    assert await _drain(box) == [b"4", b"5", b"6"]


async def test_a_newer_heartbeat_replaces_a_queued_one_without_counting_a_drop() -> None:
    box = Outbox(10)
    box.put(_msg("lcm/ns/c/m/heartbeat", 1), latest_only=True)
    box.put(_msg("lcm/ns/c/m/events", 2))
    box.put(_msg("lcm/ns/c/m/heartbeat", 3), latest_only=True)
    assert box.dropped == 0
    assert await _drain(box) == [b"2", b"3"]


async def test_a_message_dropped_while_in_flight_does_not_take_its_successor_with_it() -> None:
    box = Outbox(2)
    box.put(_msg("t", 1))
    in_flight = await box.head()
    box.put(_msg("t", 2))
    box.put(_msg("t", 3))  # drops 1, which is being sent
    box.sent(in_flight)
    assert await _drain(box) == [b"2", b"3"]


async def test_waiting_for_a_message_wakes_on_put() -> None:
    box = Outbox(2)
    waiter = asyncio.create_task(box.head())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    box.put(_msg("t", 1))
    assert (await asyncio.wait_for(waiter, 1)).payload == b"1"
