"""Reconciler: time from injected drift to converged, per case, and the agent's CPU on a healthy node.

A lab swarm (managers m1 and m2, worker w1: network namespaces, each with its own dockerd), an API
simulator subprocess and two real ``lcm-agent run`` processes (for w1 and m2), configured as on a node:
the node's engine, its playbook vars, RBAC for its join token and Events, and the production
``reconcile.check_period`` unless ``--check-period`` says otherwise. Once both machines are Ready (their
desired states recorded), each case injects drift by hand and times until the node is back as recorded,
``--runs`` times; the figure is the median. Cases the engine reports (it stops, a container dies, a node is
demoted) are found through the engine's event stream; a hand-edited daemon.json and a worker's own
``docker swarm leave`` raise no event the worker sees, so the timer finds them (about half a period on
average). Last, the w1 agent's CPU is sampled for ``--cpu-seconds`` on the healthy node.

    .venv/bin/python bench/reconcile_drift.py [--runs 3] [--check-period 30] [--cpu-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml
from agent_idle import _grant, _simulator

from agent.adapters.engine_access import EngineAccess
from agent.adapters.engine_checks import observe
from agent.adapters.kube import SECRETS, Kube, connect
from agent.daemon.own_machine import LCMMACHINES
from testbed.lab.netns import dockerd, nodes
from testbed.lab.netns.node import LabNode
from testbed.sim.testing import KubeApi, lcm_machine

# The tests' lab swarm, reused; the tests are outside mypy's files, hence the ignore.
sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "reconciler"))
from reconciler_lab import (  # type: ignore[import-not-found]
    SwarmLab,
    agent_settings,
    docker,
    form,
    grant_agent_extras,
    release_items,
    token_body,
)

BUDGET_EVENT_SECONDS = 10.0
"""Drift the engine reports: the event, a one-second settle, the reconciler's start-up and its action."""
BUDGET_CPU_PERCENT = 0.5
"""The agent's idle budget (DESIGN.md): checking a healthy node must fit in it."""


@dataclass(frozen=True)
class Case:
    name: str
    node: str
    inject: Callable[[SwarmLab], None]
    converged: Callable[[SwarmLab], bool]
    by_event: bool


def _access(node: LabNode) -> EngineAccess:
    return EngineAccess.from_vars(node.docker_host, node.playbook_vars())


def _edit_config(swarm: SwarmLab) -> None:
    node = swarm.node("w1")
    edited = {**json.loads(node.config_path.read_text()), "debug": True}
    node.config_path.write_text(json.dumps(edited))


def _config_restored(swarm: SwarmLab) -> bool:
    return "debug" not in json.loads(swarm.node("w1").config_path.read_text())


def _proxy_running(swarm: SwarmLab) -> bool:
    return any(c.state == "running" for c in observe(_access(swarm.node("w1"))).containers)


CASES = (
    Case("engine stopped", "w1", lambda s: dockerd.stop(s.node("w1")),
         lambda s: observe(_access(s.node("w1"))).swarm_state == "active", True),
    Case("daemon.json edited", "w1", _edit_config, _config_restored, False),
    Case("worker left the swarm", "w1", lambda s: docker(s.node("w1"), "swarm", "leave"),
         lambda s: observe(_access(s.node("w1"))).swarm_state == "active", False),
    Case("manager demoted", "m2", lambda s: docker(s.node("m1"), "node", "demote", "m2"),
         lambda s: observe(_access(s.node("m2"))).manager, True),
    Case("container removed", "w1", lambda s: docker(s.node("w1"), "rm", "--force", "node-proxy"),
         _proxy_running, True),
)


async def _agent(admin: Kube, api: KubeApi, swarm: SwarmLab, name: str, workdir: Path,
                 check_period: float) -> psutil.Popen:
    """An LCMMachine for lab node ``name`` and its agent process."""
    role = swarm.role(name)
    kubeconfig = await _grant(admin, api, api.namespace, name)
    await grant_agent_extras(admin, api.namespace, name, role)
    await admin.create(LCMMACHINES, api.namespace, lcm_machine(name, api.namespace,
                                                               stateItems=release_items(swarm, name)))
    doc = {"api": {"kubeconfig": str(kubeconfig), "namespace": api.namespace, "machine_name": name},
           "timings": {"backoff_base": 0.2, "backoff_cap": 5.0}, "state_dir": str(workdir / name),
           **agent_settings(swarm.node(name), {"check_period": check_period})}
    config = workdir / f"{name}.yaml"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        yaml.safe_dump(doc, file)
    log = (workdir / f"{name}.log").open("ab")
    return psutil.Popen([sys.executable, "-m", "agent.cli.node", "run", "--config", str(config)],
                        stdout=log, stderr=log)


