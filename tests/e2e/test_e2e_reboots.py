"""Rolling reboots on systemd-nspawn machines, as production runs them (kube-apiserver, lcm-scheduler and
Mosquitto on the host; one control and two worker machines made nodes by cloud-init): a
GracefulRebootRequest for the whole cluster reboots every machine for real (its systemd goes down, nspawn
exits 133, the lab starts it again, its boot id changes) one after another, workers drained first, while a
replicated service keeps answering a probe; then a reboot that never comes back (the machine is held down)
halts the rollout within the cluster's ``rebootTimeoutSeconds``, and the rollout goes on once the machine is
back; last, a worker put in maintenance (``spec.maintenance``) is drained on the swarm while the service
answers from the other worker, held there, and active again once maintenance ends.

The service and its probe are ``testbed.lab.stack.service_probe``'s: the probe is a client on the host (it
runs no Docker Engine, so no container there) asking the service on either worker's address every 0.2 s,
as a load balancer in front of the replicas would; it counts requests answered / tried. Each stage's wall
time and the probe's counts are printed (``bench/reboots.py`` takes the median of several rolling reboots).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from e2e_scenario import CONTROL, NS, WORKER_0, WORKER_1, boot, staged_stack, swarm_nodes, wait_for
from stages import stage

from agent.adapters.kube import Kube
from testbed.cli.demo import missing_prerequisites
from testbed.lab.stack.machines import MachineNodes
from testbed.lab.stack.rolling_reboot import REQUESTS, in_reboot, request_body, request_gone, rolling_reboot
from testbed.lab.stack.service_probe import BUSYBOX, answers, start_service
from testbed.lab.stack.stack import LCMCLUSTERS, LCMCLUSTERSTATES, LCMMACHINES, Rollout, Stack, StackSettings

missing = missing_prerequisites("machines")
pytestmark = [pytest.mark.machines,
              pytest.mark.skipif(bool(missing), reason="cannot run nspawn machines: " + "; ".join(missing)),
              pytest.mark.skipif(not BUSYBOX.is_file(),
                                 reason="/bin/busybox (busybox-static) is missing: no image for the service")]

PATIENCE = 1500.0
"""Seconds a stage may take (the first includes three machines booting and installing the agent)."""
DOWN_LIMIT = 60
"""The cluster's ``rebootTimeoutSeconds`` for the machine that stays down."""


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, Kube]]:
    async with staged_stack(StackSettings(tmp_path / "demo"), "machines") as running:
        yield running


async def _boot_ids(nodes: MachineNodes) -> dict[str, str]:
    return {name: (await nodes.machine(name).exec(["cat", "/proc/sys/kernel/random/boot_id"]))[1].strip()
            for name in (CONTROL, WORKER_0, WORKER_1)}


async def test_a_rolling_reboot_keeps_the_service_answering_and_a_machine_that_stays_down_halts_it(
    stack: tuple[Stack, Kube],
) -> None:
    lab, kube = stack
    nodes = lab.nodes
    assert isinstance(nodes, MachineNodes)
    await boot(lab, kube, PATIENCE)
    probe = await start_service(nodes, CONTROL, [WORKER_0, WORKER_1])
    before = await _boot_ids(nodes)
    boots = {name: nodes.machine(name).boots() for name in before}
    probing = asyncio.ensure_future(probe.run())
    try:
        with stage("rolling reboot: GracefulRebootRequest for 3 machines"):
            run = await rolling_reboot(lab, kube, [], "swarm-1.0.0", within=PATIENCE)
    except (RuntimeError, TimeoutError):
        await _print_agent_journals(nodes)  # the machines go with the teardown
        raise
    finally:
        probing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probing
    tried, answered = len(probe.log), probe.answered
    print(f"e2e reboot probe: {answered}/{tried} answered ({answered / max(tried, 1):.1%})", flush=True)

    after = await _boot_ids(nodes)
    for name in before:  # each machine really rebooted, once
        assert after[name] != before[name], name
        assert nodes.machine(name).boots() == boots[name] + 1, name
    assert run.most == 1  # one machine at a time (maxWorkerUpgradeCount 1, control machines alone)
    windows = run.windows
    assert windows[CONTROL][1] < min(windows[WORKER_0][0], windows[WORKER_1][0])  # control machines first
    for name in (WORKER_0, WORKER_1):  # the service answered while each worker was drained and down
        answered_then, tried_then = probe.between(*windows[name])
        print(f"e2e reboot probe while {name} rebooted: {answered_then}/{tried_then} answered", flush=True)
        assert answered_then > 0, name
    def cleared(rollout: Rollout) -> bool:
        return not any("reboot" in m["status"] for m in rollout.machines.values())

    final = await _look_until(lab, kube, cleared, "every agent to clear its status.reboot")
    for name, machine in final.machines.items():
        assert machine["status"]["state"] == "Ready", name
        assert not machine["spec"].get("rebootRequired"), name

    await _wait_undrained(kube)
    swarm = await swarm_nodes(lab)
    for name in (WORKER_0, WORKER_1):
        assert (swarm[name]["Status"], swarm[name]["Availability"]) == ("Ready", "Active"), name

    async def serving_everywhere() -> bool:  # a replica back on each rebooted worker
        return all([await answers(address) for address in probe.addresses])

    await wait_for(serving_everywhere, "the service answering on both workers again")

    await _a_machine_that_stays_down_halts_the_rollout(lab, kube, nodes)
    await _a_worker_in_maintenance_is_drained_and_comes_back(lab, kube, probe.addresses[0])


