"""Rolling reboots on systemd-nspawn machines, as production runs them (kube-apiserver, lcm-scheduler and
Mosquitto on the host; one control and two worker machines made nodes by cloud-init): a
GracefulRebootRequest for the whole cluster reboots every machine for real (its systemd goes down, nspawn
exits 133, the lab starts it again, its boot id changes) one after another, workers drained first, while a
replicated service keeps answering a probe; then a reboot that never comes back (the machine is held down)
halts the rollout within the cluster's ``rebootTimeoutSeconds``, and the rollout goes on once the machine is
back.

The probe is a client on the host (the host runs no Docker Engine: nothing there can run a container) that
asks the service's published port through the routing mesh every 0.2 s, on one worker's address and, when
that fails, on the other's, as a client behind a load balancer would; it counts requests answered / tried.
Each stage's wall time and the probe's counts are printed (bench/reboots.py takes the median of runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import tarfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e_scenario import CONTROL, NS, WORKER_0, WORKER_1, boot, staged_stack, swarm_nodes
from stages import stage

from agent.adapters.kube import Kube, KubeError, Resource
from testbed.cli.demo import missing_prerequisites
from testbed.lab.stack.machines import MachineNodes
from testbed.lab.stack.stack import LCMCLUSTERS, LCMCLUSTERSTATES, Rollout, Stack, StackSettings

BUSYBOX = Path("/bin/busybox")
missing = missing_prerequisites("machines")
pytestmark = [pytest.mark.machines,
              pytest.mark.skipif(bool(missing), reason="cannot run nspawn machines: " + "; ".join(missing)),
              pytest.mark.skipif(not BUSYBOX.is_file(),
                                 reason="/bin/busybox (busybox-static) is missing: no image for the service")]

PATIENCE = 1500.0
"""Seconds a stage may take (the first includes three machines booting and installing the agent)."""
REQUESTS = Resource("kaas.mirantis.com", "v1alpha1", "gracefulrebootrequests")
GRACEFUL = "lcm.mirantis.com/graceful-reboot"
PORT = 8080
SERVE = (f"/bin/busybox mkdir -p /www && echo ok > /www/index.html && "
         f"exec /bin/busybox httpd -f -p {PORT} -h /www")
DOWN_LIMIT = 60
"""The cluster's ``rebootTimeoutSeconds`` for the machine that stays down."""


@dataclass
class Probe:
    """Asks the service once every ``period``; ``log`` holds (time, answered) per request."""

    addresses: list[str]
    period: float = 0.2
    log: list[tuple[float, bool]] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return sum(ok for _, ok in self.log)

    def answered_between(self, start: float, end: float) -> int:
        return sum(ok for at, ok in self.log if start <= at <= end)

    async def run(self) -> None:
        turn = 0
        while True:
            first, second = self.addresses[turn % 2], self.addresses[(turn + 1) % 2]
            ok = await _get(first) or await _get(second)
            self.log.append((time.monotonic(), ok))
            turn += 1
            await asyncio.sleep(self.period)


async def _get(address: str) -> bool:
    try:
        async with asyncio.timeout(1.0):
            reader, writer = await asyncio.open_connection(address, PORT)
            writer.write(b"GET /index.html HTTP/1.0\r\n\r\n")
            body = await reader.read()
            writer.close()
    except (OSError, TimeoutError):
        return False
    return body.startswith(b"HTTP/1.0 200") and body.rstrip().endswith(b"ok")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, Kube]]:
    async with staged_stack(StackSettings(tmp_path / "demo"), "machines") as running:
        yield running


def _busybox_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
    return buffer.getvalue()


def _request_body(machines: list[str]) -> dict[str, Any]:
    return {"apiVersion": "kaas.mirantis.com/v1alpha1", "kind": "GracefulRebootRequest",
            "metadata": {"name": "demo", "namespace": NS}, "spec": {"machines": machines}}


async def _request_gone(kube: Kube) -> bool:
    try:
        await kube.get(REQUESTS, NS, "demo")
    except KubeError as exc:
        if exc.status == 404:
            return True
        raise
    return False


def _in_reboot(rollout: Rollout) -> set[str]:
    return {n for n, m in rollout.machines.items() if (m["metadata"].get("annotations") or {}).get(GRACEFUL)}


async def _boot_ids(nodes: MachineNodes) -> dict[str, str]:
    return {name: (await nodes.machine(name).exec(["cat", "/proc/sys/kernel/random/boot_id"]))[1].strip()
            for name in (CONTROL, WORKER_0, WORKER_1)}


async def _start_service(stack: Stack, nodes: MachineNodes) -> Probe:
    image = _busybox_tar()
    for name in (CONTROL, WORKER_0, WORKER_1):  # no registry: every engine imports the image itself
        await nodes.machine(name).exec(["docker", "import", "-", "lab-busybox"], stdin=image)
    await stack.docker(CONTROL, "service", "create", "--detach", "--name", "web", "--replicas", "2",
                       "--replicas-max-per-node", "1", "--publish", f"published={PORT},target={PORT}",
                       "lab-busybox", "/bin/busybox", "sh", "-c", SERVE)
    addresses = [a for name in (WORKER_0, WORKER_1) if (a := _address(nodes, name))]
    probe = Probe(addresses)
    deadline = time.monotonic() + 300
    while not all([await _get(a) for a in addresses]):
        if time.monotonic() > deadline:
            pytest.fail(f"the service never answered: {await stack.docker(CONTROL, 'service', 'ps', 'web')}")
        await asyncio.sleep(1)
    return probe


