"""One machine, one worker: follow the LCMMachine and run its state items in order, reporting each.

The object comes from the agent's ``OwnMachine`` handle (one watch, shared with every root task); the
worker asks the pure ``next_step`` what to do with it and does that one thing (run an item, report one,
wait). Its status writes go through the handle's one write path, so it never decides on a version of the
object from before its own write: outcomes are written ``UNTIL_LANDED`` (the journal holds them meanwhile),
marks and facts with a few tries or once.

While an item runs, a spec change is only looked at: if the running item was removed from the spec it is
cancelled, otherwise it finishes and the next decision follows the new spec.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from agent.adapters.followed import ONCE, UNTIL_LANDED, Retry
from agent.adapters.journal import Journal
from agent.adapters.runners import artifacts
from agent.api.execution import EXIT_CANCELLED, EventSink, ItemInput, ItemResult
from agent.api.models import LCMMachine
from agent.daemon.metrics import AgentMetrics
from agent.daemon.own_machine import OwnMachine
from agent.decisions.execution import (
    Idle,
    LocalRecord,
    Rehash,
    Report,
    Run,
    Step,
    Wait,
    next_step,
    outcome_write,
    rehash_patch,
)
from agent.decisions.reporting import (
    catch_up_patch,
    finished_patch,
    finished_slot,
    started_patch,
    summary_patch,
)
from agent.kits.backoff import Backoff
from agent.kits.tasks import cancel_and_wait, first_of

log = logging.getLogger(__name__)


RunItem = Callable[[ItemInput, EventSink], Coroutine[Any, Any, ItemResult]]

MARK = Retry(3)
"""An item's "started" mark: best effort, a few tries; with the API down the item still runs (the journal
holds the mark) and its outcome is written once the API is back."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WorkerSettings:
    """Where items run and how failures are paced; seconds throughout."""

    namespace: str
    name: str
    release_dir: Path
    """Root of the release's playbooks: an ansible item's ``playbook`` param is resolved inside it only."""
    work_dir: Path
    """Artifacts of item runs (0700)."""
    backoff: Backoff
    """Retry pacing of failed items (failed status writes are paced by the ``OwnMachine`` handle)."""
    stop_grace_period: float = 60.0
    """On stop, how long a running item may take before it is cancelled."""
    host_info_period: float = 60.0
    """How often host facts are re-read between items; written only when they changed."""
    node_vars: Mapping[str, str] = field(default_factory=dict)
    """Every item's ``ItemInput.node_vars``: this machine's own vars for the playbooks."""


class ItemSteps(Protocol):
    """What happens around each run (the swarm join tokens, ``swarm_tokens.SwarmTokens``)."""

    async def prepare(self, item: ItemInput) -> ItemInput | ItemResult:
        """The input to run (secrets added), or the result of an item that must not run."""

    async def finish(self, item: ItemInput, result: ItemResult) -> ItemResult:
        """The run's result, or the failure of what had to follow a successful run."""


class HostRefresh(Protocol):
    """Re-reads host facts (``registration.FactsTracker``): the registration fields that changed."""

    async def changes(self, machine: LCMMachine) -> dict[str, Any]: ...

    def written(self, fields: Mapping[str, Any]) -> None: ...


