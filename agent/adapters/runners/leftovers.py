"""The processes a killed agent's item left running, found and ended by the next agent before it re-runs it.

Outside systemd nothing kills a dead agent's children: a playbook keeps going, re-parented to init, and
would run beside the new agent's attempt of the same item. Every process a runner starts carries
``LCM_RUN=<machine>/<item>/<attempt>`` in its environment (inherited by its whole tree, the sessions
Ansible's workers start included, and kept in ``/proc/<pid>/environ`` whatever the process does later).
The journal's in-progress mark names the item and attempt, so on start the agent finds every process of
that run by its mark and ends their process groups: SIGTERM, a grace period, SIGKILL.
"""

from __future__ import annotations

import os
import signal
import time

from agent.adapters.runners.supervision import KILL_WAIT, signal_group

RUN_MARK = "LCM_RUN"
"""The environment variable naming the run a process belongs to."""


def run_mark(machine: str, item: str, attempt: int) -> str:
    return f"{machine}/{item}/{attempt}"


def marked(mark: str) -> dict[int, int]:
    """pid → process group of every live process of the run ``mark`` (not this process's group)."""
    needle = f"{RUN_MARK}={mark}".encode()
    own = os.getpgrp()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            pgid = os.getpgid(int(entry))
        except (OSError, ProcessLookupError):
            continue  # gone meanwhile, or a kernel thread
        if needle in environ and pgid != own:
            found[int(entry)] = pgid
    return found


def end_run(mark: str, *, grace: float) -> list[int]:
    """End every process of the run ``mark``: SIGTERM to their groups, ``grace`` seconds, then SIGKILL to
    what is left. The pids found; [] when the run left nothing behind."""
    found = marked(mark)
    groups = set(found.values())
    for pgid in groups:
        signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while marked(mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left := marked(mark):
        for pgid in groups | set(left.values()):
            signal_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + KILL_WAIT
        while marked(mark) and time.monotonic() < deadline:
            time.sleep(0.01)
    return sorted(found)
