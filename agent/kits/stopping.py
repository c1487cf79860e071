"""Stopping a process's main task on signals, and running a step so that a stop request wins over it.

Registration and a self-upgrade attempt can take long (an API that is down, a hung download); a SIGTERM
must not wait for them. The step is cancelled and awaited, so it cleans up before the daemon goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def until_stopped(coro: Coroutine[Any, Any, T], stopping: asyncio.Event) -> T | None:
    """``coro``'s result, or None when ``stopping`` was set first (then ``coro`` is cancelled and awaited)."""
    task = asyncio.ensure_future(coro)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait([task, stop], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


class StopSignals:
    """SIGTERM/SIGINT set ``stopping`` (a clean stop: the main task finishes its work); a second signal
    cancels the main task, and ``forced`` then tells the caller to exit 130 instead of re-raising the
    cancellation. The agent and the scheduler share this so both honour systemd's stop the same way."""

    def __init__(self, main_task: asyncio.Task[Any], stopping: asyncio.Event) -> None:
        self.main_task, self.stopping = main_task, stopping
        self.forced = False
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)

    def _on_signal(self) -> None:
        if self.stopping.is_set():
            self.forced = True
            self.main_task.cancel()
        self.stopping.set()
