"""Scheduler plan for 5,000 machines: CPU seconds of one ``plan()`` call (budget ≤ 1 s).

Two fleets of 3 control machines and 4,997 workers, parsed once as the scheduler's caches would hold them:

- ``converged``: every machine Ready on the release: the plan the scheduler makes on every event once the
  cluster is up (it must look at everything and write nothing);
- ``rollout``: every machine prepared, the control plane up, the workers waiting to deploy: the plan that
  renders and diffs every machine's full spec and writes the next batch.

Each figure is the median CPU time (``time.process_time``) of several runs, cold (objects the planner has
not seen: a scheduler's first plan) and warm (the same objects again: a re-plan after an event, where only
the changed machines are derived anew); the budget holds for all four.

    .venv/bin/python bench/planner_cpu.py [--machines 5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

from agent.api.models import ClusterRelease, LCMCluster, LCMMachine
from agent.decisions.hashing import item_hash
from regional.planning.actions import Patch, PlanInput
from regional.planning.planner import plan
from testbed.sim.patching import merge_patch

BUDGET_S = 1.0
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONTROLS = 3


def _item(name: str, phase: str) -> dict[str, Any]:
    return {"runner": "ansible", "name": name, "version": "1.0.0", "phase": phase,
            "params": {"playbook": f"{phase}/{name}.yml"}}


def _release() -> ClusterRelease:
    common = [_item("preflight", "prepare"), _item("sysctl", "prepare"), _item("packages", "prepare"),
              _item("docker-engine", "deploy")]
    tail = [_item("daemon-config", "reconfigure"), _item("node-labels", "reconfigure"),
            _item("swarm-leave", "decommission")]
    return ClusterRelease.from_raw({
        "metadata": {"name": "swarm-1.0.0"},
        "spec": {
            "version": "1.0.0",
            "agent": {"version": "0.1.0", "downloadURL": "http://mirror/a.whl", "sha256": "0" * 64},
            "machineTypes": {
                "control": [*common, _item("swarm-init", "deploy"), _item("swarm-join", "deploy"), *tail],
                "worker": [*common, _item("swarm-join", "deploy"), *tail],
            },
        },
    })


def _machine(n: int) -> dict[str, Any]:
    kind = "control" if n < CONTROLS else "worker"
    ip = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"
    return {
        "metadata": {"name": f"{kind}-{n:05d}", "namespace": "bench",
                     "labels": {"swarm.lcm.mirantis.com/zone": f"z{n % 3}"}},
        "spec": {"clusterName": "bench", "type": kind},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def _finish_items(raw: dict[str, Any]) -> None:
    """The agent's part: every item of the spec done, the agent at the spec's version."""
    machine = LCMMachine.from_raw(raw)
    version = machine.spec.agent_config.version
    raw["status"]["stateItemStatuses"] = {
        i.name: {"hash": item_hash(i, version), "exitCode": 0, "attempt": 1}
        for i in machine.spec.state_items
    }
    raw["status"]["agentVersion"] = machine.spec.agent_config.version


def _input(cluster: dict[str, Any], machines: list[dict[str, Any]], release: ClusterRelease) -> PlanInput:
    return PlanInput(LCMCluster.from_raw(cluster), {"swarm-1.0.0": release},
                     [LCMMachine.from_raw(m) for m in machines], [], NOW)


def _step(cluster: dict[str, Any], machines: list[dict[str, Any]], release: ClusterRelease,
          finish: bool) -> dict[str, Any]:
    """One plan applied to the raw objects; the agents then finish everything when ``finish``."""
    by_name = {m["metadata"]["name"]: m for m in machines}
    for action in plan(_input(cluster, machines, release)).actions:
        assert isinstance(action, Patch)
        if action.resource == "lcmclusters":
            cluster = merge_patch(cluster, action.patch)
        else:
            by_name[action.name].update(merge_patch(by_name[action.name], action.patch))
    if finish:
        for raw in machines:
            _finish_items(raw)
    return cluster


def fleets(size: int) -> dict[str, PlanInput]:
    release = _release()
    cluster: dict[str, Any] = {"metadata": {"name": "bench", "namespace": "bench", "generation": 1},
                               "spec": {"release": "swarm-1.0.0", "maxWorkerDeployCount": size,
                                        "maxWorkerPrepareCount": size}}
    machines = [_machine(n) for n in range(size)]
    for _ in range(1 + CONTROLS):  # prepare everyone; the first control machine deploys; the others join
        cluster = _step(cluster, machines, release, finish=True)
    cluster["spec"] = {"release": "swarm-1.0.0"}  # the defaults: batches of 50
    rollout = _input(cluster, machines, release)
    cluster["spec"] = {"release": "swarm-1.0.0", "maxWorkerDeployCount": size}
    cluster = _step(cluster, machines, release, finish=True)
    cluster = _step(cluster, machines, release, finish=False)
    cluster["spec"] = {"release": "swarm-1.0.0"}
    converged = _input(cluster, machines, release)
    return {"converged": converged, "rollout": rollout}


def cpu_seconds(inp: PlanInput, runs: int, *, cold: bool) -> tuple[float, list[float], int]:
    """``cold``: every run plans objects it has never seen (fresh copies, as after a scheduler restart);
    otherwise the same objects again (the planner keeps what it derived from an unchanged object)."""
    samples = []
    actions = 0
    for _ in range(runs):
        if cold:
            inp = dataclasses.replace(inp, machines=[m.model_copy() for m in inp.machines])
        start = time.process_time()
        actions = len(plan(inp).actions)
        samples.append(time.process_time() - start)
    return statistics.median(samples), samples, actions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    worst = 0.0
    for name, inp in fleets(args.machines).items():
        for cold in (True, False):
            median, samples, actions = cpu_seconds(inp, args.runs, cold=cold)
            worst = max(worst, median)
            runs = ", ".join(f"{s:.3f}" for s in samples)
            print(f"plan, {args.machines} machines, {name}, {'cold' if cold else 'warm'}: {median:.3f} s CPU "
                  f"(median; runs {runs}), {actions} actions")
    print(f"worst median {worst:.3f} s CPU, budget {BUDGET_S:.1f} s: {'ok' if worst <= BUDGET_S else 'OVER'}")
    return 0 if worst <= BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
