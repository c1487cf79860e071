"""Stopping a process's main task on signals: the first asks it to stop, the second forces.

A signal only sets an event (uvicorn's and trio's way), so that tests trigger the same clean stop by setting
it; ``tasks.until_stopped`` runs a long step (registration, a self-upgrade attempt) so that the stop wins.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any


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
