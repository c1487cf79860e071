"""lcm-scheduler's ``/metrics`` during a rollout: machines by cluster, type and state and the cluster's
progress from its caches, planner runs, writes by kind, leadership; never a machine's name as a label; several
schedulers in one process each with a registry of their own; a refused write counted by its status; and
``--metrics-address`` on a port already taken leaves the scheduler scheduling, without metrics."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from scheduler_harness import eventually, fleet_running, running, scheduler
from test_rollout import _cluster_ready, create_cluster

from agent.adapters.exposition import MetricsServer
from agent.adapters.kube import Kube
from agent.kits.addresses import Address
from regional.planning.liveness import LivenessBook
from regional.scheduler.metrics import AgentsCollector
from testbed.lab.stack.prometheus import Samples, fetch, labelled, parse, value
from testbed.sim.faults import Faults
from testbed.sim.testing import KubeApi

pytestmark = pytest.mark.kube

SCHEDULER = str(Path(sys.executable).with_name("lcm-scheduler"))


async def scraped(server: MetricsServer) -> Samples:
    assert server.bound is not None
    return parse(await asyncio.to_thread(fetch, str(server.bound)))


async def test_a_rollout_shows_in_the_schedulers_metrics(kube_api: KubeApi, kube: Kube) -> None:
    ns = kube_api.namespace
    names = await create_cluster(kube, ns, 2)
    replica = scheduler(kube, ns)
    other = scheduler(kube, ns, identity="scheduler-b")  # a second process's worth, in this one
    servers = [MetricsServer(s.registry, Address("127.0.0.1", 0)) for s in (replica, other)]
    for server in servers:
        assert await server.start()
    try:
        async with running(replica), fleet_running(kube, ns, names):
            await eventually(lambda: _cluster_ready(kube, ns, 3), within=60, what="3 ready")
            samples, standby = await scraped(servers[0]), await scraped(servers[1])
    finally:
        for server in servers:
            await server.stop()
    where = {"namespace": ns, "cluster": "demo"}
    assert value(samples, "lcm_scheduler_machines", **where, state="Ready") == 3
    assert value(samples, "lcm_scheduler_machines", **where, type="control") == 1
    assert value(samples, "lcm_scheduler_machines", **where, type="worker") == 2
    assert value(samples, "lcm_scheduler_cluster_ready_machines", **where) == 3
    assert value(samples, "lcm_scheduler_cluster_requested_machines", **where) == 3
    assert value(samples, "lcm_scheduler_cluster_halted", **where) == 0
    assert value(samples, "lcm_scheduler_cluster_paused", **where) == 0
    assert value(samples, "lcm_scheduler_cluster_release_info", **where, wanted="swarm-1.0.0",
                 applied="swarm-1.0.0") == 1
    assert value(samples, "lcm_scheduler_leader") == 1
    assert value(samples, "lcm_scheduler_plan_duration_seconds_count") >= 1
    assert value(samples, "lcm_scheduler_writes_total", verb="patch", resource="lcmmachines") >= 3
    assert value(samples, "lcm_scheduler_writes_total", verb="patch", resource="lcmclusters/status") >= 1
    label_values = {v for name, _ in samples for labels in labelled(samples, name) for v in labels.values()}
    assert not label_values & set(names), "machine names are never labels"
    # The other scheduler, never started, has figures of its own: no lease, no rollout, no writes.
    assert value(standby, "lcm_scheduler_leader") == 0
    assert value(standby, "lcm_scheduler_writes_total") == 0
    assert labelled(standby, "lcm_scheduler_machines") == []


@pytest.mark.simulator("a write refused with 500 once, on demand")
async def test_a_refused_write_is_counted_by_verb_resource_and_status(
    kube_api: KubeApi, kube: Kube, faults: Faults,
) -> None:
    ns = kube_api.namespace
    names = await create_cluster(kube, ns, 0)
    faults.command({"action": "error", "code": 500, "count": 1, "verb": "patch", "resource": "lcmmachines"})
    replica = scheduler(kube, ns)
    server = MetricsServer(replica.registry, Address("127.0.0.1", 0))
    assert await server.start()
    try:
        async with running(replica), fleet_running(kube, ns, names):
            await eventually(lambda: _cluster_ready(kube, ns, 1), within=60, what="1 ready")
            samples = await scraped(server)
    finally:
        await server.stop()
    assert value(samples, "lcm_scheduler_write_failures_total", verb="patch", resource="lcmmachines",
                 code="500") == 1


async def test_a_metrics_port_in_use_is_said_and_the_scheduler_goes_on(
    kube_api: KubeApi, kube: Kube, held_port: int, tmp_path: Path,
) -> None:
    ns = kube_api.namespace
    names = await create_cluster(kube, ns, 0)
    log_path = tmp_path / "scheduler.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            SCHEDULER, "run", "--kubeconfig", str(kube_api.kubeconfig_path), "--namespace", ns,
            "--metrics-address", f"127.0.0.1:{held_port}", stdout=asyncio.subprocess.DEVNULL, stderr=log)
        try:
            async with fleet_running(kube, ns, names):
                await eventually(lambda: _cluster_ready(kube, ns, 1), within=90, what="1 ready")
            assert proc.returncode is None, "the scheduler runs on"
        finally:
            proc.terminate()
            code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0
    errors = [e for e in map(json.loads, log_path.read_text().splitlines()) if e["level"] == "ERROR"]
    assert [e.get("address") for e in errors] == [f"127.0.0.1:{held_port}"], errors


def test_agents_are_counted_reachable_or_not_by_namespace_as_the_liveness_book_judges_them() -> None:
    book = LivenessBook(grace=1.5, settle=0.0, default_interval=10.0)
    clock = [0.0]
    registry = CollectorRegistry()
    registry.register(AgentsCollector(book, clock=lambda: clock[0]))
    book.heard(("east", "a"), 0.0)
    book.heard(("east", "b"), 0.0)
    book.heard(("west", "c"), 0.0)
    book.heard(("west", "d"), 0.0, online=False, reason="lost")  # its last will
    clock[0] = 1.0
    samples = parse(generate_latest(registry).decode())
    assert value(samples, "lcm_scheduler_agents", namespace="east", reachable="true") == 2
    assert value(samples, "lcm_scheduler_agents", namespace="west", reachable="true") == 1
    assert value(samples, "lcm_scheduler_agents", namespace="west", reachable="false") == 1
    book.heard(("east", "a"), 14.0)
    clock[0] = 16.0  # b silent past 1.5 intervals
    samples = parse(generate_latest(registry).decode())
    assert value(samples, "lcm_scheduler_agents", namespace="east", reachable="true") == 1
    assert value(samples, "lcm_scheduler_agents", namespace="east", reachable="false") == 1
