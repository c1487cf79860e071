"""The fleet's item durations: a real agent's runs, through the real broker, into the scheduler's roll-up,
the planner's figures and the Prometheus text a scrape would read."""

from __future__ import annotations

import asyncio
import time

from agent_harness import Node
from conftest import connected, kind, listening, settings, telemetry_config
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from regional.planning.durations import BUCKETS
from regional.scheduler.item_durations import DURATION_METRIC, RUNS_METRIC, DurationCollector, ItemDurations
from testbed.lab.stack.mosquitto import REGIONAL_USER, Broker


def _samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


async def test_agents_runs_reach_the_rollup_and_its_collector(node: Node, mqtt_broker: Broker) -> None:
    durations = ItemDurations(settings(mqtt_broker, REGIONAL_USER, "test-durations"))
    cfg = await telemetry_config(node, mqtt_broker, heartbeat_period=0.5)
    await node.create([node.item("prep", "prepare"), node.item("slow", "deploy", seconds="2")])
    async with connected(durations.run, durations.link), listening(mqtt_broker) as regional, \
            node.agent(cfg):
        await node.wait_state("Ready")
        await regional.wait_for(lambda r: kind("events")(r) and r.message.get("item") == "slow"
                                and r.message["event"] == "finished", describe="slow finished")
        deadline = time.monotonic() + 30
        while len(durations.book) < 2:  # the roll-up's own subscription delivers them too
            assert time.monotonic() < deadline, f"the book holds {dict(durations.book.items())}"
            await asyncio.sleep(0.05)

    registry = CollectorRegistry()
    registry.register(DurationCollector(durations.book))
    samples = _samples(generate_latest(registry))
    slow = frozenset({("item", "slow"), ("version", "1")})
    assert samples[(f"{DURATION_METRIC}_count", slow)] == 1
    took = samples[(f"{DURATION_METRIC}_sum", slow)]
    assert took >= 2  # the item sleeps 2 s

    norms = durations.norms()
    assert set(norms) == {("prep", "1"), ("slow", "1")}
    assert norms[("slow", "1")].samples == 1
    upper = min(b for b in BUCKETS if b >= took)
    lower = max((b for b in BUCKETS if b < took), default=0)
    assert lower < norms[("slow", "1")].p95 <= upper  # one run: its p95 lies in that run's bucket
    assert durations.refused == 0
    assert samples[(f"{DURATION_METRIC}_bucket", slow | {("le", "1")})] == 0
    assert samples[(f"{DURATION_METRIC}_bucket", slow | {("le", "+Inf")})] == 1
    assert samples[(f"{RUNS_METRIC}_total", slow | {("outcome", "success")})] == 1
    assert samples[(f"{RUNS_METRIC}_total", slow | {("outcome", "failed")})] == 0
