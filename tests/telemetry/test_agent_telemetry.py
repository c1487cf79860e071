"""A real agent on a real broker: presence, heartbeats and progress events as the regional side sees them."""

from __future__ import annotations

from collections.abc import Callable

from agent_harness import Node
from conftest import PASSWORDS, Received, broker_log, kind, listening, telemetry_config

from agent.api import telemetry as t
from testbed.lab.stack.mosquitto import Broker


def _running(item: str) -> Callable[[Received], bool]:
    def match(entry: Received) -> bool:
        if not kind("heartbeat")(entry):
            return False
        current = entry.message["agent"]["item"]
        return current is not None and current["name"] == item
    return match


async def test_heartbeats_and_item_events_arrive_with_the_schema(node: Node, mqtt_broker: Broker) -> None:
    cfg = await telemetry_config(node, mqtt_broker, heartbeat_period=0.5)
    await node.create([node.item("prep", "prepare"), node.item("slow", "deploy", seconds="2")])
    async with listening(mqtt_broker) as regional:
        async with node.agent(cfg):
            online = await regional.wait_for(kind("status", state="online"), describe="online status")
            beat = await regional.wait_for(_running("slow"), describe="a heartbeat showing slow running")
            await node.wait_state("Ready")
            await regional.wait_for(lambda r: kind("heartbeat")(r) and r.message["agent"]["state"] == "Ready",
                                    describe="a heartbeat saying Ready")
        await regional.wait_for(kind("status", state="offline", reason="stopped"), describe="clean stop")

    assert online.topic == f"lcm/{node.namespace}/demo/node-1/status"
    assert online.message["heartbeatInterval"] == 0.5
    current = beat.message["agent"]["item"]
    assert (current["phase"], current["attempt"], beat.message["agent"]["step"]) == ("deploy", 1, "running")
    assert beat.message["host"]["memory"]["total"] > 0
    # Nothing lost; what is buffered at the instant of a heartbeat (an item event queued a moment before)
    # varies with timing, so only that it is reported.
    assert beat.message["telemetry"]["dropped"] == 0
    assert set(beat.message["telemetry"]) == {"dropped", "buffered"}

    # Item events only: other work on this host (NICs created by other tests) makes hardware events too.
    events = [e for e in regional.messages("events", "node-1") if e["type"] == "item"]
    story = [(e["item"], e["event"]) for e in events if e["event"] in ("started", "finished")]
    assert story == [("prep", "started"), ("prep", "finished"), ("slow", "started"), ("slow", "finished")]
    finished = [e for e in events if e["event"] == "finished"]
    assert all(e["data"]["result"] == "success" and e["data"]["exit_code"] == 0 for e in finished)
    progress = [e for e in events if e["item"] == "slow" and e["event"].startswith("task_")]
    assert [e["data"]["task"] for e in progress if e["event"] == "task_started"] == [
        "count this run", "take a while"]
    assert progress[-1]["data"]["counts"] == {"changed": 2}
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs), "events arrive in the order they happened"


async def test_a_killed_agent_is_announced_offline_by_its_last_will(node: Node, mqtt_broker: Broker) -> None:
    await telemetry_config(node, mqtt_broker, heartbeat_period=0.5)
    await node.create([node.item("prep", "deploy")])
    async with listening(mqtt_broker) as regional:
        agent = await node.spawn()
        try:
            await regional.wait_for(kind("status", state="online"), describe="online status")
            await regional.wait_for(kind("heartbeat"), describe="a heartbeat")
            agent.kill()
            await agent.wait()
            will = await regional.wait_for(kind("status", state="offline"), within=10, describe="the will")
        finally:
            if agent.returncode is None:
                agent.kill()
                await agent.wait()
    assert will.message["reason"] == "lost"
    # Seen at once, from the closed socket, not after the keepalive ran out: the broker says which.
    ended = [line.split(": ", 1)[1] for line in broker_log(mqtt_broker, "lcm-agent-")
             if "node-1" in line and "New client" not in line]
    assert [line.split()[-3:] for line in ended] == [["closed", "its", "connection."]], ended
    async with listening(mqtt_broker) as later:  # retained: whoever looks later learns it too
        retained = await later.wait_for(kind("status"), describe="the retained status")
    assert retained.message["state"] == "offline"
    assert PASSWORDS["node-1"] not in (node.tmp / "agent.log").read_text()


async def test_no_secret_is_ever_published(node: Node, mqtt_broker: Broker) -> None:
    cfg = await telemetry_config(node, mqtt_broker, heartbeat_period=0.3)
    await node.create([node.item("prep", "deploy")])
    async with listening(mqtt_broker) as regional, node.agent(cfg):
        await node.wait_state("Ready")
        await regional.wait_for(kind("heartbeat"), describe="a heartbeat")
    secrets = [PASSWORDS["node-1"], *cfg.secret_values()]
    assert regional.received
    for entry in regional.received:
        assert not any(secret.encode() in entry.payload for secret in secrets), entry.topic
        assert t.decode(entry.payload)
