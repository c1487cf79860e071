"""The stack's nodes as nspawn machines (``testbed.lab.machines.sets``), booted from the cached image and each
made an LCM node by cloud-init alone, as in production. No agent runs on the host.

``up`` prepares the fleet (image, bridge, the package mirror with the agent's wheel and Docker Engine's
apt repository). The sample ClusterReleases name a mirror the machines cannot reach, so ``objects`` loads
rewritten copies: every ``prepare/packages.yml`` item gets ``aptSource``, the lab mirror's sources line,
which wins over the release's ``aptMirror`` (the samples' files stay as they are). ``start_agents``
provisions and boots each machine with user-data carrying its token and its broker account; the agent,
installed from the wheel, brings the release's playbooks with it (agent/daemon/config.py's default
``release_dir``) and drives the machine's own systemd, apt and Docker Engine with the playbooks' defaults.

The machines' names are recorded (``<state>/stack/machines.json``) so ``remove_leftovers`` can destroy them
from another process after a crash.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from testbed.kube.objects import documents
from testbed.lab.machines.machine import STATE_ROOT, Machine
from testbed.lab.machines.network import Subnet
from testbed.lab.machines.sets import MachineSet, MachineSetSettings, RegionalApi, release_bridge
from testbed.lab.stack.stack import AgentAccess, Rollout, StackSettings
from testbed.lab.stack.stages import Stages

PACKAGES_PLAYBOOK = "prepare/packages.yml"
RECORD = "machines.json"


class MachineNodes:
    kind = "machines"

    def __init__(self, settings: StackSettings, *, machines_root: Path = STATE_ROOT) -> None:
        self.settings = settings
        self.fleet = MachineSet(MachineSetSettings(
            run_dir=settings.run_dir / "lab", namespace=settings.namespace, cluster=settings.cluster,
            machines_root=machines_root, debian_mirror=settings.apt_mirror))

    async def up(self, stages: Stages) -> str:
        (self.settings.run_dir / RECORD).write_text(json.dumps(list(self.settings.machines)))
        await self.fleet.prepare(stages)
        return str(self.fleet.settings.subnet.gateway)

    def objects(self, paths: Sequence[Path]) -> list[Path]:
        dest = self.settings.run_dir / "objects.yaml"
        docs = [with_apt_source(doc, self.fleet.apt_source) for doc in documents(paths)]
        dest.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        return [dest]

    async def start_agents(self, api: RegionalApi, agents: Mapping[str, AgentAccess]) -> None:
        await self.fleet.connect(api)
        for name, access in agents.items():
            await self.fleet.add(name, machine_type=self.settings.machine_type(name), token=access.token,
                                 mqtt=access.mqtt)

    def exited(self) -> dict[str, str]:
        # The console's end, not only its path: the teardown that follows removes the machine's files.
        return {f"machine {name}": f"stopped; the end of its console:\n{console_tail(machine)}"
                for name, machine in self.fleet.machines.items() if machine.nspawn_pid() is None}

    async def explain(self, rollout: Rollout) -> str:
        return "\n".join([f"not registered: {await self.fleet.diagnose(name)}"
                          for name in rollout.unregistered()])

    def machine(self, name: str) -> Machine:
        try:
            return self.fleet.machines[name]
        except KeyError:
            raise RuntimeError(f"machine {name} is not up") from None

    async def docker(self, machine: str, *args: str) -> str:
        return (await self.machine(machine).exec(["docker", *args], limit=60))[1]

    async def stop_engine(self, machine: str) -> None:
        # The socket too: Debian's docker.socket would start the engine again on the next client call.
        await self.machine(machine).exec(["systemctl", "stop", "docker.socket", "docker.service"])

    async def engine_running(self, machine: str) -> bool:
        _, state = await self.machine(machine).exec(["systemctl", "is-active", "docker.service"], check=False)
        return state.strip() == "active"

    async def daemon_json(self, machine: str) -> dict[str, Any]:
        config: dict[str, Any] = json.loads((await self.machine(machine).exec(
            ["cat", "/etc/docker/daemon.json"]))[1])
        return config

    def hints(self, machine: str) -> list[str]:
        enter = f"nsenter -t {self.machine(machine).leader()} -m -u -i -n -p --"
        return [f"{enter} docker node ls",
                f"{enter} bash      # a shell on {machine}",
                f"lcmctl machines journal {machine}      # its agent's log"]

    async def down(self) -> list[str]:
        names = list(self.fleet.machines)
        await self.fleet.close()
        await release_bridge(self.fleet.settings.subnet, self.fleet.settings.machines_root)
        (self.settings.run_dir / RECORD).unlink(missing_ok=True)
        return [f"machine {name}" for name in names]


def with_apt_source(doc: dict[str, Any], apt_source: str) -> dict[str, Any]:
    """``doc`` with ``aptSource`` in every prepare/packages item when it is a ClusterRelease."""
    if doc.get("kind") != "ClusterRelease":
        return doc
    doc = copy.deepcopy(doc)
    for items in ((doc.get("spec") or {}).get("machineTypes") or {}).values():
        for item in items:
            params = item.setdefault("params", {})
            if params.get("playbook") == PACKAGES_PLAYBOOK:
                params["aptSource"] = apt_source
    return doc


async def remove_leftovers(run_dir: Path, machines_root: Path = STATE_ROOT) -> list[str]:
    """The machines a crashed stack recorded under ``run_dir``, and the bridge if nothing else uses it."""
    try:
        names = json.loads((run_dir / RECORD).read_text())
    except (OSError, ValueError):
        return []
    for name in names:
        await Machine(name, machines_root).destroy()
    await release_bridge(Subnet(), machines_root)
    (run_dir / RECORD).unlink(missing_ok=True)
    return [f"machine {name}" for name in names]


def console_tail(machine: Machine, lines: int = 12) -> str:
    """The last ``lines`` lines of the machine's console, indented; a word when there is none."""
    try:
        text = machine.console.read_text(errors="replace")
    except OSError:
        return "  (no console log)"
    return "\n".join(f"  {line}" for line in text.splitlines()[-lines:]) or "  (empty)"
