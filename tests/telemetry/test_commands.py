"""Commands over MQTT: ``cancel`` aborts the running item's attempt, ``wake`` makes the agent re-read its
LCMMachine when its watch cannot; each is answered with a ``command`` event."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from agent_harness import Node, capture_info, logged, pid_alive
from conftest import Received, kind, listening, publishing, settings, telemetry_config

from agent.adapters.mqtt import Outgoing
from agent.api import telemetry as t
from testbed.lab.stack.mosquitto import REGIONAL_USER, Broker
from testbed.sim.faults import Faults


async def _send(broker: Broker, node: Node, command: str, **fields: str) -> None:
    """Publish one command as the regional side does, and wait until the broker took it."""
    body = t.command_message(command=command, ts=time.time(), seq=0, **fields)
    topic = t.Subtree(node.namespace, "demo", node.name).topic("cmd")
    async with publishing(settings(broker, REGIONAL_USER, "commander")) as outbox:
        outbox.put(Outgoing(topic, t.encode(body), qos=1))


def _answer(command: str, outcome: str, ident: str) -> Callable[[Received], bool]:
    def match(entry: Received) -> bool:
        data = entry.message.get("data") or {}
        return kind("events", type="command", event=outcome)(entry) and data == {**data, "command": command,
                                                                                    "id": ident}
    return match


async def test_cancel_aborts_the_running_attempt_and_names_it(node: Node, mqtt_broker: Broker) -> None:
    cfg = await telemetry_config(node, mqtt_broker, heartbeat_period=0.5, backoff_base=30.0, backoff_cap=60.0)
    pidfile = node.tmp / "slow.pid"
    await node.create([node.item("slow", "prepare", seconds="600", pidfile=str(pidfile))])
    async with listening(mqtt_broker) as regional, node.agent(cfg):
        await node.wait_for(lambda _: pidfile.exists() and pidfile.read_text().strip() != "",
                            describe="slow's sleep started")
        await _send(mqtt_broker, node, "cancel", item="other", id="c1")
        await regional.wait_for(_answer("cancel", "refused", "c1"), describe="refused: other is not running")
        await _send(mqtt_broker, node, "cancel", item="slow", id="c2")
        answer = await regional.wait_for(_answer("cancel", "done", "c2"), describe="the cancel answered")
        entry = await node.wait_slot("slow", lambda s: s.get("exitCode") == 130, describe="slow cancelled")
    assert answer.message["data"]["detail"] == "cancelled slow"
    assert (entry["attempt"], entry["result"]["outcome"]) == (1, "cancelled")
    assert not pid_alive(int(pidfile.read_text())), "the playbook's processes are gone"


@pytest.mark.simulator("an API outage for the agent's reads and writes, and its watch dropped")
async def test_wake_rereads_the_machine_when_the_watch_cannot(
        node: Node, mqtt_broker: Broker, faults: Faults, caplog: pytest.LogCaptureFixture) -> None:
    capture_info(caplog)
    cfg = await telemetry_config(node, mqtt_broker, heartbeat_period=0.5)
    await node.create([node.item("first", "deploy")])
    async with listening(mqtt_broker) as regional, node.agent(cfg):
        await node.wait_state("Ready")
        for verb in ("list", "watch"):  # the agent's watch breaks and cannot come back
            faults.error(503, verb=verb, resource="lcmmachines")
        faults.drop_watches()
        await node.patch_spec({"stateItems": [node.item("first", "deploy"), node.item("added", "deploy")]})
        since = len(caplog.records)
        await logged(caplog, "watch of lcmmachines", after=since, count=2)  # it tried to look, twice: 503
        assert node.runs("added") == [], "with its watch down the agent has not seen the new item"
        await _send(mqtt_broker, node, "wake", id="w1")
        await regional.wait_for(_answer("wake", "done", "w1"), describe="the wake answered")
        entry = await node.wait_slot("added", lambda s: s.get("exitCode") == 0, describe="added run")
        faults.clear()
    assert entry["attempt"] == 1
    assert node.runs("added") == ["added 1"]
