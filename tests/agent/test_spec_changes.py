"""The spec changes while an item runs: a removed item is cancelled, a kept one finishes first."""

from __future__ import annotations

from agent_harness import Node, pid_alive, running, slot


async def test_removing_the_running_item_cancels_it_and_follows_the_new_spec(node: Node) -> None:
    cfg = await node.configure()
    pidfile = node.tmp / "slow.pid"
    await node.create([node.item("slow", "deploy", seconds="600", pidfile=str(pidfile))])
    async with node.agent(cfg):
        await node.wait_for(lambda _: pidfile.exists() and pidfile.read_text().strip() != "",
                            describe="slow's sleep started")
        pid = int(pidfile.read_text())
        await node.patch_spec({"stateItems": [node.item("instead", "deploy")]})
        machine = await node.wait_state("Ready")
        assert not pid_alive(pid), "the removed item's process is gone"
    assert slot(machine, "instead")["exitCode"] == 0
    assert node.runs("slow") == ["slow 1"]


async def test_an_item_added_while_another_runs_waits_for_it(node: Node) -> None:
    cfg = await node.configure()
    slow = node.item("slow", "deploy", seconds="3")
    await node.create([slow])
    async with node.agent(cfg):
        await node.wait_slot("slow", running, describe="slow running")
        await node.patch_spec({"stateItems": [slow, node.item("added", "deploy")]})
        machine = await node.wait_state("Ready")
    first, added = slot(machine, "slow"), slot(machine, "added")
    assert (first["exitCode"], first["attempt"]) == (0, 1)
    assert added["startedAt"] >= first["finishedAt"]
    assert node.runs("slow") == ["slow 1"]
    assert node.runs("added") == ["added 1"]
