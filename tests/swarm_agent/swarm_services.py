"""Real swarms for the drain-safety tests and their benchmark: formed directly on lab nodes, a web service
that answers HTTP on its nodes' addresses, a probe counting the answers, and the LCMClusterStates the
scheduler would write.

The swarm is formed through the Docker API (the agents' own join is tested in ``test_lab_swarm``): only the
executor's agent runs, on the first manager. The web service runs busybox ``httpd`` on the node's own network
(``host``): port 8080, or 8081 when another of its tasks already holds 8080 on that node, so two replicas
may share a node, as they do after a drain. A probe round asks every worker on both ports and counts as
answered when any of them answers: the service is up as long as one replica serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import docker
from docker.types import ServiceMode

from agent.adapters.kube import Kube
from agent.api.names import DRAIN_TIMEOUT_ANNOTATION
from agent.daemon.own_machine import LCMMACHINES
from agent.daemon.swarm_executor import LCMCLUSTERSTATES
from testbed.lab.netns import dockerd
from testbed.lab.netns.node import LabNode
from testbed.sim.testing import Recorder, lcm_machine

IMAGE = "busybox:lab"
PORTS = (8080, 8081)
WEB = ("sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && "
       "{ httpd -f -p 8080 -h /tmp/www || exec httpd -f -p 8081 -h /tmp/www; }")
SECOND = 10**9


def engine(node: LabNode) -> docker.DockerClient:
    return docker.DockerClient(base_url=node.docker_host, timeout=30)


def form_swarm(managers: Sequence[LabNode], workers: Sequence[LabNode]) -> None:
    """The first manager initialises; the other managers, then the workers, join it."""
    first = managers[0]
    engine(first).swarm.init(advertise_addr=first.address, listen_addr=f"{first.address}:2377")
    tokens = engine(first).swarm.attrs["JoinTokens"]
    for node, token in [*((m, tokens["Manager"]) for m in managers[1:]),
                        *((w, tokens["Worker"]) for w in workers)]:
        engine(node).swarm.join(remote_addrs=[f"{first.address}:2377"], join_token=token,
                                advertise_addr=node.address, listen_addr=f"{node.address}:2377")


def import_busybox(nodes: Sequence[LabNode], work: Path) -> None:
    tarball = dockerd.busybox_rootfs(work / "rootfs.tar")
    for node in nodes:
        dockerd.import_image(node, tarball, IMAGE)


def swarm_node(manager: LabNode, address: str) -> Any:
    found = [n for n in engine(manager).nodes.list() if n.attrs["Status"]["Addr"] == address]
    assert len(found) == 1, f"no single swarm node at {address}"
    return found[0]


def web_service(manager: LabNode, *, labels: dict[str, str] | None = None) -> Any:
    """Two replicas of the web service on the workers, its tasks stopped within a second."""
    return engine(manager).services.create(
        IMAGE, list(WEB), name="web", mode=ServiceMode("replicated", replicas=2), networks=["host"],
        constraints=["node.role == worker"], stop_grace_period=SECOND, labels=labels or {})


def running_on(manager: LabNode, service_name: str) -> dict[str, int]:
    """Running tasks of the service per node address."""
    addresses = {n.attrs["ID"]: n.attrs["Status"]["Addr"] for n in engine(manager).nodes.list()}
    service = engine(manager).services.get(service_name)
    counts: dict[str, int] = {}
    for task in service.tasks({"desired-state": "running"}):
        if task["Status"]["State"] == "running":
            address = addresses.get(task.get("NodeID", ""), "")
            counts[address] = counts.get(address, 0) + 1
    return counts


async def eventually(check: Callable[[], bool], what: str, within: float = 120.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(0.2)


@dataclass
class Probe:
    """Asks the web service every ``period`` seconds; ``answered`` of ``tried`` rounds got an answer."""

    addresses: Sequence[str]
    period: float = 0.1
    tried: int = 0
    answered: int = 0

    async def round(self, session: aiohttp.ClientSession) -> bool:
        async def ask(url: str) -> bool:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as answer:
                    return answer.status == 200
            return False

        urls = [f"http://{a}:{p}/" for a in self.addresses for p in PORTS]
        return any(await asyncio.gather(*(ask(u) for u in urls)))

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=0.5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                answered = await self.round(session)
                self.tried, self.answered = self.tried + 1, self.answered + answered  # one count per round
                await asyncio.sleep(self.period)

    @contextlib.asynccontextmanager
    async def probing(self) -> AsyncIterator[Probe]:
        task = asyncio.create_task(self.run())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def target_machine(admin: Kube, namespace: str, name: str, address: str) -> None:
    """An LCMMachine whose InternalIP is ``address``: what the executor finds the swarm node by."""
    await admin.create(LCMMACHINES, namespace, lcm_machine(name, namespace))
    addresses = {"status": {"addresses": [{"type": "InternalIP", "address": address}]}}
    await admin.patch(LCMMACHINES, namespace, name, addresses, subresource="status")


def drain(target: str, value: str = "true", *, executor: str = "demo-control-0",
          timeout: int = 600) -> dict[str, Any]:
    """``sd-<target>`` as the scheduler writes it."""
    return {
        "apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMClusterState",
        "metadata": {"name": f"sd-{target}", "labels": {"lcm.mirantis.com/executor": executor},
                     "annotations": {DRAIN_TIMEOUT_ANNOTATION: str(timeout)}},
        "spec": {"clusterName": "demo", "type": "swarm-drain", "arg": target, "value": value}}


class StateHistory(Recorder):
    """Every version of the namespace's LCMClusterStates, as the API committed them."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        super().__init__(kube, LCMCLUSTERSTATES, namespace)

    def statuses(self, name: str) -> list[dict[str, Any]]:
        return [v.get("status") or {} for v in self.versions(name)]

    async def wait(self, name: str, check: Callable[[dict[str, Any]], bool], what: str,
                   within: float = 180.0) -> dict[str, Any]:
        """The first status of ``name`` for which ``check`` holds."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            found = next((s for s in self.statuses(name) if check(s)), None)
            if found is not None:
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{name}: timed out waiting for {what}; statuses {self.statuses(name)}")
            await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Rollout:
    """What a rolling drain of two workers did: each drain's statuses, its time and the probe's count."""

    first: list[dict[str, Any]]
    second: list[dict[str, Any]]
    seconds: float
    """From the first drain's request to the second's end with the service's tasks running again."""
    answered: int
    tried: int


