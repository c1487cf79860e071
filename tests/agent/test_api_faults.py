"""The API misbehaves while items run: expired watches, an outage, refused writes. The machine still
reaches Ready, and no item runs twice because of it. A real server does none of this on demand: these run on
the simulator (and skip against LCM_TEST_KUBECONFIG's cluster)."""

from __future__ import annotations

import asyncio

import pytest
from agent_harness import Node, capture_info, logged, running, slot

from testbed.sim.faults import Faults
from testbed.sim.testing import KubeApi

pytestmark = pytest.mark.simulator("watch expiry, outages and refused writes on demand")


async def test_watch_expiring_mid_phase_relists_and_reaches_ready(node: Node, faults: Faults) -> None:
    cfg = await node.configure()
    await node.create([node.item("slow", "prepare", seconds="2"), node.item("next", "deploy")])
    async with node.agent(cfg):
        await node.wait_slot("slow", running, describe="slow running")
        faults.compact()
        # The agent has one watch; just after its first list it may still be opening: drop it once it is.
        for _ in range(250):
            if faults.drop_watches() >= 1:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the agent never had a watch open")
        machine = await node.wait_state("Ready")
    assert node.runs("slow") == ["slow 1"]
    assert node.runs("next") == ["next 1"]
    assert slot(machine, "next")["attempt"] == 1


async def test_api_down_mid_item_reports_the_item_without_rerunning_it(
    node: Node, kube_api: KubeApi, caplog: pytest.LogCaptureFixture,
) -> None:
    """The outage lasts past the item's end and past the watch's inactivity timeout (1 s here), through
    failed writes of the outcome and failed watch restarts: as long as the point needs, no longer."""
    assert kube_api.simulator is not None
    capture_info(caplog)
    cfg = await node.configure(watch_inactivity_timeout=1.0)
    await node.create([node.item("slow", "deploy", seconds="2")])
    async with node.agent(cfg) as agent:
        await node.wait_for(lambda _: node.runs("slow") == ["slow 1"], describe="slow's playbook started")
        await kube_api.simulator.stop()
        ended = await logged(caplog, "item success (exit code 0)")  # slow ended during the outage
        await logged(caplog, "status write failed", after=ended, count=2)  # its outcome cannot be written
        await logged(caplog, "watch of lcmmachines", after=ended)  # nor the watch restarted
        assert not agent.done(), "the agent outlives an API outage"
        await kube_api.simulator.start()
        machine = await node.wait_state("Ready", within=40)
    entry = slot(machine, "slow")
    assert (entry["exitCode"], entry["attempt"]) == (0, 1)
    assert node.runs("slow") == ["slow 1"]


@pytest.mark.parametrize("code", [409, 503, 500])
async def test_refused_status_writes_are_retried(node: Node, faults: Faults, code: int) -> None:
    cfg = await node.configure()
    await node.create([node.item("one", "prepare"), node.item("two", "deploy")])
    faults.error(code, count=4, verb="patch", resource="lcmmachines/status")
    async with node.agent(cfg):
        machine = await node.wait_state("Ready")
    assert [slot(machine, n)["exitCode"] for n in ("one", "two")] == [0, 0]
    assert node.runs("one") == ["one 1"]
    assert node.runs("two") == ["two 1"]


async def test_outcome_lost_with_the_agent_stopped_is_reported_after_restart_not_rerun(
    node: Node, faults: Faults, caplog: pytest.LogCaptureFixture,
) -> None:
    capture_info(caplog)
    cfg = await node.configure()
    await node.create([node.item("one", "deploy")], haltAgent=True)
    async with node.agent(cfg):
        await node.wait_state("Deploy")
        faults.error(503, verb="patch", resource="lcmmachines/status")
        await node.patch_spec({"haltAgent": False})
        await node.wait_for(lambda _: node.runs("one") == ["one 1"], describe="one ran")
        ended = await logged(caplog, "item success (exit code 0)")  # the item ends...
        await logged(caplog, "status write failed", after=ended)  # ...and its outcome cannot be written
    assert slot(await node.get(), "one").get("exitCode") != 0
    faults.clear()
    async with node.agent(cfg):
        entry = await node.wait_slot("one", lambda s: s.get("exitCode") == 0, describe="one reported")
    assert entry["attempt"] == 1
    assert node.runs("one") == ["one 1"]


async def test_items_added_while_the_agents_last_write_is_answered_late_are_run(
    node: Node, faults: Faults,
) -> None:
    """The scheduler adds the deploy items as soon as it sees the prepare items done; the agent's watch can
    bring that change before the answer to the agent's own write arrives (another connection, a congested
    path back). The older answer must not take the place of the newer spec, or the agent idles on a version
    that is gone."""
    cfg = await node.configure()
    one = node.item("one", "prepare")
    await node.create([one])
    faults.latency(1500, verb="patch", resource="lcmmachines/status", answer=True)
    async with node.agent(cfg):
        # The outcome's write landed; its answer is still on its way.
        await node.wait_slot("one", lambda s: s.get("exitCode") == 0, describe="one done")
        await node.patch_spec({"stateItems": [one, node.item("two", "deploy")]})
        done = await node.wait_slot("two", lambda s: s.get("exitCode") == 0, describe="two done")
    assert done["attempt"] == 1
    assert node.runs("two") == ["two 1"]