def _address(nodes: MachineNodes, name: str) -> str:
    record = nodes.machine(name).record
    assert record is not None
    return record.address


async def test_a_rolling_reboot_keeps_the_service_answering_and_a_machine_that_stays_down_halts_it(
    stack: tuple[Stack, Kube],
) -> None:
    lab, kube = stack
    nodes = lab.nodes
    assert isinstance(nodes, MachineNodes)
    await boot(lab, kube, PATIENCE)
    probe = await _start_service(lab, nodes)
    before = await _boot_ids(nodes)
    boots = {name: nodes.machine(name).boots() for name in before}
    windows: dict[str, list[float]] = {}
    most = 0
    probing = asyncio.ensure_future(probe.run())
    try:
        with stage("rolling reboot: GracefulRebootRequest for 3 machines"):
            await kube.create(REQUESTS, NS, _request_body([]))
            deadline = time.monotonic() + PATIENCE
            while True:
                rollout = await lab.look(kube)
                rebooting = _in_reboot(rollout)
                most = max(most, len(rebooting))
                now = time.monotonic()
                for name in rebooting:
                    windows.setdefault(name, [now, now])[1] = now
                assert not rollout.stuck(), rollout.stuck()
                if await _request_gone(kube) and not rebooting and rollout.ready("swarm-1.0.0"):
                    break
                assert time.monotonic() < deadline, f"the rolling reboot did not end: {rollout.summary()}"
                await asyncio.sleep(0.5)
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
    assert most == 1  # one machine at a time (maxWorkerUpgradeCount 1, control machines alone)
    assert windows[CONTROL][1] < min(windows[WORKER_0][0], windows[WORKER_1][0])  # control machines first
    for name in (WORKER_0, WORKER_1):  # the service answered while each worker was drained and down
        assert probe.answered_between(*windows[name]) > 0, name
    final = await lab.look(kube)
    for name, machine in final.machines.items():
        assert machine["status"]["state"] == "Ready", name
        assert "reboot" not in machine["status"], name
        assert not machine["spec"].get("rebootRequired"), name
    assert (await kube.list_objects(LCMCLUSTERSTATES, NS))["items"] == []
    swarm = await swarm_nodes(lab)
    for name in (WORKER_0, WORKER_1):
        assert (swarm[name]["Status"], swarm[name]["Availability"]) == ("Ready", "Active"), name

    await _a_machine_that_stays_down_halts_the_rollout(lab, kube, nodes)


async def _a_machine_that_stays_down_halts_the_rollout(lab: Stack, kube: Kube, nodes: MachineNodes) -> None:
    await kube.patch(LCMCLUSTERS, NS, "demo", {"spec": {"rebootTimeoutSeconds": DOWN_LIMIT}})
    down = nodes.machine(WORKER_0)
    down.hold_down()
    other_boots = nodes.machine(WORKER_1).boots()
    with stage(f"a reboot that does not come back: halted after {DOWN_LIMIT}s"):
        await kube.create(REQUESTS, NS, _request_body([WORKER_0, WORKER_1]))
        rollout = await _look_until(lab, kube, lambda r: bool(r.stuck()), "the rollout to halt")
    assert f"{WORKER_0}: reboot not back after {DOWN_LIMIT}s" in rollout.stuck()
    assert rollout.machines[WORKER_0]["status"]["lcmOperationStuck"] is True
    assert down.nspawn_pid() is None  # it is really down
    drains = {s["metadata"]["name"]: s["spec"]["value"]
              for s in (await kube.list_objects(LCMCLUSTERSTATES, NS))["items"]}
    assert drains == {f"sd-{WORKER_0}": "true"}  # still drained: it never came back
    assert _in_reboot(rollout) == {WORKER_0}  # the next machine did not start
    assert nodes.machine(WORKER_1).boots() == other_boots

    with stage("the machine back: the rollout goes on and ends"):
        down.hold_down(False)
        down.boot()
        await _look_until(lab, kube, lambda r: not r.stuck() and not _in_reboot(r) and r.ready("swarm-1.0.0"),
                          "the rollout to end", request_gone=kube)
    assert nodes.machine(WORKER_1).boots() == other_boots + 1


async def _look_until(
    lab: Stack, kube: Kube, done: Callable[[Rollout], bool], what: str, *, request_gone: Kube | None = None,
) -> Rollout:
    deadline = time.monotonic() + PATIENCE
    while True:
        rollout = await lab.look(kube)
        if done(rollout) and (request_gone is None or await _request_gone(request_gone)):
            return rollout
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {rollout.summary()}"
        await asyncio.sleep(1)
