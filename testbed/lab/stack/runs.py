"""One run of the stack at a time per state directory, each starting from its own state.

What belongs to one run is made anew by the next: ``<state>/stack`` (broker config with its port and
address, broker and scheduler logs, tokens, agents' configs, pid files), ``<state>/sim`` (the simulator's
store: the nodes are new, so an old run's statuses would describe other machines), ``<state>/kube`` (the
real control plane's etcd data and keys, with ``--api kube``) and the kubeconfig. What
is kept on purpose lives elsewhere (the machine image, wheels and apt repository under /var/cache/lcm-lab)
and is checked where it is used.

A run that ended without its teardown (a crash, ``kill -9``) leaves its pid files; the next run then first
removes what that run left running (scheduler, broker, machines, netns nodes), as ``lcmctl demo --down``
does. A run that is still alive is never touched: the new one refuses, naming it and how to stop it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from testbed.kube.plane import PlaneSettings
from testbed.kube.plane import stop_recorded as stop_plane
from testbed.lab.stack import machines as stack_machines
from testbed.lab.stack import netns as stack_netns
from testbed.lab.stack.stack import StackSettings, recorded_pid, stop_recorded

RUN_STATE = ("stack", "sim", "kube", "kubeconfig")
"""The entries of the state directory that belong to one run."""


class RunningError(RuntimeError):
    """Another run of the same state directory is alive."""


async def remove_everything(run_dir: Path, prefix: str) -> list[str]:
    """A running stack first (it takes its own parts down), then what a crashed one left, of either kind."""
    removed = await asyncio.to_thread(stop_recorded, run_dir)
    removed += await asyncio.to_thread(stop_plane, PlaneSettings(run_dir.parent / "kube"))
    removed += await stack_machines.remove_leftovers(run_dir)
    return removed + await asyncio.to_thread(stack_netns.remove_leftovers, prefix)


async def begin_run(settings: StackSettings, *, how_to_stop: str) -> list[str]:
    """Make ``settings.state_dir`` ready for a new run; returns what a previous, dead run had left running.

    RunningError (with ``how_to_stop``, the command that stops it) when a run of this state dir is alive.
    """
    pid = recorded_pid(settings.run_dir, "stack")
    if pid and pid != os.getpid():
        raise RunningError(f"a run with state dir {settings.state_dir} is still running (pid {pid}); stop it "
                           f"first ({how_to_stop}), or give this one another --state-dir")
    removed = []
    if any(settings.run_dir.glob("*.pid")):  # only a run that did not finish its teardown leaves these
        removed = await remove_everything(settings.run_dir, settings.prefix)
    for name in RUN_STATE:
        path = settings.state_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return removed