async def rolling_drain(admin: Kube, namespace: str, manager: LabNode, workers: Sequence[LabNode],
                        names: Sequence[str]) -> Rollout:
    """The scheduler's rolling upgrade of two workers as its LCMClusterStates show it, with the executor's
    agent running: drain the first, (its upgrade: until swarm has moved its task), undrain and forget it,
    then drain the second; the web service probed throughout."""
    w0, w1 = (w.address for w in workers)
    probe = Probe([w0, w1])
    async with StateHistory(admin, namespace) as history, probe.probing():
        await eventually(lambda: probe.answered > 0, "the probe's first answer")
        tried, answered, started = probe.tried, probe.answered, time.monotonic()
        first, second = f"sd-{names[0]}", f"sd-{names[1]}"
        await admin.create(LCMCLUSTERSTATES, namespace, drain(names[0]))
        await history.wait(first, lambda s: s.get("value") == "true", "the first worker drained")
        await eventually(lambda: running_on(manager, "web") == {w1: 2}, "its task moved to the other worker")
        await admin.patch(LCMCLUSTERSTATES, namespace, first, {"spec": {"value": "false"}})
        await history.wait(first, lambda s: s.get("value") == "false", "the first worker undrained")
        await admin.delete(LCMCLUSTERSTATES, namespace, first)
        await admin.create(LCMCLUSTERSTATES, namespace, drain(names[1]))
        await history.wait(second, lambda s: s.get("value") == "true", "the second worker drained")
        await eventually(lambda: running_on(manager, "web") == {w0: 2}, "both tasks on the first worker")
        return Rollout(history.statuses(first), history.statuses(second), time.monotonic() - started,
                       probe.answered - answered, probe.tried - tried)