class MachineWorker:
    """Runs the machine's items; ``run`` returns once ``stopping`` is set and the running item is over."""

    def __init__(
        self, journal: Journal, settings: WorkerSettings, *, run_item: RunItem,
        on_event: EventSink, own: OwnMachine, steps: ItemSteps,
        host_facts: HostRefresh | None = None, clock: Callable[[], datetime] = utcnow,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self.own = own
        self.metrics = metrics
        self.journal = journal
        self.settings = settings
        self.run_item = run_item
        self.steps = steps
        self.on_event = on_event
        self.clock = clock
        self.host_facts = host_facts
        self._refresh_due = time.monotonic() + settings.host_info_period
        self._nudged = asyncio.Event()
        self._running: tuple[str, asyncio.Task[ItemResult]] | None = None
        self._caught_up: str | None = None
        """resourceVersion of the last catch-up write's result."""
        self._spec_names: frozenset[str] | None = None
        """Item names of the spec last looked at: removed items are cleaned up once, when they go."""
        self.step: Step = Idle("starting")
        self._fields = {"machine": settings.name, "namespace": settings.namespace}
        self._named: set[str] = set()
        """Spec fields already named in the log as kept but not acted on."""

    @property
    def latest(self) -> LCMMachine | None:
        return self.own.latest

    def refresh_host_now(self) -> None:
        """Re-read host facts at the next chance instead of at the end of the period (the hardware
        changed); as always, only changed facts are written."""
        self._refresh_due = time.monotonic()
        self._nudged.set()

    def cancel_running(self, item: str = "") -> str | None:
        """Cancel the running item's attempt (only if it is ``item``, when given); the name of the item
        cancelled, or None. The attempt ends "cancelled" and is retried with backoff like any failure:
        to keep an item from running, the LCMMachine is the place (remove it, or set ``haltAgent``)."""
        if self._running is None or item not in ("", self._running[0]):
            return None
        name, task = self._running
        log.info("cancelling the running item on request", extra={**self._fields, "item": name})
        task.cancel()
        return name

    async def run(self, stopping: asyncio.Event) -> None:
        """Drive until stopped; cancelled (a forced stop), it first kills its running item's processes."""
        while not stopping.is_set():
            seen = self.own.version
            machine = self.own.latest
            if machine is None:
                await self._wait(stopping, None, seen)
                continue
            if time.monotonic() >= self._refresh_due:
                await self._refresh_host(machine, stopping)
            self._forget_removed(machine)
            self._name_unused(machine)
            step = next_step(machine, self._local(), self.clock(), self.settings.backoff)
            if step != self.step:
                log.info("next step: %s", _describe(step), extra=self._fields)
            self.step = step
            if isinstance(step, Run):
                await self._execute(machine, step, stopping)
            elif isinstance(step, Report):
                await self._report(machine, step)
            elif isinstance(step, Rehash):
                if await self._write(rehash_patch(machine, step), None, UNTIL_LANDED) is None:
                    await asyncio.sleep(self.own.pause())
            elif await self._catch_up(machine, stopping):
                continue
            elif isinstance(step, Wait):
                await self._wait(stopping, (step.until - self.clock()).total_seconds(), seen)
            else:
                await self._wait(stopping, None, seen)

    async def _catch_up(self, machine: LCMMachine, stopping: asyncio.Event) -> bool:
        """With nothing to run or report, write what a spec change left stale in the status (slots of
        removed items, state, progress, release); True when a write landed and the next decision is due."""
        if machine.status.internal_ip is None or machine.metadata.resource_version == self._caught_up:
            return False  # registration writes first; a server that kept something else is not asked twice
        patch = catch_up_patch(machine)
        if patch is None:
            return False
        log.info("status catches up with the spec", extra=self._fields)
        written = await self._write(patch, stopping, ONCE)
        if written is None:
            return False
        self._caught_up = written.metadata.resource_version
        return True

    def _name_unused(self, machine: LCMMachine) -> None:
        """Name, once each, the spec fields another writer (Mirantis' controllers) set that this agent keeps
        as they are but does not act on (``mcrVersion``, ``sshAuthorizedKeys``...)."""
        new = sorted(set(machine.spec.model_extra or {}) - self._named)
        if new:
            self._named.update(new)
            log.info("spec fields kept, not acted on: %s", ", ".join(new), extra=self._fields)

    async def _wait(self, stopping: asyncio.Event, seconds: float | None, seen: int) -> None:
        """Until the object moves past ``seen``, ``stopping`` is set, ``seconds`` pass, or host facts are
        due, or ``refresh_host_now`` makes them due."""
        self._nudged.clear()
        due = self._refresh_due - time.monotonic()
        await first_of(self.own.wait(seen, stopping, due if seconds is None else min(seconds, due)),
                       self._nudged.wait())

    async def _refresh_host(self, machine: LCMMachine, stopping: asyncio.Event) -> None:
        """Write host facts that changed since the last report; a failed write is retried next period."""
        self._refresh_due = time.monotonic() + self.settings.host_info_period
        if self.host_facts is None:
            return
        fields = await self.host_facts.changes(machine)
        if fields:
            log.info("host facts changed: %s", ", ".join(sorted(fields)), extra=self._fields)
            if await self._write(summary_patch(machine, fields), stopping, ONCE) is not None:
                self.host_facts.written(fields)

    def _forget_removed(self, machine: LCMMachine) -> None:
        """Drop the journal's record and the artifacts of items no longer in the spec: an in-progress mark
        of an item that was removed while the agent was down would otherwise stay "in progress" forever,
        and artifact directories of churned items would pile up on disk."""
        names = frozenset(item.name for item in machine.spec.state_items)
        if names != self._spec_names:
            self._spec_names = names
            if removed := artifacts.forget_others(self.settings.work_dir, names):
                log.info("removed artifacts of %d items gone from the spec", len(removed), extra=self._fields)
        mark = self.journal.in_progress
        known = set(self.journal.finished) | ({mark.item} if mark is not None else set())
        for name in known - names:
            self.journal.forget(name)

    def _local(self) -> LocalRecord:
        finished = {name: (f.hash, f.exit_code) for name, f in self.journal.finished.items()}
        mark = self.journal.in_progress
        return LocalRecord(finished, (mark.item, mark.hash, mark.attempt) if mark else None)

    async def _execute(self, machine: LCMMachine, step: Run, stopping: asyncio.Event) -> None:
        """Run ``step``'s item, then the ones that follow it straight away: each outcome is written together
        with the next item's "started" mark, one write per item instead of two."""
        started = self.clock()
        self.journal.mark_started(step.item.name, step.hash, step.attempt, started)
        # The status mark is best effort: with the API down the item still runs (the journal holds the
        # mark), and the outcome is reported once the API is back.
        mark = started_patch(machine, step.item.name, step.hash, step.attempt, started)
        machine = await self._write(mark, stopping, MARK) or machine
        current: Run | None = step
        while current is not None:
            result, finished = await self._run_item(current, stopping)
            # State and progress are derived from the newest object known, not the one the item started from:
            # a spec changed meanwhile (an item added) must not make this write claim Ready.
            newest = self.latest or machine
            outcome = finished_slot(current.hash, current.attempt, exit_code=result.exit_code,
                                    result=result.result, message=result.message, started_at=started,
                                    now=finished)
            # Host facts due, or stopping: the main loop decides what comes next, after this write.
            chain = not stopping.is_set() and time.monotonic() < self._refresh_due
            patch, following = outcome_write(newest, current.item.name, outcome, self._local(), finished,
                                             self.settings.backoff, chain=chain)
            if following is not None:
                self.step = following
                log.info("next step: %s", _describe(following), extra=self._fields)
            written = await self._write(patch, stopping, UNTIL_LANDED)
            if following is None or written is None:
                return
            started = finished
            self.journal.mark_started(following.item.name, following.hash, following.attempt, started)
            machine, current = written, following

    async def _run_item(self, step: Run, stopping: asyncio.Event) -> tuple[ItemResult, datetime]:
        """One run of ``step``'s item (its "started" mark already written), recorded in the journal."""
        item, fields = step.item, {**self._fields, "item": step.item.name, "attempt": step.attempt}
        inputs = ItemInput(
            machine=self.settings.name, name=item.name, runner=item.runner, version=item.version,
            phase=item.phase, params=step.params, attempt=step.attempt, release_dir=self.settings.release_dir,
            work_dir=self.settings.work_dir, timeout=_seconds(step.params.get("timeout")),
            node_vars=self.settings.node_vars,
        )
        log.info("item started", extra=fields)
        began = time.monotonic()
        result = await self._supervise(asyncio.create_task(self._run(inputs)), item.name, stopping)
        finished = self.clock()
        if self.metrics is not None:
            took = time.monotonic() - began
            self.metrics.item_ended(item.name, item.phase, step.attempt, result.result, took)
        self.journal.mark_finished(item.name, step.hash, result.exit_code, finished)
        log.info("item %s (exit code %d)", result.result, result.exit_code, extra=fields)
        return result, finished

    async def _run(self, inputs: ItemInput) -> ItemResult:
        """The run between its steps. Cancelled, it still returns a result, as ``run_item`` does."""
        try:
            prepared = await self.steps.prepare(inputs)
            if isinstance(prepared, ItemResult):
                return prepared
            return await self.steps.finish(prepared, await self.run_item(prepared, self.on_event))
        except asyncio.CancelledError:
            return ItemResult(EXIT_CANCELLED, "cancelled", "cancelled")

    async def _supervise(
        self, task: asyncio.Task[ItemResult], name: str, stopping: asyncio.Event,
    ) -> ItemResult:
        """Wait for the run; cancel it if its item leaves the spec, or when stopping outlasts the grace.

        If the worker itself is cancelled (a forced stop), the run is cancelled too and waited for, so
        the item's processes are gone before the daemon exits.
        """
        self._running = (name, task)
        try:
            await self._watch_run(task, name, stopping)
        except asyncio.CancelledError:
            await cancel_and_wait(task)
            raise
        finally:
            self._running = None
        return await task

    async def _watch_run(self, task: asyncio.Task[ItemResult], name: str, stopping: asyncio.Event) -> None:
        while not task.done():
            seen = self.own.version
            await first_of(task, self.own.moved_from(seen), stopping.wait())
            if task.done():
                return
            if stopping.is_set():
                log.info("stopping: the running item gets %.0fs to finish", self.settings.stop_grace_period,
                         extra={**self._fields, "item": name})
                await first_of(task, seconds=self.settings.stop_grace_period)
                task.cancel()  # a no-op when it finished in time
                return
            latest = self.latest
            if latest is not None and all(i.name != name for i in latest.spec.state_items):
                log.info("item removed from the spec while running; cancelling it",
                         extra={**self._fields, "item": name})
                task.cancel()
                return

    async def _report(self, machine: LCMMachine, step: Report) -> None:
        done = self.journal.finished[step.item.name]
        patch = finished_patch(machine, step.item.name, step.hash, step.attempt, exit_code=done.exit_code,
                               result="success", message="", started_at=None, now=done.finished_at)
        if await self._write(patch, None, UNTIL_LANDED) is None:
            await asyncio.sleep(self.own.pause())

    async def _write(
        self, patch: dict[str, Any], stopping: asyncio.Event | None, retry: Retry,
    ) -> LCMMachine | None:
        """Write a status patch through the agent's one write path (``stopping`` None: not even a stop
        ends the retries); the object as the server stored it, now ``latest``, or None when it gave up."""
        return await self.own.write(patch, retry=retry, stopping=stopping)


def _seconds(text: str | None) -> float | None:
    """The ``timeout`` param as positive seconds; absent or unreadable means no limit."""
    try:
        value = float(text) if text is not None else 0.0
    except ValueError:
        return None
    return value if value > 0 else None


def _describe(step: Step) -> str:
    if isinstance(step, Idle):
        return f"idle ({step.reason})"
    if isinstance(step, Wait):
        return f"retry {step.item.name} (attempt {step.attempt}) at {step.until.isoformat()}"
    if isinstance(step, Rehash):
        return f"rewrite the old hash of {sorted(step.hashes)} (done under the old rules)"
    verb = "run" if isinstance(step, Run) else "report"
    return f"{verb} {step.item.name} (attempt {step.attempt})"
