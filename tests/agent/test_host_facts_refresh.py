"""Host facts are re-read between items and written only when they change."""

from __future__ import annotations

import dataclasses
from typing import Any

from agent_harness import Node, status

from agent.adapters.host import collect_host_info
from agent.adapters.watching import Change
from agent.api.host_facts import HostFacts
from agent.daemon.app import Hooks


async def test_changed_host_facts_are_written_once_and_unchanged_ones_never(node: Node) -> None:
    cfg = await node.configure(host_info_period=0.2)
    await node.create([node.item("one", "deploy")])
    real = collect_host_info()
    facts = {"now": real}
    reads = [0]

    def read() -> HostFacts:
        reads[0] += 1
        return facts["now"]

    async def refreshed(times: int) -> None:
        """Until the agent has read the host's facts ``times`` more times (each a refresh it may write)."""
        until = reads[0] + times
        await node.wait_for(lambda _: reads[0] >= until, describe=f"{times} refreshes")

    async with node.recording() as events, node.agent(cfg, Hooks(host_info=read)):
        await node.wait_state("Ready")
        await refreshed(2)  # whatever the first reads wrote has come back
        await node.wait_for(lambda o: _echoed(events, o), describe="the last write's watch event")
        quiet = len(events)
        await refreshed(10)  # ten refreshes with the same facts
        assert len(events) == quiet, "unchanged facts cause no write"
        facts["now"] = dataclasses.replace(real, timezone="Antarctica/Troll", kernel_version="9.9.9-test")
        machine = await node.wait_for(lambda o: status(o)["hostInfo"]["timezone"] == "Antarctica/Troll",
                                      describe="the new timezone reported")
        await refreshed(5)  # five more with the new facts
        await node.wait_for(lambda o: _echoed(events, o), describe="the last write's watch event")
    assert status(machine)["hostInfo"]["kernelVersion"] == "9.9.9-test"
    assert status(machine)["state"] == "Ready"
    assert len(events) == quiet + 1, "one write for the change"


def _echoed(events: list[tuple[float, Change]], obj: dict[str, Any]) -> bool:
    """The watch has delivered the version ``obj`` is: every write so far is among ``events``."""
    return bool(events) and events[-1][1].object["metadata"]["resourceVersion"] == obj["metadata"][
        "resourceVersion"]
