"""The scheduler under test against the API server over HTTPS (real, or simulated), with simulated agents.

Objects are created as the other parties would (a release engineer's ClusterRelease, an operator's
LCMCluster, a provider's LCMMachines); ``SimulatedFleet`` (testbed.fake_agents) plays the machines' agents; a
``Scheduler`` runs in this process with timings short enough for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from agent.adapters.kube import Kube, Resource
from agent.api.models import API_VERSION, GROUP, KAAS_API_VERSION, KAAS_GROUP, VERSION
from regional.scheduler.controller import PlanFunction
from regional.scheduler.leadership import LeaseSettings
from regional.scheduler.runtime import Scheduler
from regional.scheduler.settings import SchedulerSettings, Throttle
from testbed.fake_agents import Script, SimulatedFleet, SimulatedFleetSettings, succeed

MACHINES = Resource(GROUP, VERSION, "lcmmachines")
CLUSTERS = Resource(GROUP, VERSION, "lcmclusters")
CLUSTER_STATES = Resource(GROUP, VERSION, "lcmclusterstates")
RELEASES = Resource(KAAS_GROUP, VERSION, "clusterreleases", namespaced=False)
LEASES = Resource("coordination.k8s.io", "v1", "leases")
EVENTS = Resource("", "v1", "events")
AGENT = {"version": "0.1.0", "downloadURL": "http://mirror.test/lcm_agent-0.1.0-py3-none-any.whl",
         "sha256": "0" * 64}
"""The agent build the simulated agents report (agent.__version__), so no machine waits for an upgrade."""


def settings(namespace: str, identity: str = "scheduler-a", *, lease_duration: int = 15,
             **overrides: Any) -> SchedulerSettings:
    """Writes limited only loosely; client-go's lease timings unless a test asks for a shorter lease, which
    is then renewed at the same proportions (renew deadline 2/3 of it, a retry every 1/8)."""
    lease = LeaseSettings(name="lcm-scheduler", namespace=namespace, identity=identity,
                          lease_duration=lease_duration, renew_deadline=lease_duration * 2 / 3,
                          retry_period=lease_duration / 8)
    return SchedulerSettings(**{"namespace": namespace, "writes": Throttle(200.0, 200), "lease": lease,
                                **overrides})


def item(name: str, phase: str, version: str = "1.0.0", **params: str) -> dict[str, Any]:
    return {"runner": "bash", "name": name, "version": version, "phase": phase,
            "params": {"script": f"{phase}/{name}.sh", **params}}


def release_body(name: str, version: str, *, upgrade_from: Iterable[str] = (),
                 item_version: str = "1.0.0") -> dict[str, Any]:
    """A small release in the shape of the sample one: a prepare, a deploy (swarm) and a reconfigure item."""
    common = [item("preflight", "prepare", item_version), item("docker-engine", "deploy", item_version)]
    tail = [item("node-labels", "reconfigure", item_version)]
    return {
        "apiVersion": KAAS_API_VERSION, "kind": "ClusterRelease", "metadata": {"name": name},
        "spec": {"version": version, "agent": AGENT, "upgradeFrom": list(upgrade_from), "machineTypes": {
            "control": [*common, item("swarm-init", "deploy", item_version), *tail],
            "worker": [*common, item("swarm-join", "deploy", item_version, role="worker"), *tail]}}}


def cluster_body(namespace: str, release: str, name: str = "demo", **spec: Any) -> dict[str, Any]:
    metadata = {"name": name, "namespace": namespace}
    return {"apiVersion": API_VERSION, "kind": "LCMCluster", "metadata": metadata,
            "spec": {"release": release, **spec}}


def machine_body(namespace: str, name: str, type_: str, cluster: str = "demo",
                 index: int | None = None, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if index is not None:
        metadata["annotations"] = {"lcm.mirantis.com/index": str(index)}
    return {"apiVersion": API_VERSION, "kind": "LCMMachine", "metadata": metadata,
            "spec": {"clusterName": cluster, "type": type_, "interface": "eth0", **spec}}


async def eventually(check: Callable[[], Awaitable[bool]] | Callable[[], bool], within: float = 20.0,
                     what: str = "condition") -> None:
    """Poll ``check`` every 50 ms until it holds; fail with ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(scheduler: Scheduler, *, stop_within: float = 10) -> AsyncIterator[asyncio.Task[None]]:
    """The scheduler runs for the block, then stops as on SIGTERM (and must stop cleanly within
    ``stop_within`` seconds)."""
    stopping = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stopping))
    try:
        yield task
    finally:
        stopping.set()
        await asyncio.wait_for(task, stop_within)


@contextlib.asynccontextmanager
async def fleet_running(kube: Kube, namespace: str, names: Iterable[str], *, script: Script = succeed,
                        settings: SimulatedFleetSettings | None = None) -> AsyncIterator[SimulatedFleet]:
    fleet = SimulatedFleet(kube, namespace, names, script=script, settings=settings)
    task = asyncio.create_task(fleet.run())
    try:
        yield fleet
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def scheduler(kube: Kube, namespace: str, plan: PlanFunction | None = None, **overrides: Any) -> Scheduler:
    chosen = settings(namespace, **overrides)
    return Scheduler(kube, chosen) if plan is None else Scheduler(kube, chosen, plan=plan)
