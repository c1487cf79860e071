"""A fleet's first deploy: 1,000 simulated agents, one scheduler, one API server, all on this machine; on the
API simulator and on the real control plane (etcd, kube-apiserver, kube-controller-manager) in one run.

Three parts, as in production each has its own processes: the API server (``lcmctl sim serve``, or
``testbed.kube``'s control plane, built on first use), the scheduler
(``lcm-scheduler run``, the real planner) and this one, which plays the provider (creates the LCMMachines
before the clock starts) and the machines: ``testbed.fake_agents`` agents, one watch and the real agent's
decisions and status writes each, sharing one connection pool. Items "run" instantly: the figure is the
control plane's own cost, from agents and scheduler starting to the LCMCluster's status reporting every
machine Ready on the release.

Printed per run and as the median of ``--runs``: wall time against the budget (DESIGN.md: all Ready within
60 s on 2 cores), and API writes per machine by writer: agents' status writes (registration, started,
finished), the scheduler's writes by kind, its Events.

    .venv/bin/python bench/fleet.py [--servers sim,kube] [--machines 1000] [--runs 3] [--qps 200]
                                    [--burst 400]

The CPU line names each process: on the real server ``kube-apiserver``, ``etcd`` and
``kube-controller-manager`` apart, so what limits a run over budget is visible.

Each run works in its own folder: the scheduler's log, the simulator's (or the control plane's ``kube/logs``),
the simulated agents' log and the simulator's database. A run that passes removes it; a run that fails
(times out, or any error) keeps it, adds ``state.json`` (the cluster and every machine as the server holds
them, beside what each simulated agent last saw and wrote) and prints where it is, then the benchmark stops
with exit code 2. ``--logs DIR`` puts the run folders under DIR (default: the system's temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from sim_throughput import NAMESPACES, free_port, wait_ready

from agent.adapters.kube import Kube, KubeError, Resource, connect
from agent.api.crds import crd_paths
from agent.api.models import API_VERSION, GROUP, KAAS_API_VERSION, KAAS_GROUP, VERSION
from testbed.fake_agents import SimulatedFleet, fleet_client
from testbed.kube.build import ensure_built
from testbed.kube.plane import ControlPlane, PlaneSettings

BUDGET_SECONDS = 60.0
NS = "fleet"
MACHINES = Resource(GROUP, VERSION, "lcmmachines")
CLUSTERS = Resource(GROUP, VERSION, "lcmclusters")
RELEASES = Resource(KAAS_GROUP, VERSION, "clusterreleases", namespaced=False)
ITEMS = (("preflight", "prepare"), ("sysctl", "prepare"), ("packages", "prepare"),
         ("docker-engine", "deploy"), ("swarm", "deploy"),
         ("daemon-config", "reconfigure"), ("node-labels", "reconfigure"))
"""The sample release's seven items per machine type (``swarm`` is swarm-init or swarm-join)."""


def release() -> dict[str, Any]:
    def items(swarm: str) -> list[dict[str, Any]]:
        return [{"runner": "ansible", "name": swarm if name == "swarm" else name, "version": "1.0.0",
                 "phase": phase, "params": {"playbook": f"{phase}/{name}.yml"}} for name, phase in ITEMS]

    return {"apiVersion": KAAS_API_VERSION, "kind": "ClusterRelease", "metadata": {"name": "swarm-1.0.0"},
            "spec": {"version": "1.0.0", "agent": {"version": "0.1.0", "sha256": "0" * 64,
                                                   "downloadURL": "http://mirror.bench/lcm_agent-0.1.0.whl"},
                     "machineTypes": {"control": items("swarm-init"), "worker": items("swarm-join")}}}


def machine(name: str, type_: str, index: int) -> dict[str, Any]:
    annotations = {"lcm.mirantis.com/index": str(index)}
    return {"apiVersion": API_VERSION, "kind": "LCMMachine",
            "metadata": {"name": name, "namespace": NS, "annotations": annotations},
            "spec": {"clusterName": "fleet", "type": type_, "interface": "eth0"}}


