"""Host facts are re-read between items and written only when they change."""

from __future__ import annotations

import asyncio
import dataclasses

from agent_harness import Node, status

from agent.adapters.host import collect_host_info
from agent.api.host_facts import HostFacts
from agent.daemon.app import Hooks


async def test_changed_host_facts_are_written_once_and_unchanged_ones_never(node: Node) -> None:
    cfg = await node.configure(host_info_period=0.2)
    await node.create([node.item("one", "deploy")])
    real = collect_host_info()
    facts = {"now": real}

    def read() -> HostFacts:
        return facts["now"]

    async with node.recording() as events, node.agent(cfg, Hooks(host_info=read)):
        await node.wait_state("Ready")
        await asyncio.sleep(0.5)
        quiet = len(events)
        await asyncio.sleep(2.0)  # ten refresh periods with the same facts
        assert len(events) == quiet, "unchanged facts cause no write"
        facts["now"] = dataclasses.replace(real, timezone="Antarctica/Troll", kernel_version="9.9.9-test")
        machine = await node.wait_for(lambda o: status(o)["hostInfo"]["timezone"] == "Antarctica/Troll",
                                      describe="the new timezone reported")
        await asyncio.sleep(1.0)
    assert status(machine)["hostInfo"]["kernelVersion"] == "9.9.9-test"
    assert status(machine)["state"] == "Ready"
    assert len(events) == quiet + 1, "one write for the change"
