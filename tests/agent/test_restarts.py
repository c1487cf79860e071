"""The agent as systemd runs it: killed mid-item it resumes without re-running finished work; SIGTERM
stops it cleanly with its journal on disk, and a second SIGTERM forces the stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal

from agent_harness import Node, pid_alive, running, slot

from agent.daemon.app import ExitCode


async def test_kill_9_mid_item_reruns_the_same_item_as_attempt_2(node: Node) -> None:
    await node.configure()
    await node.create([node.item("first", "prepare"), node.item("slow", "prepare", seconds="3"),
                       node.item("last", "deploy")])
    agent = await node.spawn()
    try:
        entry = await node.wait_slot("slow", running, describe="slow running")
        assert entry["attempt"] == 1
        await node.wait_for(lambda _: node.runs("slow") == ["slow 1"], describe="slow's playbook started")
        agent.kill()
        assert await agent.wait() == -signal.SIGKILL
        agent = await node.spawn()
        machine = await node.wait_state("Ready")
    finally:
        if agent.returncode is None:
            agent.terminate()
            await agent.wait()
    assert slot(machine, "slow")["attempt"] == 2
    assert slot(machine, "slow")["exitCode"] == 0
    assert node.runs("slow") == ["slow 1", "slow 2"]
    assert node.runs("first") == ["first 1"]
    assert node.runs("last") == ["last 1"]


async def test_sigterm_stops_gracefully_and_a_second_one_forces(node: Node) -> None:
    await node.configure(stop_grace_period=30.0)
    pidfile = node.tmp / "slow.pid"
    await node.create([node.item("done", "deploy"),
                       node.item("slow", "deploy", seconds="600", pidfile=str(pidfile))])
    agent = await node.spawn()
    await node.wait_for(lambda _: pidfile.exists() and pidfile.read_text().strip() != "",
                        describe="slow's sleep started")
    agent.send_signal(signal.SIGTERM)
    await node.wait_logged("stopping: the running item gets 30s to finish")
    assert agent.returncode is None, "the running item has a grace period"
    agent.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(agent.wait(), 15) == ExitCode.FORCED
    assert not pid_alive(int(pidfile.read_text())), "a forced stop leaves no playbook behind"

    # With the slow item replaced, the agent finishes; an idle agent stops at once with 0, and its
    # journal says what finished and holds no mark of the item that left the spec.
    await node.patch_spec({"stateItems": [node.item("done", "deploy"), node.item("after", "deploy")]})
    agent = await node.spawn()
    await node.wait_state("Ready")
    agent.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(agent.wait(), 15) == ExitCode.OK
    journal = json.loads((node.state_dir / "journal.json").read_text())
    assert {name: f["exitCode"] for name, f in journal["finished"].items()} == {"done": 0, "after": 0}
    assert journal["inProgress"] is None
    assert oct((node.state_dir / "journal.json").stat().st_mode & 0o777) == "0o600"


async def test_a_config_others_can_read_is_refused_with_exit_code_2(node: Node) -> None:
    await node.configure()
    node.config_path.chmod(0o644)
    agent = await node.spawn()
    assert await asyncio.wait_for(agent.wait(), 30) == ExitCode.CONFIG
    assert "chmod 600" in (node.tmp / "agent.log").read_text()


async def test_sigterm_lets_the_running_item_finish_and_reports_it(node: Node) -> None:
    await node.configure(stop_grace_period=30.0)
    await node.create([node.item("slow", "prepare", seconds="3"), node.item("next", "deploy")])
    agent = await node.spawn()
    await node.wait_for(lambda _: node.runs("slow") == ["slow 1"], describe="slow's playbook started")
    agent.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(agent.wait(), 30) == ExitCode.OK
    entry = slot(await node.get(), "slow")
    assert (entry["exitCode"], entry["attempt"]) == (0, 1)
    assert node.runs("next") == [], "no new item starts once stopping"
    journal = json.loads((node.state_dir / "journal.json").read_text())
    assert journal["finished"]["slow"]["exitCode"] == 0
    assert journal["inProgress"] is None


async def test_a_killed_agents_playbook_is_ended_before_its_item_runs_again(node: Node) -> None:
    """Outside systemd (no unit whose cgroup is killed with it), kill -9 of the agent leaves its playbook
    running, re-parented to init; the next agent ends it before it starts the item's next attempt."""
    await node.configure()
    pidfile = node.tmp / "slow.pid"
    await node.create([node.item("slow", "prepare", seconds="600", pidfile=str(pidfile))])
    agent = await node.spawn()
    sleeper = 0
    try:
        await node.wait_for(lambda _: pidfile.exists() and pidfile.read_text().strip() != "",
                            describe="slow's sleep started")
        sleeper = int(pidfile.read_text())
        agent.kill()
        assert await agent.wait() == -signal.SIGKILL
        assert pid_alive(sleeper), "nothing but the agent ends its playbook"
        agent = await node.spawn()
        await node.wait_for(lambda _: node.runs("slow") == ["slow 1", "slow 2"], describe="attempt 2 runs")
        assert not pid_alive(sleeper), "the first attempt's playbook was still running beside the second"
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
        if sleeper and pid_alive(sleeper):
            os.kill(sleeper, signal.SIGKILL)