async def provide(kube: Kube, count: int, budget: int) -> list[str]:
    """The objects a provider and an operator would have made: release, cluster, machines (1 control)."""
    with contextlib.suppress(KubeError):
        await kube.create(NAMESPACES, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    await kube.create(RELEASES, "", release())
    await kube.create(CLUSTERS, NS, {
        "apiVersion": API_VERSION, "kind": "LCMCluster", "metadata": {"name": "fleet", "namespace": NS},
        "spec": {"release": "swarm-1.0.0", "maxWorkerPrepareCount": budget, "maxWorkerDeployCount": budget}})
    names = [f"m{i:04d}" for i in range(count)]
    pending = iter(enumerate(names))

    async def creator() -> None:
        for index, name in pending:
            await kube.create(MACHINES, NS, machine(name, "control" if index == 0 else "worker", index))

    await asyncio.gather(*(creator() for _ in range(32)))
    return names


@dataclass
class Run:
    seconds: float
    machines: int
    agent_writes: Counter[str]
    cpu: dict[str, float]
    """CPU seconds each process used during the run: where the two cores went."""
    scheduler: dict[str, Any] = field(default_factory=dict)

    def per_machine(self, count: float) -> str:
        return f"{count / self.machines:.2f}"


async def all_ready(kube: Kube, count: int) -> None:
    """Until the cluster's status says every machine is Ready on the release (what an operator checks)."""
    while True:
        status = (await kube.get(CLUSTERS, NS, "fleet")).get("status", {})
        if status.get("readyNodes") == count and status.get("release") == "swarm-1.0.0":
            return
        await asyncio.sleep(0.25)


@contextlib.asynccontextmanager
async def serving(server: str, tmp: Path) -> AsyncIterator[tuple[Path, dict[str, psutil.Process]]]:
    """The API server of kind ``server`` ("sim" or "kube"): its admin kubeconfig and its processes."""
    if server == "kube":
        plane = ControlPlane(PlaneSettings(tmp / "kube", crds=crd_paths(), die_with_parent=True),
                             ensure_built(lambda line: print(line, flush=True)))
        await plane.start()
        try:
            yield plane.kubeconfig_path, {name: psutil.Process(pid) for name, pid in plane.pids().items()}
        finally:
            plane.stop()
        return
    kubeconfig = tmp / "kubeconfig"
    sim_cmd = [str(Path(sys.executable).with_name("lcmctl")), "sim", "serve", "--port", str(free_port()),
               "--state-dir", str(tmp), "--kubeconfig", str(kubeconfig)]
    with (tmp / "simulator.log").open("wb") as log:
        sim = await asyncio.create_subprocess_exec(*sim_cmd, stdout=log, stderr=log)
    try:
        await wait_ready(kubeconfig, sim, time.monotonic() + 60)
        yield kubeconfig, {"simulator": psutil.Process(sim.pid)}
    finally:
        sim.terminate()
        await asyncio.wait_for(sim.wait(), 30)


async def one_run(args: argparse.Namespace, server: str, tmp: Path) -> Run:
    log_path = tmp / "scheduler.log"
    async with serving(server, tmp) as (kubeconfig, servers), await connect(kubeconfig=kubeconfig) as admin:
        names = await provide(admin, args.machines, args.budget or args.machines)
        kube = await fleet_client(kubeconfig, connections=args.machines + 64)
        async with kube:
            fleet = SimulatedFleet(kube, NS, names)
            with log_path.open("wb") as log:
                started = time.monotonic()
                scheduler = await asyncio.create_subprocess_exec(
                    str(Path(sys.executable).with_name("lcm-scheduler")), "run", "--kubeconfig",
                    str(kubeconfig), "--namespace", NS, "--qps", str(args.qps),
                    "--burst", str(args.burst), "--plan-duty", str(args.plan_duty),
                    stdout=asyncio.subprocess.DEVNULL, stderr=log)
                agents = asyncio.create_task(fleet.run())
                processes = {**servers, "scheduler": psutil.Process(scheduler.pid),
                             "agents": psutil.Process()}
                before = {name: _cpu(p) for name, p in processes.items()}
                try:
                    await asyncio.wait_for(all_ready(admin, args.machines), args.timeout)
                    seconds = time.monotonic() - started
                    cpu = {name: _cpu(p) - before[name] for name, p in processes.items()}
                except BaseException:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(dump_state(admin, fleet, tmp / "state.json"), 300)
                    raise
                finally:
                    agents.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await agents
                    scheduler.send_signal(signal.SIGTERM)
                    await asyncio.wait_for(scheduler.wait(), 30)
    return Run(seconds, args.machines, fleet.counts, cpu, _summary(log_path))


async def dump_state(admin: Kube, fleet: SimulatedFleet, path: Path) -> None:
    """What a failed run left behind: the server's cluster and machines, and each simulated agent's view
    (the version it last saw, the state it last wrote), so a machine stuck on either side can be told."""
    cluster = await admin.get(CLUSTERS, NS, "fleet")
    machines = (await admin.list_objects(MACHINES, NS)).get("items", [])
    agents = {name: {"wrote_state": agent.state,
                     "seen_version": agent.latest.metadata.resource_version if agent.latest else None}
              for name, agent in fleet.agents.items()}
    state = {"cluster": cluster, "machines": machines, "agents": agents, "writes": fleet.counts}
    await asyncio.to_thread(path.write_text, json.dumps(state, indent=1))


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _summary(log_path: Path) -> dict[str, Any]:
    """The scheduler's closing log line: its writes by kind, plans, planner time, Events."""
    for line in reversed(log_path.read_text().splitlines()):
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("msg") == "stopped":
                return dict(entry)
    return {}


def report(run: Run, label: str) -> None:
    agent = run.agent_writes
    agent_total = agent["registration"] + agent["started"] + agent["finished"]
    writes = Counter(run.scheduler.get("writes", {}))
    superseded = writes.pop("superseded", 0)
    sched_total = sum(writes.values())
    print(f"{label}: {run.seconds:6.1f} s to all {run.machines} Ready  "
          f"({(agent_total + sched_total) / run.seconds:.0f} writes/s)")
    kinds = ", ".join(f"{kind} {run.per_machine(agent[kind])}" for kind in ("registration", "started",
                                                                           "finished"))
    print(f"  agent status writes per machine: {run.per_machine(agent_total)} ({kinds}); "
          f"{agent['overtaken']} answers arrived after a newer version (kept the newer)")
    kinds = ", ".join(f"{kind} {run.per_machine(n)}" for kind, n in sorted(writes.items()))
    print(f"  scheduler writes per machine: {run.per_machine(sched_total)} ({kinds}); "
          f"{superseded} planned writes dropped as already done")
    cpu = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in run.cpu.items())
    print(f"  CPU: {cpu} (of {2 * run.seconds:.0f} core-seconds)")
    terms = int(run.scheduler.get("terms", 1))
    print(f"  scheduler: {run.scheduler.get('plans', '?')} plans, {run.scheduler.get('plan_seconds', '?')} s "
          f"in the planner; events {run.scheduler.get('events_sent', '?')} sent, "
          f"{run.scheduler.get('events_dropped', '?')} dropped; leadership terms {terms}"
          + (" (renewals missed the deadline; each new term relisted everything)" if terms > 1 else ""))


