"""What ``lcmctl box`` and ``lcmctl vagrant`` do (their usage and options: ``testbed/cli/commands.py``):
the Vagrant test VMs' box, and their host-side regional side the Vagrantfile's triggers start and stop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from agent.adapters.kube import KubeError, connect
from agent.api.crds import crd_paths
from testbed import CHECKOUT
from testbed.cli.demo import stop_on_signals
from testbed.lab.box import BOX_NAME, libvirt
from testbed.lab.box.regional import READY, VagrantRegional, VagrantSettings, forget_run, remove
from testbed.lab.box.vagrant_box import add, ensure_box
from testbed.lab.machines.host import LabError
from testbed.lab.machines.sets import RegionalApi
from testbed.lab.stack.stack import (
    LCMMACHINES,
    recorded_pid,
    spawn,
    stop_children,
    stop_recorded,
    tool,
    write_pid,
)
from testbed.lab.stack.stages import Stages
from testbed.sim.runner import Simulator

log = logging.getLogger(__name__)

OBJECTS = CHECKOUT / "deploy" / "vagrant"
SERVE = "stack"
"""The pid file's name: ``testbed.lab.stack.stack.stop_recorded`` stops a process recorded so, with a
grace period."""
START_WITHIN = 1800.0
"""Seconds ``up`` waits for ``serve`` to be ready: a cold host builds the machine image and the mirrors."""


@dataclass(frozen=True)
class Ready:
    """What a running ``serve`` tells ``up``, the smoke test and ``status``."""

    kubeconfig: str
    namespace: str
    seeds: dict[str, str]




def box_build(args: argparse.Namespace) -> int:
    return _run(_build, args, "box build")


def up(args: argparse.Namespace) -> int:
    return _run(_up, args, "vagrant up")


def serve(args: argparse.Namespace) -> int:
    return _run(_serve, args, "vagrant serve")


def status(args: argparse.Namespace) -> int:
    return _run(_status, args, "vagrant status")


def down(args: argparse.Namespace) -> int:
    return _run(_down, args, "vagrant down")


def _run(command: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace, name: str) -> int:
    try:
        return asyncio.run(_call(command, args))
    except (LabError, KubeError, OSError, RuntimeError) as exc:
        print(f"lcmctl {name}: {exc}", file=sys.stderr)
        return 1


async def _call(command: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    return await command(args)


def _nodes(args: argparse.Namespace) -> list[str]:
    names = [n for n in args.nodes.split(",") if n]
    if not names or len(set(names)) != len(names):
        raise LabError(f"--nodes {args.nodes!r}: give distinct VM names, comma-separated")
    return names


async def _build(args: argparse.Namespace) -> int:
    box = await ensure_box(mirror=args.apt_mirror)
    added = await add(box)
    print(f"{BOX_NAME}: {box}" + (" (added to Vagrant)" if added else " (Vagrant has this build)"))
    return 0


async def _up(args: argparse.Namespace) -> int:
    missing = libvirt.missing_tools()
    if missing:
        raise LabError("this host lacks: " + "; ".join(missing))
    await _build(args)
    settings = VagrantSettings()
    state = settings.state_dir
    if recorded_pid(state, SERVE):
        print(f"the regional side runs already (log: {state / 'serve.log'})")
        return 0
    _fresh(settings)
    argv = [tool("lcmctl"), "vagrant", "serve", "--nodes", ",".join(_nodes(args)),
            "--controls", str(args.controls), "--api-port", str(args.api_port),
            "--mirror-port", str(args.mirror_port), "--apt-mirror", args.apt_mirror]
    child = spawn(state, "serve", argv)
    started = time.monotonic()
    while not (state / READY).is_file():
        if child.poll() is not None:
            raise LabError(f"the regional side exited with {child.returncode}:\n{_tail(state / 'serve.log')}")
        if time.monotonic() - started > START_WITHIN:
            raise LabError(f"the regional side is not ready after {START_WITHIN:.0f}s "
                           f"(log: {state}/serve.log)")
        await asyncio.sleep(0.5)
    ready = Ready(**json.loads((state / READY).read_text()))
    print(f"regional side ready in {time.monotonic() - started:.0f}s: export KUBECONFIG={ready.kubeconfig}")
    return 0


def _machine_type(index: int, controls: int) -> str:
    return "control" if index < controls else "worker"


def _fresh(settings: VagrantSettings) -> None:
    """A new run's state: the VMs are new, so is the API (an old store's LCMMachines look registered)."""
    settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    forget_run(settings)
    for name in ("serve.log", "scheduler.log"):
        (settings.state_dir / name).unlink(missing_ok=True)


async def _serve(args: argparse.Namespace) -> int:
    names = _nodes(args)
    settings = VagrantSettings(debian_mirror=args.apt_mirror, mirror_port=args.mirror_port)
    state = settings.state_dir
    regional = VagrantRegional(settings)
    stop = stop_on_signals()
    sim: Simulator | None = None
    scheduler: subprocess.Popen[bytes] | None = None
    write_pid(state, SERVE, os.getpid())
    try:
        stages = Stages()
        gateway = await regional.prepare(stages)
        sim = Simulator(state / "sim", host=gateway, port=args.api_port, crd_paths=crd_paths(),
                        kubeconfig_path=state / "kubeconfig")
        await sim.start()
        sim.load([regional.objects([OBJECTS])])
        await regional.connect(RegionalApi.from_kubeconfig(sim.kubeconfig_path))
        seeds = {name: str(await regional.seed(name, machine_type=_machine_type(i, args.controls)))
                 for i, name in enumerate(names)}
        ns = settings.namespace
        scheduler = spawn(state, "scheduler", [tool("lcm-scheduler"), "run", "--kubeconfig",
                                               str(sim.kubeconfig_path), "--namespace", ns,
                                               "--lease-namespace", ns])
        stages.done("API, seeds, scheduler")
        (state / READY).write_text(json.dumps(Ready(str(sim.kubeconfig_path), ns, seeds).__dict__))
        print(f"serving for {', '.join(names)}: API {sim.url}, mirror on {gateway}; {stages.line()}",
              flush=True)
        while not stop.is_set():
            if scheduler.poll() is not None:
                raise LabError(f"lcm-scheduler exited with {scheduler.returncode} "
                               f"(log: {state}/scheduler.log)")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)
    finally:
        (state / READY).unlink(missing_ok=True)
        if scheduler is not None:
            await asyncio.to_thread(stop_children, [scheduler])
        await regional.close()
        if sim is not None:
            await sim.stop()
        (state / f"{SERVE}.pid").unlink(missing_ok=True)
    return 0


async def _status(args: argparse.Namespace) -> int:
    state = VagrantSettings().state_dir
    if not (state / READY).is_file():
        print("the regional side is not running (the Vagrantfile starts it at `vagrant up`)")
        return 1
    ready = Ready(**json.loads((state / READY).read_text()))
    async with await connect(kubeconfig=Path(ready.kubeconfig)) as kube:
        listed = await kube.list_objects(LCMMACHINES, ready.namespace)
    for obj in listed.get("items", []):
        status = obj.get("status") or {}
        addresses = ",".join(a.get("address", "") for a in status.get("addresses") or [])
        print(f"{obj['metadata']['name']}  {status.get('state') or 'Uninitialized'}  {addresses or '-'}  "
              f"{status.get('progress', '')}".rstrip())
    return 0


async def _down(args: argparse.Namespace) -> int:
    users = await libvirt.domains_on()
    if users and args.if_unused:
        print(f"{len(users)} VM(s) still on network {libvirt.NETWORK}; the regional side stays")
        return 0
    settings = VagrantSettings()
    stopped = await asyncio.to_thread(stop_recorded, settings.state_dir)
    removed = await remove(settings)
    print("removed: " + (", ".join([*stopped, *removed]) or "nothing was left"))
    return 0


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
