"""What ``lcmctl machines`` does (its usage and options: ``testbed/cli/commands.py``): serve the regional
API and the mirror on the machines' bridge, boot nspawn machines, wait for their agents, tear them down."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.adapters.kube import KubeError
from agent.api.crds import crd_paths
from regional.provisioning import ProvisioningError
from testbed.lab.machines.host import LabError
from testbed.lab.machines.machine import STATE_ROOT, Machine, known_machines
from testbed.lab.machines.network import Subnet
from testbed.lab.machines.sets import (
    MachineSet,
    MachineSetSettings,
    RegionalApi,
    destroy_all,
    diagnose,
    registered,
    release_bridge,
)
from testbed.sim.runner import Simulator

LAB_FILE = "lab.json"


@dataclass(frozen=True)
class LabInfo:
    """What ``up`` tells later commands (``ls``) and other tools (the demo, playbooks) about the lab."""

    kubeconfig: str
    namespace: str
    apt_source: str
    agent_url: str
    agent_sha256: str
    index_url: str




def dispatch(args: argparse.Namespace) -> int:
    run = {"up": _up, "down": _down, "ls": _ls, "journal": _journal}[args.command]
    try:
        return asyncio.run(run(args))
    except (LabError, ProvisioningError) as exc:
        print(f"lcmctl machines {args.command}: {exc}", file=sys.stderr)
        return 1


@contextlib.asynccontextmanager
async def open_lab(
    state_dir: Path, *, namespace: str, api_port: int = 0, mirror_port: int = 0, apt_mirror: str = "",
) -> AsyncIterator[MachineSet]:
    """A prepared fleet connected to a simulator on the bridge; machines and servers gone on exit."""
    fleet = MachineSet(MachineSetSettings(run_dir=state_dir, namespace=namespace, mirror_port=mirror_port,
                                debian_mirror=apt_mirror))
    sim: Simulator | None = None
    # The machines are new on every run, so is the API: a previous run's LCMMachines would look registered.
    shutil.rmtree(state_dir / "sim", ignore_errors=True)
    try:
        await fleet.prepare()
        gateway = str(fleet.settings.subnet.gateway)
        sim = Simulator(state_dir / "sim", host=gateway, port=api_port, crd_paths=crd_paths(),
                        kubeconfig_path=state_dir / "kubeconfig")
        await sim.start()
        await fleet.connect(RegionalApi.from_kubeconfig(sim.kubeconfig_path))
        yield fleet
    finally:
        await fleet.close()
        if sim is not None:
            await sim.stop()
        await release_bridge(fleet.settings.subnet)


def save_lab_info(fleet: MachineSet, state_dir: Path) -> LabInfo:
    """``STATE/lab.json``: where ``ls`` finds the API, and what a release needs to use the lab's mirror."""
    info = LabInfo(str(state_dir / "kubeconfig"), fleet.settings.namespace, fleet.apt_source, fleet.agent.url,
                   fleet.agent.sha256, fleet.agent.index_url)
    (state_dir / LAB_FILE).write_text(json.dumps(asdict(info), indent=2) + "\n")
    return info


async def _up(args: argparse.Namespace) -> int:
    names = [f"{args.prefix}-{i}" for i in range(1, args.count + 1)]
    async with open_lab(args.state_dir, namespace=args.namespace, api_port=args.api_port,
                        mirror_port=args.mirror_port, apt_mirror=args.apt_mirror) as fleet:
        info = save_lab_info(fleet, args.state_dir)
        for i, name in enumerate(names):
            await fleet.add(name, machine_type="control" if i < args.control else "worker")
        code = 0
        try:
            await fleet.wait_registered(names)
        except (LabError, ProvisioningError) as exc:
            print(f"lcmctl machines up: {exc}", file=sys.stderr)
            code = 1
        print(await _table(known_machines(), fleet))
        print(f"\nexport KUBECONFIG={info.kubeconfig}   # the regional API (namespace {info.namespace})")
        print(f"apt source for the release's mirror param: {info.apt_source}")
        if not args.once:
            print("serving; Ctrl-C destroys the machines")
            await _until_signal()
    return code


async def _down(args: argparse.Namespace) -> int:
    if args.names:
        for name in args.names:
            await Machine(name).destroy()
        destroyed = list(args.names)
        await release_bridge(Subnet())
    else:
        destroyed = await destroy_all(Subnet())
    print("destroyed: " + (", ".join(destroyed) if destroyed else "nothing was left"))
    return 0


async def _ls(args: argparse.Namespace) -> int:
    machines = known_machines()
    if not machines:
        print("no machines")
        return 0
    fleet = None
    lab_file = args.state_dir / LAB_FILE
    if lab_file.is_file():
        info = LabInfo(**json.loads(lab_file.read_text()))
        fleet = MachineSet(MachineSetSettings(run_dir=args.state_dir, namespace=info.namespace))
        await fleet.connect(RegionalApi.from_kubeconfig(Path(info.kubeconfig)), create_namespace=False)
    print(await _table(machines, fleet))
    if fleet is not None:
        await fleet.close()
    return 0


async def _table(machines: list[Machine], fleet: MachineSet | None) -> str:
    """NAME ADDRESS RUNNING STATE, then one line for each running machine that has not registered."""
    rows, stuck = [("NAME", "ADDRESS", "RUNNING", "STATE")], []
    for machine in machines:
        obj = await _lcm_machine(fleet, machine.name)
        running = machine.leader() is not None
        state = "?" if fleet is None else "-" if obj is None else (obj.get("status") or {}).get(
            "state") or "Uninitialized"
        record = machine.record
        rows.append((machine.name, record.address if record else "?", "yes" if running else "no", state))
        if running and fleet is not None and obj is not None and not registered(obj):
            stuck.append(await diagnose(machine, obj))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines + ([""] + [f"not registered: {line}" for line in stuck] if stuck else []))


async def _lcm_machine(fleet: MachineSet | None, name: str) -> dict[str, Any] | None:
    if fleet is None:
        return None
    try:
        return await fleet.lcm_machine(name)
    except (OSError, KubeError, TimeoutError):  # no API serving (no `up` running): the machine alone
        return None


async def _journal(args: argparse.Namespace) -> int:
    machine = Machine(args.name, STATE_ROOT)
    sys.stdout.write(await machine.journal(args.unit, lines=args.lines))
    return 0


async def _until_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
