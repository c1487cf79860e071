"""The regional liveness subscriber against a real broker and the API server: a killed agent and a
silent one become ``AgentReachable=False``, a live one ``True``, and steady heartbeats cost no API writes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from agent_harness import Node, status
from conftest import listening, publishing, settings, telemetry_config

from agent.adapters.mqtt import Outbox, Outgoing
from agent.api import telemetry as t
from agent.daemon.following import LCMMACHINES
from agent.lab.mosquitto import REGIONAL_USER, Broker
from agent.scheduler.liveness import CONDITION, Liveness, LivenessSettings
from agent.sim.testing import lcm_machine

HOST = t.HostLoad(load=(0.0, 0.0, 0.0), memory_total=1, memory_available=1, disk_path="/", disk_total=1,
                  disk_free=1, uptime=1.0)


def _condition(obj: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status(obj).get("conditions", []) if c["type"] == CONDITION), {})


@contextlib.asynccontextmanager
async def _liveness(node: Node, broker: Broker) -> AsyncIterator[Liveness]:
    liveness = Liveness(node.admin, LivenessSettings(broker=settings(broker, REGIONAL_USER, "liveness"),
                                                     settle=0.0, tick=0.1))
    stopping = asyncio.Event()
    task = asyncio.create_task(liveness.run(stopping))
    try:
        await asyncio.wait_for(liveness.link.connected.wait(), 10)
        yield liveness
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


async def _beat(outbox: Outbox, topic: str, seq: int, interval: float) -> None:
    message = t.heartbeat_message(host=HOST, machine_state="Ready", step="idle", item=None, interval=interval,
                                  agent_uptime=1.0, dropped=0, buffered=0, ts=time.time(), seq=seq)
    outbox.put(Outgoing(topic, t.encode(message)))


async def test_liveness_follows_agents_and_writes_only_transitions(node: Node, mqtt_broker: Broker) -> None:
    await telemetry_config(node, mqtt_broker, heartbeat_period=0.5)
    await node.create([node.item("prep", "prepare")])
    silent = lcm_machine("node-2", node.namespace)
    await node.admin.create(LCMMACHINES, node.namespace, silent)
    beats = f"lcm/{node.namespace}/demo/node-2/heartbeat"

    async with _liveness(node, mqtt_broker) as liveness, listening(mqtt_broker) as regional:
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
            steady = liveness.writes
            await asyncio.sleep(2.0)  # four heartbeat periods of node-1
            assert liveness.writes == steady, "steady heartbeats cost no API writes"
            agent.kill()
            await agent.wait()
            killed = time.monotonic()
            dead = await node.wait_for(lambda o: _condition(o).get("status") == "False", within=10,
                                       describe="node-1 unreachable")
            noticed = time.monotonic() - killed
        finally:
            if agent.returncode is None:
                agent.kill()
                await agent.wait()
    assert (_condition(missed)["status"], _condition(missed)["reason"]) == ("False", "HeartbeatMissed")
    assert _condition(dead)["reason"] == "AgentOffline"
    assert noticed < 0.5 * 2 + 1.0, "a killed agent is seen within a heartbeat interval (plus polling)"
    # node-1: True, False; node-2: True, False. Nothing else.
    assert liveness.writes == 4
