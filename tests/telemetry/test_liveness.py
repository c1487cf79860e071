"""The regional liveness subscriber against a real broker and the API server: a killed agent and a
silent one become ``AgentReachable=False``, a live one ``True``, and steady heartbeats cost no API writes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from agent_harness import Node, status
from conftest import connected, listening, publishing, settings, telemetry_config

from agent.adapters.mqtt import Outbox, Outgoing
from agent.api import telemetry as t
from agent.daemon.own_machine import LCMMACHINES
from regional.planning.liveness import CONDITION
from regional.scheduler.liveness import Liveness, LivenessSettings
from testbed.lab.stack.mosquitto import REGIONAL_USER, Broker
from testbed.sim.testing import lcm_machine

T = TypeVar("T")
HOST = t.HostLoad(load=(0.0, 0.0, 0.0), memory_total=1, memory_available=1, disk_path="/", disk_total=1,
                  disk_free=1, uptime=1.0)


def _condition(obj: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status(obj).get("conditions", []) if c["type"] == CONDITION), {})


@contextlib.asynccontextmanager
async def _liveness(node: Node, broker: Broker, *,
                    observe: Callable[[t.Subtree, dict[str, Any]], None] | None = None,
                    **timings: float) -> AsyncIterator[Liveness]:
    base = LivenessSettings(broker=settings(broker, REGIONAL_USER, "liveness"), settle=0.0, tick=0.1)
    liveness = Liveness(node.admin, dataclasses.replace(base, **timings), observe=observe)
    async with connected(liveness.run, liveness.link):
        yield liveness


async def _beat(outbox: Outbox, topic: str, seq: int, interval: float) -> None:
    message = t.heartbeat_message(host=HOST, machine_state="Ready", step="idle", item=None, interval=interval,
                                  agent_uptime=1.0, dropped=0, buffered=0, ts=time.time(), seq=seq)
    outbox.put(Outgoing(topic, t.encode(message)))


async def test_liveness_follows_agents_and_writes_only_transitions(node: Node, mqtt_broker: Broker) -> None:
    await telemetry_config(node, mqtt_broker, heartbeat_period=0.5)
    await node.create([node.item("prep", "deploy")])
    silent = lcm_machine("node-2", node.namespace)
    await node.admin.create(LCMMACHINES, node.namespace, silent)
    beats = f"lcm/{node.namespace}/demo/node-2/heartbeat"

    taken: list[str] = []  # the machines of the heartbeats the subscriber took, in order

    def observe(subtree: t.Subtree, message: dict[str, Any]) -> None:
        if message["kind"] == "heartbeat":
            taken.append(subtree.machine)

    async with _liveness(node, mqtt_broker, observe=observe) as liveness, listening(mqtt_broker) as regional:
        agent = await node.spawn()
        try:
            async with publishing(settings(mqtt_broker, "node-2")) as node_2_outbox:
                for seq in range(10):  # node-2 beats for two seconds, then falls silent
                    await _beat(node_2_outbox, beats, seq, 0.2)
                    await asyncio.sleep(0.2)
            await node.wait_for(lambda o: _condition(o).get("status") == "True", describe="node-1 reachable")
            missed = await node.admin.get(LCMMACHINES, node.namespace, "node-2")
            deadline = time.monotonic() + 10
            while _condition(missed).get("reason") != "HeartbeatMissed" and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                missed = await node.admin.get(LCMMACHINES, node.namespace, "node-2")
            await regional.wait_for(lambda r: r.channel == "heartbeat" and r.subtree is not None
                                    and r.subtree.machine == "node-1", describe="node-1 beating")
            steady, heard = liveness.writes, taken.count("node-1")
            # Four more heartbeats of node-1 taken (the subscriber writes each tick, five per heartbeat):
            async with asyncio.timeout(15):
                await _until(_nothing, lambda _: taken.count("node-1") >= heard + 4)
            assert liveness.writes == steady, "steady heartbeats cost no API writes"
            agent.kill()
            await agent.wait()
            dead = await node.wait_for(lambda o: _condition(o).get("status") == "False", within=10,
                                       describe="node-1 unreachable")
        finally:
            if agent.returncode is None:
                agent.kill()
                await agent.wait()
    assert (_condition(missed)["status"], _condition(missed)["reason"]) == ("False", "HeartbeatMissed")
    # From its last will (the broker saw the connection die), not from heartbeats missed for the grace:
    assert _condition(dead)["reason"] == "AgentOffline"
    # node-1: True, False; node-2: True, False. Nothing else.
    assert liveness.writes == 4


async def _nothing() -> None:
    return None


async def _until(read: Callable[[], Awaitable[T]], check: Callable[[T], bool]) -> T:
    """What ``read`` returns once ``check`` holds for it, polled (the caller's timeout bounds the wait)."""
    while True:
        value = await read()
        if check(value):
            return value
        await asyncio.sleep(0.1)


async def test_a_hung_broker_makes_no_machine_unreachable(node: Node, mqtt_broker: Broker) -> None:
    """Mosquitto stopped (SIGSTOP), not killed: every connection stays open and nothing moves. Silence
    then says nothing about the machines, so nobody becomes unreachable, during the hang or after it."""
    await node.admin.create(LCMMACHINES, node.namespace, lcm_machine("node-2", node.namespace))
    beats, key, interval = f"lcm/{node.namespace}/demo/node-2/heartbeat", (node.namespace, "node-2"), 0.2
    async with asyncio.timeout(60), _liveness(node, mqtt_broker, probe_period=0.2, settle=1.0) as liveness, \
            publishing(settings(mqtt_broker, "node-2")) as outbox:

        async def beat_forever() -> None:
            for seq in itertools.count():
                await _beat(outbox, beats, seq, interval)
                await asyncio.sleep(interval)

        beating = asyncio.create_task(beat_forever())
        try:
            await _until(lambda: node.admin.get(LCMMACHINES, node.namespace, "node-2"),
                         lambda o: _condition(o).get("status") == "True")
            written = liveness.writes
            assert mqtt_broker.process is not None
            os.kill(mqtt_broker.process.pid, signal.SIGSTOP)
            try:
                book = liveness.book
                # The event that proves the subscriber had its chance: it has heard nothing from node-2 for
                # ten times the grace, with its write loop running all along.
                while time.monotonic() - book.machines[key].seen < 10 * book.grace * interval:
                    await asyncio.sleep(0.1)
                    assert liveness.writes == written, "a machine was judged while the broker was hung"
                assert liveness.writes == written
            finally:
                os.kill(mqtt_broker.process.pid, signal.SIGCONT)
            resumed = time.monotonic()
            # The broker passes messages again and the book has settled: it judges once more.
            await _until(_nothing, lambda _: book.proven_at is not None and book.proven_at > resumed
                         and book.machines[key].seen > resumed
                         and time.monotonic() > book.settled_at + 5 * liveness.settings.tick)
            machine = await node.admin.get(LCMMACHINES, node.namespace, "node-2")
        finally:
            beating.cancel()
    assert _condition(machine)["status"] == "True"
    assert liveness.writes == written


async def _none_left(outbox: Outbox) -> bool:
    return not len(outbox)


def _status(state: str, reason: str, connection: float, seq: int) -> bytes:
    return t.encode(t.status_message(state=state, reason=reason, agent_version="0.1.0",
                                     heartbeat_interval=0.2, ts=time.time(), seq=seq, connection=connection))


async def test_a_late_will_of_a_replaced_connection_is_ignored(node: Node, mqtt_broker: Broker) -> None:
    """What a broker that was hung delivers once it resumes: the will of a connection the agent has since
    replaced (its newer connection said online and beats). node-2 stays reachable; node-1's will of its
    current connection, sent after it, is taken (the event proving the subscriber read past node-2's)."""
    for name in ("node-1", "node-2"):
        await node.admin.create(LCMMACHINES, node.namespace, lcm_machine(name, node.namespace))
    status_2, status_1 = (f"lcm/{node.namespace}/demo/{m}/status" for m in ("node-2", "node-1"))
    async with asyncio.timeout(60), _liveness(node, mqtt_broker) as liveness:
        async with publishing(settings(mqtt_broker, "node-1")) as node_1, \
                publishing(settings(mqtt_broker, "node-2")) as node_2:
            node_1.put(Outgoing(status_1, _status("online", "connected", 2000.0, 0), 1, True))
            node_2.put(Outgoing(status_2, _status("online", "connected", 1000.0, 0), 1, True))
            for name in ("node-1", "node-2"):
                await _until(functools.partial(node.admin.get, LCMMACHINES, node.namespace, name),
                             lambda o: _condition(o).get("status") == "True")
            node_2.put(Outgoing(status_2, _status("offline", "lost", 400.0, 1), 1, True))
            await _until(lambda: _none_left(node_2), bool)  # acknowledged: the broker passed it on first
            node_1.put(Outgoing(status_1, _status("offline", "lost", 2000.0, 1), 1, True))
            await _until(lambda: node.admin.get(LCMMACHINES, node.namespace, "node-1"),
                         lambda o: _condition(o).get("reason") == "AgentOffline")
        stale = await node.admin.get(LCMMACHINES, node.namespace, "node-2")
    assert _condition(stale)["status"] == "True"
    assert liveness.writes == 3  # both True, then node-1 False
