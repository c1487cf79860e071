"""Cancellation and timeouts for work that owns child processes: stop it in steps, always wait for it.

A runner's work (a subprocess, ansible-runner's thread) must never outlive the run: when the item times
out or the awaiting task is cancelled, the work is told to stop (SIGTERM to every process group of the
child's tree, a grace period, SIGKILL to them all) and then waited for, even if the cancellation is
repeated meanwhile, so no child is left running or unreaped. Whole groups, and all of them, because a
playbook or script forks, and some of its children (Ansible's workers) start sessions of their own:
signalling only the leader, or only its group, would orphan them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from agent.api.execution import EXIT_CANCELLED, EXIT_FAILED, EXIT_TIMEOUT, Outcome

T = TypeVar("T")
KILL_WAIT = 5.0
"""Seconds to wait for SIGKILLed processes to disappear; only a process stuck in the kernel takes longer."""
Interruption = Literal["timeout", "cancelled"]


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid``, if it still exists."""
    if pgid == os.getpgrp():  # never the daemon's own group, whatever the caller computed
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


@dataclass(frozen=True)
class _Process:
    pid: int
    ppid: int
    pgid: int
    zombie: bool


def _processes() -> list[_Process]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may contain anything, so split after its last ")".
        state, ppid, pgid = stat[stat.rindex(")") + 2 :].split()[:3]
        found.append(_Process(int(entry), int(ppid), int(pgid), state == "Z"))
    return found


def tree_groups(root: int) -> set[int]:
    """The process groups of ``root`` and of all its descendants, from /proc.

    Needed because children leave their parent's group: Ansible's worker processes call ``setsid()``, so
    the modules a playbook runs are in a group of their own, which a kill of the playbook's group misses.
    """
    processes = _processes()
    children: dict[int, list[_Process]] = defaultdict(list)
    for process in processes:
        children[process.ppid].append(process)
    found = {p.pgid for p in processes if p.pid == root}
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), ()):
            found.add(child.pgid)
            pending.append(child.pid)
    return found


class TreeKiller:
    """Signals every process group a process tree has ever been seen to use, and waits for them to go.

    Groups are remembered from call to call: after SIGTERM the leader may exit and its children be
    re-parented to init, out of reach of a new walk from the root, yet the SIGKILL must still find them.
    """

    def __init__(self, root: int) -> None:
        self._root = root
        self._groups: set[int] = {root}

    def signal(self, sig: int) -> None:
        self._groups |= tree_groups(self._root)
        for pgid in self._groups:
            signal_group(pgid, sig)

    def wait_gone(self, timeout: float) -> bool:
        """Block until no live process is left in the groups (SIGKILL is asynchronous); False on timeout."""
        deadline = time.monotonic() + timeout
        while any(p.pgid in self._groups and not p.zombie for p in _processes()):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True


async def finish(awaitable: Awaitable[T]) -> T:
    """Await to the end, absorbing cancellations: used only once the work has been told to stop."""
    future = asyncio.ensure_future(awaitable)
    while True:
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done():
                return future.result()


async def supervise(
    work: asyncio.Future[T],
    *,
    time_limit: float | None,
    interrupt: Callable[[Interruption], Awaitable[None]],
) -> tuple[T, Interruption | None]:
    """Wait for ``work``; on timeout or cancellation run ``interrupt(reason)`` and wait for ``work`` anyway.

    Returns the work's result and why it was interrupted, if it was. A cancellation is reported, not
    re-raised: the caller turns it into a "cancelled" item result (see ``agent.adapters.runners``).
    """
    reason: Interruption
    try:
        return await asyncio.wait_for(asyncio.shield(work), time_limit), None
    except TimeoutError:
        reason = "timeout"
    except asyncio.CancelledError:
        reason = "cancelled"
    await finish(interrupt(reason))
    return await finish(work), reason


async def communicate_within(
    process: asyncio.subprocess.Process, stdin: bytes | None, limit: float,
) -> tuple[bytes | None, bytes | None]:
    """``process.communicate(stdin)`` within ``limit`` seconds. On timeout or cancellation the process's group
    (it must have been started with ``start_new_session=True``) is SIGKILLed and reaped before the
    TimeoutError or CancelledError propagates, so a bounded command never leaves its children behind."""
    try:
        return await asyncio.wait_for(process.communicate(stdin), limit)
    except BaseException:
        signal_group(process.pid, signal.SIGKILL)
        await asyncio.shield(process.wait())
        raise


async def stop_process_group(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the process's tree, wait up to ``grace`` for the leader, then SIGKILL the whole tree.

    The final SIGKILL is sent even when the leader exited in time: members that ignore SIGTERM must not
    survive their run. The process must have been started with ``start_new_session=True`` and without
    asyncio pipes (on Python 3.11 ``wait()`` also waits for those to close).
    """
    killer = TreeKiller(process.pid)
    killer.signal(signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), grace)
    killer.signal(signal.SIGKILL)
    await process.wait()
    await asyncio.to_thread(killer.wait_gone, KILL_WAIT)


def outcome(code: int, reason: Interruption | None, timeout: float | None) -> tuple[int, Outcome, str]:
    """Exit code, result and headline for a process that exited with ``code`` (negative: a signal)."""
    if reason == "timeout":
        return EXIT_TIMEOUT, "timeout", f"timed out after {timeout}s"
    if reason == "cancelled":
        return EXIT_CANCELLED, "cancelled", "cancelled"
    if code == 0:
        return 0, "success", "exited with 0"
    if code < 0:
        return EXIT_FAILED, "failed", f"killed by {signal.Signals(-code).name}"
    return code, "failed", f"exited with {code}"