async def _a_machine_that_stays_down_halts_the_rollout(lab: Stack, kube: Kube, nodes: MachineNodes) -> None:
    await kube.patch(LCMCLUSTERS, NS, "demo", {"spec": {"rebootTimeoutSeconds": DOWN_LIMIT}})
    down = nodes.machine(WORKER_0)
    down.hold_down()
    other_boots = nodes.machine(WORKER_1).boots()
    with stage(f"a reboot that does not come back: halted after {DOWN_LIMIT}s"):
        await kube.create(REQUESTS, NS, request_body(lab, [WORKER_0, WORKER_1]))
        rollout = await _look_until(lab, kube, lambda r: bool(r.stuck()), "the rollout to halt")
    assert f"{WORKER_0}: reboot not back after {DOWN_LIMIT}s" in rollout.stuck()
    assert rollout.machines[WORKER_0]["status"]["lcmOperationStuck"] is True
    assert down.nspawn_pid() is None  # it is really down
    drains = {s["metadata"]["name"]: s["spec"]["value"]
              for s in (await kube.list_objects(LCMCLUSTERSTATES, NS))["items"]}
    assert drains == {f"sd-{WORKER_0}": "true"}  # still drained: it never came back
    assert in_reboot(rollout) == {WORKER_0}  # the next machine did not start
    assert nodes.machine(WORKER_1).boots() == other_boots

    with stage("the machine back: the rollout goes on and ends"):
        down.hold_down(False)
        down.boot()
        await _look_until(lab, kube, lambda r: not r.stuck() and not in_reboot(r) and r.ready("swarm-1.0.0"),
                          "the rollout to end", gone=True)
    assert nodes.machine(WORKER_1).boots() == other_boots + 1


async def _a_worker_in_maintenance_is_drained_and_comes_back(lab: Stack, kube: Kube, other: str) -> None:
    """``other``: the address of the worker that stays in service."""
    def in_maintenance(rollout: Rollout) -> bool:
        return rollout.machines[WORKER_1]["status"].get("maintenance") is True

    with stage("maintenance: a worker drained and held, then back"):
        await kube.patch(LCMMACHINES, NS, WORKER_1, {"spec": {"maintenance": True}})
        rollout = await _look_until(lab, kube, in_maintenance, f"{WORKER_1} in maintenance")
        assert (await swarm_nodes(lab))[WORKER_1]["Availability"] == "Drain"
        assert rollout.machines[WORKER_1]["status"]["waiting"]["reason"] == "Maintenance"
        assert await answers(other)  # the service runs on the worker still in service
        await kube.patch(LCMMACHINES, NS, WORKER_1, {"spec": {"maintenance": False}})

        async def active() -> bool:
            return (await swarm_nodes(lab))[WORKER_1]["Availability"] == "Active"

        await wait_for(active, f"{WORKER_1} active on the swarm again", within=PATIENCE)
        await _look_until(lab, kube, lambda r: not in_maintenance(r) and r.ready("swarm-1.0.0"),
                          f"{WORKER_1} out of maintenance")
        await _wait_undrained(kube)  # the undrain's state is deleted once the executor reports it done


async def _wait_undrained(kube: Kube) -> None:
    async def undrained() -> bool:
        return (await kube.list_objects(LCMCLUSTERSTATES, NS))["items"] == []

    await wait_for(undrained, "every drain state deleted")


async def _print_agent_journals(nodes: MachineNodes) -> None:
    for name in (CONTROL, WORKER_0, WORKER_1):
        machine = nodes.machine(name)
        journal = await machine.journal(lines=60) if machine.leader() is not None else "(not running)"
        print(f"--- {name}: {machine.boots()} boots; lcm-agent's journal:\n{journal}", flush=True)


async def _look_until(
    lab: Stack, kube: Kube, done: Callable[[Rollout], bool], what: str, *, gone: bool = False,
) -> Rollout:
    """The look at the cluster once ``done`` holds (and the reboot request is gone, when ``gone``)."""
    deadline = time.monotonic() + PATIENCE
    while True:
        rollout = await lab.look(kube)
        if done(rollout) and (not gone or await request_gone(lab, kube)):
            return rollout
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {rollout.summary()}"
        await asyncio.sleep(1)
