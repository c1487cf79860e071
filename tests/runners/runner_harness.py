"""Helpers for the runner tests: item building, process inspection, file scanning."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.adapters.runners import RunnerSettings, run_item
from agent.api.execution import ItemEvent, ItemInput, ItemResult

PLAYBOOKS = Path(__file__).parent / "playbooks"
FAST = RunnerSettings(grace=0.5, poll_interval=0.05, drain_seconds=0.5)


@dataclass
class Runs:
    """Builds items for one test and runs them, collecting every event."""

    release_dir: Path
    work_dir: Path
    events: list[ItemEvent] = field(default_factory=list)

    def item(
        self,
        runner: str,
        params: Mapping[str, str],
        *,
        name: str = "item",
        attempt: int = 1,
        secrets: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> ItemInput:
        return ItemInput(
            machine="node-1", name=name, runner=runner, version="1.0", phase="deploy", params=params,
            attempt=attempt, release_dir=self.release_dir, work_dir=self.work_dir, timeout=timeout,
            secrets=secrets or {},
        )

    async def run(self, item: ItemInput, settings: RunnerSettings = FAST) -> ItemResult:
        return await run_item(item, self.events.append, settings=settings)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def _processes() -> list[tuple[int, str, int, int]]:
    """(pid, state, ppid, process group) of every process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        state, ppid, pgid = stat[stat.rindex(")") + 2 :].split()[:3]
        found.append((int(entry), state, int(ppid), int(pgid)))
    return found


def group_members(pgid: int) -> list[int]:
    """Live pids in process group ``pgid``; zombies re-parented to init are init's to reap, not ours."""
    return [pid for pid, state, _, group in _processes() if group == pgid and state != "Z"]


def zombie_children() -> list[int]:
    """Children of this process that exited and were never waited for."""
    return [pid for pid, state, ppid, _ in _processes() if ppid == os.getpid() and state == "Z"]


def command_lines() -> list[bytes]:
    """The argv of every process, as the process list shows them."""
    lines = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    lines.append(f.read())
            except OSError:
                continue
    return lines


