"""The outbox: callers never wait, a full outbox drops its oldest message and counts it, and a message in
flight leaves only once the broker took it."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import aiomqtt

from agent.adapters.mqtt import MqttLink, Outbox, Outgoing


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


class _AckedAsCancelled:
    """A client whose publish waits for its acknowledgement as aiomqtt's does, by ``asyncio.wait_for``."""

    def __init__(self) -> None:
        self.ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.publishing = asyncio.Event()

    async def publish(self, *_: Any, **__: Any) -> None:
        self.publishing.set()
        await asyncio.wait_for(self.ack, timeout=3600)


async def test_a_link_stopped_as_the_broker_acknowledges_stops_sending() -> None:
    """Python 3.11's wait_for returns the acknowledgement and drops a cancellation that arrives in the same
    loop turn; the link then waited for ever on an empty outbox and the agent never stopped (seen in CI)."""
    box = Outbox(10)
    box.put(_msg("lcm/ns/c/m/events", 1))
    client = _AckedAsCancelled()
    sending = asyncio.ensure_future(MqttLink._send_all(cast(aiomqtt.Client, client), box))
    await client.publishing.wait()
    client.ack.set_result(None)
    sending.cancel()
    for _ in range(10):  # loop turns, not time: the cancellation needs two
        await asyncio.sleep(0)
    assert len(box) == 0  # the acknowledged message left the outbox
    assert sending.cancelled()