async def main(args: argparse.Namespace) -> int:
    within = True
    for server in args.servers.split(","):
        runs = []
        for n in range(args.runs):
            tmp = Path(tempfile.mkdtemp(prefix=f"lcm-fleet-{server}-", dir=args.logs))
            agents_log = logging.FileHandler(tmp / "agents.log")
            agents_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logging.getLogger().addHandler(agents_log)
            try:
                run = await one_run(args, server, tmp)
            except (Exception, asyncio.CancelledError) as exc:
                print(f"{server} run {n + 1} FAILED ({type(exc).__name__}: {exc}); "
                      f"its logs are kept in {tmp}", flush=True)
                return 2
            finally:
                logging.getLogger().removeHandler(agents_log)
                agents_log.close()
            shutil.rmtree(tmp)
            report(run, f"{server} run {n + 1}")
            runs.append(run)
        median = statistics.median(r.seconds for r in runs)
        verdict = "ok" if median <= BUDGET_SECONDS else "OVER BUDGET"
        within = within and median <= BUDGET_SECONDS
        print(f"{server}: fleet of {args.machines}: median {median:.1f} s  runs "
              f"{[round(r.seconds, 1) for r in runs]}  budget <= {BUDGET_SECONDS:.0f} s  {verdict}  "
              f"(load average before: {args.load:.1f})", flush=True)
    return 0 if within else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="sim,kube",
                        help="the API servers to run on, in order: sim (simulator), kube (the real one)")
    parser.add_argument("--machines", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--qps", type=float, default=200.0, help="the scheduler's write rate limit")
    parser.add_argument("--burst", type=int, default=400)
    parser.add_argument("--plan-duty", type=float, default=0.5, help="the scheduler's --plan-duty")
    parser.add_argument("--budget", type=int, default=0,
                        help="maxWorkerPrepareCount and maxWorkerDeployCount (default: the fleet size)")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up on a run after these seconds")
    parser.add_argument("--logs", type=Path, default=None,
                        help="where run folders go (default: the temporary folder); a failed run's stays")
    parsed = parser.parse_args()
    parsed.load = os.getloadavg()[0]
    logging.basicConfig(level=logging.INFO, handlers=[logging.NullHandler()])
    sys.exit(asyncio.run(main(parsed)))
