"""Whether a process still runs: the lab's services, the processes of a torn-down lab and the machines ask
it the same way, so they agree on what a zombie is."""

from __future__ import annotations

import psutil


def alive(pid: int) -> bool:
    """Running: present and not a zombie. An exited process that nobody has reaped yet keeps its pid and its
    /proc entry, but nothing of it runs any more; a stop that waits for the pid to vanish would wait for
    whoever reaps it."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
