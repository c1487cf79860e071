"""Drains that protect and drains that end, on real swarms of lab nodes with the executor's real agent and
the release's maintenance playbook: a rolling drain of two workers keeps a two-replica service answering
(the second drain waits until the service's tasks were spread again), a manager is not taken out while
another is down, and a drain whose node cannot empty ends with the service named."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from machine_harness import PLAYBOOKS, MakeNode
from swarm_services import (
    StateHistory,
    drain,
    engine,
    eventually,
    form_swarm,
    import_busybox,
    rolling_drain,
    running_on,
    swarm_node,
    target_machine,
    web_service,
)

from agent.adapters.kube import Kube
from agent.api.models import LCMClusterState, LCMMachine
from agent.daemon.own_machine import LCMMACHINES
from agent.daemon.swarm_executor import LCMCLUSTERSTATES
from regional.planning.failures import trouble
from regional.planning.machines import view
from regional.planning.settings import PlanSettings
from testbed.lab.netns import dockerd
from testbed.lab.netns.nodes import Lab

LabFactory = Callable[..., Lab]
EXECUTOR = "demo-control-0"


async def test_a_rolling_drain_of_two_workers_keeps_a_two_replica_service_answering(
    machine: MakeNode, admin: Kube, lab_nodes: LabFactory, tmp_path: Path,
) -> None:
    lab = lab_nodes("ctl", "wk0", "wk1")
    manager, workers = lab["ctl"], [lab["wk0"], lab["wk1"]]
    form_swarm([manager], workers)
    import_busybox(workers, tmp_path)
    web_service(manager)
    w0, w1 = (w.address for w in workers)
    await eventually(lambda: running_on(manager, "web") == {w0: 1, w1: 1}, "web spread over both workers")
    control = machine(EXECUTOR, lab=manager, release=(PLAYBOOKS,))
    names = ("demo-worker-0", "demo-worker-1")
    for name, node in zip(names, workers, strict=True):
        await target_machine(admin, control.namespace, name, node.address)
    await control.create([], type="control")
    async with control.agent(await control.configure()):
        rollout = await rolling_drain(admin, control.namespace, manager, workers, names)
    assert not [s for s in rollout.first if "waiting" in s]  # the first drain leaves one replica running
    held = [s["waiting"] for s in rollout.second if "waiting" in s]
    # Both replicas ran on the second worker after the first's drain: it waited for their rebalancing.
    assert held[0] == {"reason": "DisruptionBudget", "message": (
        "disruption budget: service web: draining would stop 2 running task(s) and leave 0, below its budget "
        "(min-available 1 (the default)); rebalancing it with a rolling service update --force")}
    assert "waiting" not in rollout.second[-1]
    assert rollout.answered == rollout.tried  # not one probe round without an answer
    assert swarm_node(manager, w1).attrs["Spec"]["Availability"] == "drain"


async def test_a_manager_is_not_taken_out_while_another_is_down(
    machine: MakeNode, admin: Kube, lab_nodes: LabFactory,
) -> None:
    lab = lab_nodes("mg0", "mg1", "mg2")
    managers = [lab["mg0"], lab["mg1"], lab["mg2"]]
    form_swarm(managers, [])
    dockerd.stop(managers[2])
    await eventually(lambda: swarm_node(managers[0], managers[2].address).attrs["ManagerStatus"]
                     .get("Reachability") == "unreachable", "the stopped manager unreachable")
    control = machine(EXECUTOR, lab=managers[0], release=(PLAYBOOKS,))
    ns = control.namespace
    await target_machine(admin, ns, "demo-control-1", managers[1].address)
    await control.create([], type="control")
    async with StateHistory(admin, ns) as history, control.agent(await control.configure()):
        await admin.create(LCMCLUSTERSTATES, ns, drain("demo-control-1"))
        held = await history.wait("sd-demo-control-1", lambda s: "waiting" in s, "the quorum guard")
        availability = swarm_node(managers[0], managers[1].address).attrs["Spec"]["Availability"]
    assert held["waiting"] == {"reason": "QuorumGuard", "message": (
        f"quorum guard: taking out the manager at {managers[1].address} would leave 1 of 3 managers "
        f"reachable, below the Raft quorum of 2 (unreachable: {managers[2].address})")}
    assert "value" not in held
    assert availability == "active"  # the guard had its say: the node was never set to drain
    machine_status = (await admin.get(LCMMACHINES, ns, "demo-control-1")).get("status") or {}
    assert "swarmCordonDrain" not in machine_status


async def test_a_drain_whose_node_cannot_empty_ends_naming_the_service_and_leaves_it_drained_visibly(
    machine: MakeNode, admin: Kube, lab_nodes: LabFactory, tmp_path: Path,
) -> None:
    lab = lab_nodes("ctl", "wk0")
    manager, worker = lab["ctl"], lab["wk0"]
    form_swarm([manager], [worker])
    import_busybox([worker], tmp_path)
    # sleep as PID 1 ignores SIGTERM, and the service gives it ten minutes to stop: the node cannot empty.
    engine(manager).services.create("busybox:lab", ["sleep", "3600"], name="stubborn",
                                    constraints=["node.role == worker"], stop_grace_period=600 * 10**9)
    await eventually(lambda: running_on(manager, "stubborn") == {worker.address: 1}, "stubborn running")
    control = machine(EXECUTOR, lab=manager, release=(PLAYBOOKS,))
    ns = control.namespace
    await target_machine(admin, ns, "demo-worker-0", worker.address)
    await control.create([], type="control")
    async with StateHistory(admin, ns) as history, control.agent(await control.configure()):
        await admin.create(LCMCLUSTERSTATES, ns, drain("demo-worker-0", timeout=30))
        failed = await history.wait("sd-demo-worker-0", lambda s: bool(s.get("message")), "the drain's end",
                                    within=240)
        state = LCMClusterState.from_raw(await admin.get(LCMCLUSTERSTATES, ns, "sd-demo-worker-0"))
        target = LCMMachine.from_raw(await admin.get(LCMMACHINES, ns, "demo-worker-0"))
    said = (f"node {worker.address} still runs tasks of service stubborn (1 task) after 30 s of draining; it "
            "stays drained (availability drain)")
    first_line = failed["message"].split("\n")[0]
    assert first_line.endswith(said)  # the failed task's own message comes first, the playbook's log after
    assert target.status.swarm_cordon_drain == "cordondraining"
    assert "service stubborn (1 task)" in (target.status.swarm_cordon_drain_error or "")
    # What the scheduler makes of it once the drain's time is up: the rollout stops, the service named.
    v = view(target)
    assert v is not None
    created = datetime.fromisoformat(str(state.metadata.creation_timestamp).replace("Z", "+00:00"))
    found = trouble(v, state, PlanSettings(drain_time_limit=30), created + timedelta(seconds=31))
    assert found is not None
    assert found.reason == f"drain of demo-worker-0 not done after 30s: {first_line}"
