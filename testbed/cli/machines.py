"""``lcmctl machines``: systemd-nspawn machines that boot the real agent through cloud-init.

    lcmctl machines up [--count 2] [--control 1] [--state-dir .state/machines] [--once]
    lcmctl machines ls [--state-dir .state/machines]
    lcmctl machines journal NAME [--unit lcm-agent.service] [--lines 50]
    lcmctl machines down [NAME ...]

``up`` serves a regional API (the project's simulator) and the package mirror on the machines' bridge,
boots the machines and waits until every agent has registered; then it keeps serving until Ctrl-C, which
destroys the machines (``--once`` stops right after the wait). The admin kubeconfig is written to
``STATE/kubeconfig``. A machine that does not register is reported with the reason read from inside it
(cloud-init failed, the API refused the agent's token, …). ``down`` removes machines left by any run,
found on disk and by their network namespaces; it is safe to run at any time. docs/machines.md has the
details.
"""

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


def add_machines_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    machines = groups.add_parser("machines", help="nspawn machines booting the agent with cloud-init",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = machines.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="boot machines and wait for their agents to register")
    up.add_argument("--count", type=int, default=2, help="how many machines (default %(default)s)")
    up.add_argument("--control", type=int, default=1, help="how many of them are control machines")
    up.add_argument("--prefix", default="vm", help="machine names are PREFIX-1, PREFIX-2, …")
    up.add_argument("--namespace", default="lcm-lab", help="namespace of the LCMMachines")
    up.add_argument("--api-port", type=int, default=6443, help="port of the API on the bridge (0: any)")
    up.add_argument("--mirror-port", type=int, default=8080, help="port of the package mirror (0: any)")
    up.add_argument("--apt-mirror", default="", metavar="URL",
                    help="Debian mirror to build the image and the apt repository from (default: the host's "
                         "apt sources)")
    up.add_argument("--once", action="store_true", help="destroy the machines after the wait and exit")
    down = commands.add_parser("down", help="destroy machines (all when none is named) and the bridge")
    down.add_argument("names", nargs="*", metavar="NAME")
    ls = commands.add_parser("ls", help="list machines, their LCMMachine state, and why one is stuck")
    journal = commands.add_parser("journal", help="a unit's journal inside a machine")
    journal.add_argument("name", metavar="NAME")
    journal.add_argument("--unit", default="lcm-agent.service", help="default %(default)s")
    journal.add_argument("--lines", type=int, help="only the last N lines")
    for command in (up, ls):
        command.add_argument("--state-dir", type=Path, default=Path(".state/machines"),
                             help="API state, kubeconfig and mirror files of `up` (default %(default)s)")
    machines.set_defaults(func=_dispatch)


def _dispatch(args: argparse.Namespace) -> int:
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
