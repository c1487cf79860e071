"""A machine's items run phase by phase to Ready: the first item's start is one write, then each outcome is
written together with the next item's start."""

from __future__ import annotations

import itertools
from datetime import datetime

from agent_harness import Node, running, slot, status

from agent.adapters.watching import Change


def _status_writes(events: list[tuple[float, Change]], item: str) -> int:
    """MODIFIED events in which the item's slot changed: the writes a provider sees for that item."""
    writes: int = 0
    before: dict[str, object] = {}
    for _, event in events:
        now = slot(event.object, item)
        if event.type == "MODIFIED" and now != before:
            writes += 1
        before = now
    return writes


async def test_items_run_in_phase_order_to_ready(node: Node) -> None:
    cfg = await node.configure()
    items = [node.item("reconf", "reconfigure"), node.item("deploy", "deploy"), node.item("prep", "prepare")]
    created = await node.create(items)
    async with node.recording() as events, node.agent(cfg):
        machine = await node.wait_state("Ready")
    st = status(machine)
    assert st["progress"] == "3/3"
    assert st["observedGeneration"] == created["metadata"]["generation"]
    for name in ("prep", "deploy", "reconf"):
        entry = slot(machine, name)
        assert (entry["exitCode"], entry["attempt"], entry["result"]) == (0, 1, {"outcome": "success"})
        assert datetime.fromisoformat(entry["startedAt"]) <= datetime.fromisoformat(entry["finishedAt"])
        assert node.runs(name) == [f"{name} 1"]
        assert _status_writes(events, name) <= 2
    # Phases in order: each item started after the previous phase's item finished.
    order = sorted(("prep", "deploy", "reconf"), key=lambda n: slot(machine, n)["startedAt"])
    assert order == ["prep", "deploy", "reconf"]
    # Registration, the first start, then one write per item: nothing else touched the object.
    assert sum(1 for _, e in events if e.type == "MODIFIED") <= 1 + 1 + 3
    # The handover is visible to a provider: prep's outcome arrived in the same event as deploy's start.
    objects = [e.object for _, e in events]
    handovers = [after for before, after in itertools.pairwise(objects)
                 if running(slot(before, "prep")) and slot(after, "prep").get("exitCode") == 0
                 and running(slot(after, "deploy"))]
    assert len(handovers) == 1
    assert status(handovers[0])["state"] == "Deploy"
