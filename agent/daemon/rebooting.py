"""The agent's reboot of its own machine, when the scheduler's ``spec.rebootRequired`` asks: a root task.

It follows the machine through the agent's ``OwnMachine`` handle, asks the pure ``reboot_step`` what to do
(``agent.decisions.rebooting`` has the steps) and does that: writes ``status.reboot`` through the one write
path, commits the journal's mark before it runs the reboot command, and after the boot reports the reboot
completed once the engine passes the desired-state checks the reconciler uses (running, in the swarm with
its role, its config and containers), so the scheduler undrains a node that is really back. Nothing starts
while a state item runs.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.adapters.atomic import write_atomic
from agent.adapters.engine_access import EngineAccess
from agent.adapters.engine_checks import observe
from agent.adapters.followed import ONCE
from agent.adapters.journal import Journal
from agent.api.models import LCMMachine
from agent.api.reboot_mark import RebootMark
from agent.daemon.config import RebootSettings
from agent.daemon.drift_watch import load_desired
from agent.daemon.own_machine import OwnMachine
from agent.decisions.drift import drift
from agent.decisions.rebooting import (
    Answer,
    Back,
    Clear,
    Failed,
    Here,
    Nothing,
    Reboot,
    RebootStep,
    reboot_step,
)
from agent.decisions.reporting import clip, summary_patch
from agent.kits.timestamps import rfc3339
from agent.reconciler.arguments import DESIRED_FILE

log = logging.getLogger(__name__)

BOOT_MARK = Path("/run/lcm-agent/boot")
"""Names this boot: made by the first agent of a boot, in ``/run`` (a tmpfs, empty after every boot). Not the
kernel's ``/proc/sys/kernel/random/boot_id``: a container's systemd gives a service its own ``/proc``, where
nspawn's per-container boot id is not mounted, so every boot of an nspawn machine would show the host's."""
COMMAND_LIMIT = 120.0
"""Seconds the reboot command may take to return (``systemctl reboot`` returns once the job is queued)."""
MESSAGE_LIMIT = 512


def here(settings: RebootSettings, mark: Path = BOOT_MARK) -> Here:
    """This boot (``mark``'s id, made now if this is the boot's first agent) and a new id for this agent
    process."""
    try:
        boot = mark.read_text().strip()
    except FileNotFoundError:
        boot = ""
    if not boot:
        mark.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        boot = uuid.uuid4().hex
        write_atomic(mark, boot.encode())
    return Here(boot, uuid.uuid4().hex, settings.restart_is_reboot)


class Rebooting:
    """``run`` is a root task of the daemon; ``busy`` says whether a state item is running."""

    def __init__(
        self, own: OwnMachine, journal: Journal, settings: RebootSettings, *, here: Here, state_dir: Path,
        access: EngineAccess, busy: Callable[[], bool],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.own, self.journal, self.settings, self.here = own, journal, settings, here
        self.state_dir, self.access, self.busy, self.clock = state_dir, access, busy, clock
        self.step: RebootStep = Nothing("starting")
        self._fields = own.fields

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            seen = self.own.version
            machine = self.own.latest
            step = Nothing("the LCMMachine is unknown") if machine is None else reboot_step(
                machine, self.journal.reboot, self.here)
            if step != self.step:
                log.info("reboot: %s", _describe(step), extra=self._fields)
                self.step = step
            pause = None if machine is None else await self._act(machine, step)
            await self.own.wait(seen, stopping, pause)

    async def _act(self, machine: LCMMachine, step: RebootStep) -> float | None:
        """Carry out ``step``; seconds until it is worth deciding again without a change of the object."""
        if isinstance(step, Nothing):
            return None
        if isinstance(step, Answer | Reboot) and self.busy():
            return self.settings.check_period
        if isinstance(step, Answer):
            answer = {"requestedAt": rfc3339(self.clock()), "completed": False}
            return await self._write(machine, answer)
        if isinstance(step, Reboot):
            self.journal.mark_reboot(RebootMark(step.requested_at, self.here.boot_id, self.here.run_id))
            failure = await self._reboot()
            if failure:
                self.journal.mark_reboot(RebootMark(step.requested_at, self.here.boot_id, self.here.run_id,
                                                    failed=failure))
            return self.settings.check_period
        if isinstance(step, Back):
            if not await self._engine_back():
                return self.settings.check_period
            return await self._write(machine, {**_answer(machine), "completed": True})
        if isinstance(step, Failed):
            return await self._write(machine, {**_answer(machine), "errorMessage": step.message})
        assert isinstance(step, Clear)
        if machine.status.reboot is not None and await self._write(machine, None) is not None:
            return self.settings.check_period
        self.journal.mark_reboot(None)
        return None

    async def _write(self, machine: LCMMachine, reboot: dict[str, Any] | None) -> float | None:
        """Write ``status.reboot`` (whole), with state and progress; a pause when the write failed."""
        written = await self.own.write(summary_patch(machine, {"reboot": reboot}), retry=ONCE,
                                       what="the reboot status write")
        return None if written is not None else self.own.pause()

    async def _reboot(self) -> str:
        """Run the reboot command; "" when it was accepted, else why not."""
        argv = shlex.split(self.settings.command)
        log.warning("rebooting the machine: %s", self.settings.command, extra=self._fields)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT)
            output, _ = await asyncio.wait_for(process.communicate(), COMMAND_LIMIT)
        except (OSError, TimeoutError) as exc:
            return clip(f"{self.settings.command}: {exc or type(exc).__name__}", MESSAGE_LIMIT)
        if process.returncode != 0:
            text = output.decode(errors="replace").strip()
            return clip(f"{self.settings.command}: exit code {process.returncode}: {text}", MESSAGE_LIMIT)
        return ""

    async def _engine_back(self) -> bool:
        """The engine passes the desired-state checks (none recorded: nothing to wait for)."""
        desired = load_desired(self.state_dir / DESIRED_FILE)
        if desired is None:
            return True
        drifts = drift(desired, await asyncio.to_thread(observe, self.access))
        if drifts:
            log.info("reboot: back; waiting for the engine: %s", "; ".join(d.reason for d in drifts),
                     extra=self._fields)
        return not drifts


def _answer(machine: LCMMachine) -> dict[str, Any]:
    reboot = machine.status.reboot
    return {} if reboot is None else reboot.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _describe(step: RebootStep) -> str:
    if isinstance(step, Nothing):
        return step.reason
    if isinstance(step, Failed):
        return f"failed: {step.message}"
    return {Answer: "asked: answering", Reboot: "rebooting now", Back: "back from the reboot",
            Clear: "no longer asked: clearing the answer"}[type(step)]
