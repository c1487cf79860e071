"""The agent's ``/metrics`` as an operator scrapes it: item runs by item, phase and outcome, retries and
durations, its version, its last contact with the API; the machine's name is never a label; and a port
already taken leaves the agent working, without metrics, saying so."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from agent_harness import Node, slot

from agent import __version__
from testbed.lab.stack.mosquitto import free_port
from testbed.lab.stack.prometheus import fetch, labelled, parse, value

pytestmark = pytest.mark.kube


def bash(name: str, phase: str, script: str) -> dict[str, object]:
    return {"runner": "bash", "name": name, "version": "1", "phase": phase, "params": {"script": script}}


async def test_item_runs_retries_and_durations_are_counted_by_item_phase_and_outcome(node: Node) -> None:
    address = f"127.0.0.1:{free_port()}"
    cfg = await node.configure(metrics_address=address)
    marker = node.tmp / "broken"
    marker.touch()
    await node.create([bash("flaky", "prepare", f"test ! -e {marker}"), bash("hello", "deploy", "true")])
    began = time.time()
    async with node.agent(cfg):
        await node.wait_slot("flaky", lambda s: (s.get("exitCode") or 0) > 0, describe="flaky failed once")
        marker.unlink()
        machine = await node.wait_state("Ready")
        page = await asyncio.to_thread(fetch, address)
    samples = parse(page)
    failures = slot(machine, "flaky")["attempt"] - 1
    assert failures >= 1
    runs = "lcm_agent_item_runs_total"
    assert value(samples, runs, item="flaky", phase="prepare", outcome="failed") == failures
    assert value(samples, runs, item="flaky", phase="prepare", outcome="success") == 1
    assert value(samples, runs, item="hello", phase="deploy", outcome="success") == 1
    assert value(samples, "lcm_agent_item_retries_total", item="flaky", phase="prepare") == failures
    assert value(samples, "lcm_agent_item_retries_total", item="hello") == 0
    assert value(samples, "lcm_agent_item_duration_seconds_count", item="flaky") == failures + 1
    assert value(samples, "lcm_agent_item_duration_seconds_count", item="hello", phase="deploy") == 1
    assert value(samples, "lcm_agent_build_info", version=__version__) == 1
    assert value(samples, "lcm_agent_api_last_contact_timestamp_seconds") >= began
    assert value(samples, "lcm_agent_status_write_failures_total") == 0
    assert value(samples, "lcm_agent_mqtt_dropped_messages_total") == 0
    label_values = {v for name, _ in samples for labels in labelled(samples, name) for v in labels.values()}
    assert node.name not in label_values, "the machine is the scrape target, never a label"


async def test_a_metrics_port_in_use_is_said_and_the_agent_goes_on_without_metrics(
    node: Node, held_port: int,
) -> None:
    await node.configure(metrics_address=f"127.0.0.1:{held_port}")
    await node.create([bash("hello", "deploy", "true")])
    agent = await node.spawn()
    try:
        await node.wait_state("Ready")
        errors = [json.loads(line) for line in (node.tmp / "agent.log").read_text().splitlines()
                  if '"ERROR"' in line]
        assert agent.returncode is None, "the agent runs on"
    finally:
        agent.terminate()
        code = await asyncio.wait_for(agent.wait(), 30)
    assert code == 0
    # Said once, as an error naming the address it could not listen on.
    assert [e["address"] for e in errors if "address" in e] == [f"127.0.0.1:{held_port}"], errors
