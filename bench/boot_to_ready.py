"""Boot to Ready on nspawn machines, stage by stage, beside the floor: the same machines doing the same work
by plain commands.

Agent: the demo's stack with the real control plane (``open_stack(nodes="machines", api="kube")``) and its
three machines (one control, two workers) booted from the cached image; cloud-init makes each an LCM node
and the agents install Docker Engine and form the swarm in the scheduler's order. Floor: three fresh
machines on the same image, bridge and apt repository whose user-data installs the same packages by
``apt-get``; then, from the host, the swarm is initialised on the first as soon as it is done and each other
joins as soon as it is. Seconds count from the first machine's boot; host and machines share
CLOCK_MONOTONIC, so systemd's timestamps inside a machine read on the host's clock. Stages:

- boot: the machine's systemd started; cloud-init: its final stage started (write_files, packages done);
- agent: the agent's unit started (its wheels installed); registered: its first report (an InternalIP);
  prepared: its prepare items done; Ready: the LCMMachine Ready;
- floor: engine (docker.service active), swarm (in the swarm).

A stage's figure is when the last machine reached it; the per-machine figures follow. Each run is an agent
boot and then a floor boot, side by side under the same load; the ratio is all Ready over all in the floor's
swarm. Budget: all Ready within 45 s (issue 21); the exit code is 1 while the median misses it. It uses the
demo's machine names and the shared cache, so run it alone on the host:

    flock /tmp/lcm-lab.lock .venv/bin/python bench/boot_to_ready.py [--runs 3]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from machines_bench import machine_runs  # bench/, the script's directory (on sys.path when run)
from prometheus_client.parser import text_string_to_metric_families

from agent.adapters.kube import connect
from agent.daemon.config import DEFAULT_METRICS_ADDRESS
from testbed.cli.demo import open_stack
from testbed.lab.machines.machine import Machine
from testbed.lab.machines.sets import MachineSet, MachineSetSettings, registered
from testbed.lab.stack.machines import MachineNodes
from testbed.lab.stack.stack import Rollout, StackSettings

RELEASE = "swarm-1.0.0"
PATIENCE = 900.0
BUDGET = 45.0
"""Seconds from the first boot to every LCMMachine Ready."""
PACKAGES = ("ca-certificates", "curl", "iptables", "docker.io")
"""What the release's prepare/packages and prepare/docker-engine items install (deploy/samples)."""
SWARM_PORT = 2377

Times = dict[str, dict[str, float]]
"""Stage -> machine -> seconds from the first boot."""


async def record_systemd_times(times: Times, machine: Machine, since: float) -> None:
    """The in-machine stages into ``times``, from systemd's monotonic timestamps (µs); a unit never
    started is left out."""
    async def started(prop: str, unit: str | None = None) -> float | None:
        argv = ["systemctl", "show", f"--property={prop}", "--value", *([unit] if unit else [])]
        value = int((await machine.exec(argv))[1].strip() or 0)
        return value / 1e6 - since if value else None

    found = {"boot": await started("UserspaceTimestampMonotonic"),
             "cloud-init": await started("ExecMainStartTimestampMonotonic", "cloud-final.service"),
             "agent": await started("ExecMainStartTimestampMonotonic", "lcm-agent.service"),
             "engine": await started("ActiveEnterTimestampMonotonic", "docker.service")}
    for stage, seconds in found.items():
        if seconds is not None:
            times.setdefault(stage, {})[machine.name] = seconds


def _prepared(machine: Mapping[str, Any]) -> bool:
    spec = machine.get("spec") or {}
    items = [i["name"] for i in spec.get("stateItems") or [] if i["phase"] == "prepare"]
    done = (machine.get("status") or {}).get("stateItemStatuses") or {}
    return bool(items) and all((done.get(name) or {}).get("exitCode") == 0 and "finishedAt" in done[name]
                               for name in items)


async def item_seconds(machine: Machine) -> dict[str, float]:
    """Each item's run time on the machine, in run order, from its agent's own metrics (one run each)."""
    url = f"http://{DEFAULT_METRICS_ADDRESS}/metrics"
    fetch = f"import urllib.request; print(urllib.request.urlopen({url!r}).read().decode())"
    text = (await machine.exec(["/opt/lcm-agent/current/bin/python", "-c", fetch]))[1]
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "lcm_agent_item_duration_seconds":
            found |= {s.labels["item"]: s.value for s in family.samples if s.name.endswith("_sum")}
    return found


async def agent_run(workdir: Path) -> tuple[Times, dict[str, dict[str, float]]]:
    """The stages, and each machine's items' run times."""
    settings = StackSettings(workdir / "demo")
    times: Times = {}
    since = 0.0

    def seen(rollout: Rollout) -> None:
        now = time.monotonic() - since
        for name, machine in rollout.machines.items():
            reached = {"registered": registered(machine), "prepared": _prepared(machine),
                       "Ready": (machine.get("status") or {}).get("state") == "Ready"}
            for stage, yes in reached.items():
                if yes:
                    times.setdefault(stage, {}).setdefault(name, now)

    async with open_stack(settings, nodes="machines", api="kube") as (stack, server), \
            await connect(kubeconfig=server.kubeconfig_path) as kube:
        nodes = stack.nodes
        assert isinstance(nodes, MachineNodes)
        since = min(nodes.fleet.booted.values())
        await stack.wait(kube, lambda r: r.ready(RELEASE), within=PATIENCE, on_look=seen, period=0.25)
        items = {}
        for name, machine in nodes.fleet.machines.items():
            await record_systemd_times(times, machine, since)
            items[name] = await item_seconds(machine)
    return times, items