async def _until(what: Callable[[], bool], within: float, describe: str) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(what):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {describe}")
        await asyncio.sleep(0.05)


async def _ready(admin: Kube, namespace: str, name: str, state_dir: Path) -> None:
    async def check() -> bool:
        machine = await admin.get(LCMMACHINES, namespace, name)
        return machine.get("status", {}).get("state") == "Ready" and (state_dir / "desired.json").exists()

    deadline = time.monotonic() + 120
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} never became Ready with a recorded desired state")
        await asyncio.sleep(0.2)


async def _time(case: Case, swarm: SwarmLab, within: float) -> float:
    """From the injection until converged; a drift the engine applies later (a demotion takes effect
    asynchronously) must have been seen before it counts as converged."""
    await asyncio.to_thread(case.inject, swarm)
    began = time.monotonic()
    await _until(lambda: not case.converged(swarm), 30, f"{case.name} visible")
    await _until(lambda: case.converged(swarm), within, f"{case.name} converged")
    elapsed = time.monotonic() - began
    await asyncio.sleep(3.0)  # the agent's own check after the run, before the next injection
    return elapsed


async def run(args: argparse.Namespace, swarm: SwarmLab, workdir: Path) -> int:
    sim, kubeconfig = await _simulator(workdir)
    agents: list[psutil.Popen] = []
    try:
        api = KubeApi(kubeconfig, simulator=None, workdir=workdir)
        await api.create_namespace()
        async with await connect(kubeconfig=kubeconfig) as admin:
            for role in ("manager", "worker"):
                await admin.create(SECRETS, api.namespace, token_body(swarm, role))
            for name in ("w1", "m2"):
                agents.append(await _agent(admin, api, swarm, name, workdir, args.check_period))
            for name in ("w1", "m2"):
                await _ready(admin, api.namespace, name, workdir / name)
            within = args.check_period + 120
            results = {c.name: [await _time(c, swarm, within) for _ in range(args.runs)] for c in CASES}
            cpu = await _cpu(agents[0], args.cpu_seconds)
        await api.close()
    finally:
        for agent in agents:
            agent.terminate()
            agent.wait(30)
        sim.terminate()
        sim.wait(10)
    return _print(args, results, cpu)


async def _cpu(agent: psutil.Popen, seconds: float) -> float:
    await asyncio.sleep(2.0)
    cpu0, t0 = sum(agent.cpu_times()[:2]), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, t1 = sum(agent.cpu_times()[:2]), time.monotonic()
    return 100.0 * (cpu1 - cpu0) / (t1 - t0)


def _print(args: argparse.Namespace, results: dict[str, list[float]], cpu: float) -> int:
    timer_budget = args.check_period + BUDGET_EVENT_SECONDS
    print(f"drift -> converged, median of {args.runs} (check period {args.check_period:g}s):")
    within = True
    for case in CASES:
        samples = results[case.name]
        median = statistics.median(samples)
        budget = BUDGET_EVENT_SECONDS if case.by_event else timer_budget
        within = within and median <= budget
        found = "engine event" if case.by_event else "timer"
        print(f"  {case.name:24} {median:6.2f} s  (budget <= {budget:g} s, found by {found})  runs: "
              + ", ".join(f"{s:.2f}" for s in samples))
    print(f"agent CPU while checking a healthy node over {args.cpu_seconds:g}s: {cpu:.2f} % "
          f"(budget <= {BUDGET_CPU_PERCENT:g} %)")
    within = within and cpu <= BUDGET_CPU_PERCENT
    print("within budget" if within else "OVER BUDGET")
    return 0 if within else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--check-period", type=float, default=30.0)
    parser.add_argument("--cpu-seconds", type=float, default=60.0)
    args = parser.parse_args()
    reason = nodes.missing_requirements()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="lcm-bench-") as tmp, nodes.running(
            ["m1", "m2", "w1"], prefix=nodes.session_prefix("rb")) as lab:
        workdir = Path(tmp)
        swarm = form(lab, workdir)
        return asyncio.run(run(args, swarm, workdir))


if __name__ == "__main__":
    sys.exit(main())