def plain_user_data(apt_source: str) -> str:
    """The floor's cloud-init document: the release's mirror and packages, the engine enabled and running."""
    install = "DEBIAN_FRONTEND=noninteractive apt-get install -y -q " + " ".join(PACKAGES)
    doc = {"write_files": [{"path": "/etc/apt/sources.list.d/lcm-mirror.list", "content": apt_source + "\n"}],
           "runcmd": [["apt-get", "update", "-q"], ["sh", "-c", install],
                      ["systemctl", "enable", "--now", "docker.service"]]}
    return "#cloud-config\n" + json.dumps(doc)  # JSON is YAML


async def _docker_api(machine: Machine, path: str, body: Mapping[str, Any] | None = None) -> Any:
    """The machine's engine's answer to a GET, or with ``body`` a POST whose body goes on stdin: the join
    token never reaches a command line."""
    argv = ["curl", "--silent", "--show-error", "--fail-with-body", "--unix-socket", "/var/run/docker.sock"]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    stdin = None if body is None else json.dumps(body).encode()
    answer = (await machine.exec([*argv, f"http://localhost{path}"], stdin=stdin))[1]
    return json.loads(answer) if answer.strip() else None


async def floor_run(workdir: Path, names: Sequence[str]) -> Times:
    fleet = MachineSet(MachineSetSettings(run_dir=workdir / "floor"))
    await fleet.prepare()
    times: Times = {"swarm": {}}
    try:
        user_data = plain_user_data(fleet.apt_source)
        machines = [await fleet.boot(name, user_data) for name in names]
        since = min(fleet.booted.values())

        async def installed(machine: Machine) -> None:
            await machine.exec(["cloud-init", "status", "--wait"], limit=PATIENCE)

        def address(machine: Machine) -> str:
            assert machine.record is not None
            return machine.record.address

        control, *workers = machines
        await installed(control)
        await _docker_api(control, "/swarm/init", {"ListenAddr": f"0.0.0.0:{SWARM_PORT}",
                                                   "AdvertiseAddr": address(control)})
        times["swarm"][control.name] = time.monotonic() - since
        swarm = await _docker_api(control, "/swarm")

        async def join(worker: Machine) -> None:
            await installed(worker)
            await _docker_api(worker, "/swarm/join", {
                "ListenAddr": f"0.0.0.0:{SWARM_PORT}", "AdvertiseAddr": address(worker),
                "RemoteAddrs": [f"{address(control)}:{SWARM_PORT}"],
                "JoinToken": swarm["JoinTokens"]["Worker"]})
            times["swarm"][worker.name] = time.monotonic() - since

        await asyncio.gather(*(join(w) for w in workers))
        for machine in machines:
            await record_systemd_times(times, machine, since)
    finally:
        await fleet.close()
    return times


AGENT_STAGES = ("boot", "cloud-init", "agent", "registered", "prepared", "engine", "Ready")
FLOOR_STAGES = ("boot", "cloud-init", "engine", "swarm")


def last(times: Times, stage: str) -> float:
    return max(times[stage].values())


def show(label: str, times: Times, stages: Sequence[str], names: Sequence[str]) -> None:
    print(f"{label}: " + " | ".join(f"{s} {last(times, s):.1f}" for s in stages if s in times), flush=True)
    for name in names:
        reached = [f"{s} {times[s][name]:.1f}" for s in stages if name in times.get(s, {})]
        print(f"    {name}: " + " ".join(reached), flush=True)


def summary(times: Times, control: str) -> dict[str, float]:
    """The run's headline figures: each stage's last machine, and the control machine's Ready."""
    found = {stage: last(times, stage) for stage in times}
    if "Ready" in times:
        found["control Ready"] = times["Ready"][control]
    return found


def main() -> int:
    runs = machine_runs(__doc__)
    if runs is None:
        return 2
    names = StackSettings(Path("unused")).machines
    agents: list[dict[str, float]] = []
    floors: list[dict[str, float]] = []
    for run in range(1, runs + 1):
        with tempfile.TemporaryDirectory(prefix="lcm-bench-boot-") as tmp:
            agent, items = asyncio.run(agent_run(Path(tmp)))
            show(f"run {run} agent", agent, AGENT_STAGES, names)
            for name, ran in items.items():
                print(f"    {name} items: " + " ".join(f"{item} {took:.1f}" for item, took in ran.items()))
            floor = asyncio.run(floor_run(Path(tmp), names))
            show(f"run {run} floor", floor, FLOOR_STAGES, names)
        agents.append(summary(agent, names[0]))
        floors.append(summary(floor, names[0]))
        print(f"run {run}: all Ready {agents[-1]['Ready']:.1f}s, floor {floors[-1]['swarm']:.1f}s, "
              f"ratio {agents[-1]['Ready'] / floors[-1]['swarm']:.2f}", flush=True)

    def median(figures: list[dict[str, float]], stage: str) -> float:
        return statistics.median(f[stage] for f in figures)

    print(f"median of {runs}, agent: " + " | ".join(
        f"{s} {median(agents, s):.1f}" for s in (*AGENT_STAGES[:-1], "control Ready", "Ready")))
    print(f"median of {runs}, floor: " + " | ".join(
        f"{s} {median(floors, s):.1f}" for s in FLOOR_STAGES))
    ready = median(agents, "Ready")
    ratio = statistics.median(a["Ready"] / f["swarm"] for a, f in zip(agents, floors, strict=True))
    print(f"boot to every LCMMachine Ready: {ready:.1f}s (budget {BUDGET:.0f}s), {ratio:.2f}x the floor")
    return 0 if ready <= BUDGET else 1


if __name__ == "__main__":
    sys.exit(main())
