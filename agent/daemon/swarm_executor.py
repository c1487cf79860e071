"""Drain, undrain and remove swarm nodes: the LCMClusterStates this machine is named the executor of.

Only the first control machine acts (the planner labels each ``sd-``/``sr-`` object with
``lcm.mirantis.com/executor: <that machine>``, see docs/swarm.md): a root task of every agent, it waits until
its machine is ``type: control``, then watches the LCMClusterStates of its namespace carrying its own name in
that label. Each one whose ``status.value`` differs from ``spec.value`` is carried out by running one of the
release's maintenance playbooks on this machine (a manager), through the same ``run_item`` as the state
items, one object at a time:

* ``swarm-drain``: ``maintenance/swarm-drain.yml`` with ``node_address`` (the target machine's InternalIP,
  which is its swarm ``advertiseAddress``) and ``availability`` (``drain``/``active``); the target
  LCMMachine's ``status.swarmCordonDrain`` goes ``cordondraining`` → ``cordondrained`` (``uncordoning`` →
  unset), with ``swarmCordonDrainError`` holding the last failure;
* ``swarm-remove``: ``maintenance/swarm-remove.yml`` with ``node_address``.

The outcome lands in the object's ``status {value, message, attempt}`` (``message``: the last error, empty on
success). A failure is retried with the agent's backoff, paced from the status (``lastFailure``: the value
that failed, how often in a row, when it last ended), so a restarted agent keeps the pacing; another type
(``cordon-drain`` is Kubernetes-only) gets a status message saying so once, and no retry. The objects are
followed like the machine itself (``adapters.followed``): the answer to the executor's own status write is
the newest version it knows, and older watch events are skipped.

Before a drain (``value`` true) and a removal it looks at the swarm through its own engine
(``agent.decisions.disruption``): a drain that would take a replicated service below its disruption budget,
or take a manager out while the other reachable managers would lose their Raft quorum, is not started; the
reason goes into the object's ``status.waiting`` (``DisruptionBudget``, ``QuorumGuard``) and the check is
made again every ``guard_period`` seconds, so the drain starts once the rescheduled tasks run elsewhere. A
blocked service whose tasks swarm will never move by itself (all on this node, after an earlier drain) is
given a rolling forced update, once per drain. Budget labels it could not use go into ``status.warnings``.
An engine it cannot read leaves the decision to the playbook, which reports the engine's own error.

Serialised with the item worker (``one_at_a_time``): both drive the same engine, and a drain racing the
machine's own engine restart (a ``daemon-config`` item) would fail half-way for nothing. The cost is that a
drain may wait for the running item; the planner drains a machine before it runs that machine's items, so
the wait never feeds back into itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.adapters import swarm
from agent.adapters.followed import UNTIL_LANDED, FollowedObjects, write
from agent.adapters.kube import Kube, KubeError, Resource
from agent.adapters.watching import WatchSettings
from agent.api.execution import EXIT_CANCELLED, EXIT_FAILED, EventSink, ItemInput, ItemResult
from agent.api.models import GROUP, VERSION, CordonDrain, InvalidObjectError, LCMClusterState, LCMMachine
from agent.daemon.own_machine import LCMMACHINES, OwnMachine
from agent.daemon.worker import RunItem, utcnow
from agent.decisions.disruption import check_drain, quorum_refusal
from agent.decisions.reporting import clip
from agent.decisions.swarm_operations import (
    DRAIN_PLAYBOOK,
    REMOVE_PLAYBOOK,
    Operation,
    Settle,
    drain_wait,
    failure_after,
    operation,
    paced,
    retry_at,
    settled,
)
from agent.kits.backoff import Backoff
from agent.kits.tasks import cancel_and_wait, first_of

log = logging.getLogger(__name__)

LCMCLUSTERSTATES = Resource(GROUP, VERSION, "lcmclusterstates")
EXECUTOR_LABEL = "lcm.mirantis.com/executor"
PHASE = "maintenance"
"""``lcm_phase`` of the maintenance runs, which belong to no phase of the machine's own items."""


@dataclass(frozen=True)
class ExecutorSettings:
    """Where maintenance playbooks run and how failures are paced; seconds throughout."""

    namespace: str
    name: str
    release_dir: Path
    work_dir: Path
    """Artifacts of maintenance runs, apart from the state items' (an item may be named ``sd-x`` too)."""
    backoff: Backoff
    stop_grace_period: float = 60.0
    timeout: float = 1800.0
    """A drain waits until the node runs no tasks; one that cannot finish (a task that fits nowhere else)
    must not hold the executor, and the worker behind it, forever."""
    node_vars: Mapping[str, str] = field(default_factory=dict)
    docker_host: str = "unix:///var/run/docker.sock"
    """This manager's engine, which the disruption budgets and the quorum guard look at."""
    guard_period: float = 5.0
    """How often a drain or removal held back by a budget or the quorum guard is checked again."""


@dataclass(frozen=True)
class Guarded:
    """What the look at the swarm found before an operation: why it must wait (None: it may go), and the
    budget labels it could not use."""

    waiting: dict[str, str] | None = None
    warnings: tuple[str, ...] = ()


class TargetError(Exception):
    """The target machine cannot be acted on (not found, no address, its status not writable)."""


class ClusterStateExecutor:
    """Carries out this machine's LCMClusterStates; ``run`` is a root task of the daemon."""

    def __init__(
        self, kube: Kube, own: OwnMachine, settings: ExecutorSettings, *, run_item: RunItem,
        on_event: EventSink, watch: WatchSettings, clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.kube, self.own, self.settings = kube, own, settings
        self.run_item, self.on_event, self.watch, self.clock = run_item, on_event, watch, clock
        self.states: FollowedObjects[LCMClusterState] = FollowedObjects(LCMClusterState)
        self._fields = own.fields
        self._recheck: dict[str, datetime] = {}
        """Held-back objects by name: when to look at the swarm again."""
        self._rebalanced: dict[tuple[str, str | None, str], set[str]] = {}
        """Services force-updated per drain request (name, creation, value): never twice for one drain."""

    async def run(self, stopping: asyncio.Event) -> None:
        """Idle until the machine is a control machine; then execute until ``stopping``."""
        if not await self._until_control(stopping):
            return
        log.info("executing the LCMClusterStates labelled %s=%s", EXECUTOR_LABEL, self.settings.name,
                 extra=self._fields)
        watcher = asyncio.ensure_future(self.states.follow(
            self.kube, LCMCLUSTERSTATES, self.settings.namespace,
            label_selector=f"{EXECUTOR_LABEL}={self.settings.name}", settings=self.watch))
        work = asyncio.ensure_future(self._work(stopping))
        try:
            await first_of(watcher, work)
            if watcher.done():
                await cancel_and_wait(work)
                watcher.result()  # raises what ended it
            await work
        finally:
            await cancel_and_wait(watcher, work)

    async def _until_control(self, stopping: asyncio.Event) -> bool:
        while not stopping.is_set():
            seen = self.own.version
            machine = self.own.latest
            if machine is not None and machine.spec.type == "control":
                return True
            await self.own.wait(seen, stopping, None)
        return False

    async def _work(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            seen = self.states.version
            state, until = self._next(self.clock())
            if state is not None:
                await self._handle(state, stopping)
                continue
            seconds = None if until is None else (until - self.clock()).total_seconds()
            await self.states.wait(seen, stopping, seconds)

    def _next(self, now: datetime) -> tuple[LCMClusterState | None, datetime | None]:
        """The first object due (by name), else when the soonest one is (None: when something changes)."""
        soonest: datetime | None = None
        for state in sorted(self.states.models(), key=lambda s: str(s.metadata.name)):
            if settled(state):
                continue
            due = retry_at(state, self.settings.backoff) or self._recheck.get(str(state.metadata.name))
            if due is not None and due > now:
                soonest = due if soonest is None else min(soonest, due)
                continue
            return state, None
        return None, soonest

    async def _handle(self, state: LCMClusterState, stopping: asyncio.Event) -> None:
        name, spec = str(state.metadata.name), state.spec
        todo = operation(state)
        if isinstance(todo, Settle):
            log.info("%s: %s", name, todo.message or f"{spec.type}={spec.value}: nothing to do",
                     extra=self._fields)
            await self._report(state, {"value": todo.value, "message": todo.message,
                                       "attempt": state.status.attempt}, stopping)
            return
        self._recheck.pop(name, None)
        guarded = await self._guard(state, todo)
        if guarded.waiting is not None:
            await self._hold(state, guarded, stopping)
            return
        attempt = state.status.attempt + 1
        fields = {**self._fields, "item": name, "attempt": attempt}
        log.info("%s %s=%s on machine %s", name, spec.type, spec.value, spec.arg, extra=fields)
        result = await self._attempt(state, todo, attempt, stopping)
        log.info("%s %s (exit code %d)", name, result.result, result.exit_code, extra=fields)
        outcome: dict[str, Any] = {"waiting": None, "warnings": list(guarded.warnings) or None}
        if result.succeeded:
            outcome |= {"value": spec.value, "message": "", "attempt": attempt, "lastFailure": None}
            self._rebalanced.pop(self._drain_key(state), None)
        else:
            now = self.clock()
            failure = failure_after(state, now)
            outcome |= {"value": state.status.value, "message": clip(result.message), "attempt": attempt,
                        "lastFailure": failure}
            delay = (paced(state, failure["count"], now, self.settings.backoff) - now).total_seconds()
            log.info("%s: retrying in %.1fs", name, delay, extra=self._fields)
        await self._report(state, outcome, stopping)

    async def _guard(self, state: LCMClusterState, todo: Operation) -> Guarded:
        """The look at the swarm before a drain or a removal: whether a service's budget or the managers'
        quorum holds it back. Undrains are never held; a target without an address or an engine that
        cannot be read leaves it to the attempt, which fails with the reason."""
        draining = todo.playbook == DRAIN_PLAYBOOK and todo.params.get("availability") == "drain"
        if not (draining or todo.playbook == REMOVE_PLAYBOOK):
            return Guarded()
        host = self.settings.docker_host
        try:
            address = await self._address(state.spec.arg)
            view = await asyncio.to_thread(swarm.snapshot, host)
        except (TargetError, swarm.SwarmError) as exc:
            log.info("%s: the swarm was not checked (%s); the playbook decides", state.metadata.name, exc,
                     extra=self._fields)
            return Guarded()
        if refusal := quorum_refusal(view, address, removal=not draining):
            return Guarded({"reason": "QuorumGuard", "message": refusal})
        if not draining:
            return Guarded()
        current = {self._drain_key(s) for s in self.states.models()}
        self._rebalanced = {key: ids for key, ids in self._rebalanced.items() if key in current}
        done = self._rebalanced.setdefault(self._drain_key(state), set())
        check = check_drain(view, address, rebalanced=done)
        if check.allowed:
            return Guarded(warnings=check.warnings)
        for blocker in check.blockers:
            if blocker.rebalance:
                log.info("%s: rebalancing service %s (a rolling forced update)", state.metadata.name,
                         blocker.service, extra=self._fields)
                done.add(blocker.service_id)
                try:
                    await asyncio.to_thread(swarm.force_update, host, blocker.service_id)
                except swarm.SwarmError as exc:
                    log.warning("%s: %s", state.metadata.name, exc, extra=self._fields)
        return Guarded({"reason": "DisruptionBudget", "message": clip(check.message)}, check.warnings)

    @staticmethod
    def _drain_key(state: LCMClusterState) -> tuple[str, str | None, str]:
        return str(state.metadata.name), state.metadata.creation_timestamp, state.spec.value

    async def _hold(self, state: LCMClusterState, guarded: Guarded, stopping: asyncio.Event) -> None:
        """Say why the operation waits (once per change of the reason) and look again after a period."""
        name = str(state.metadata.name)
        waiting = state.status.waiting
        written = (None if waiting is None else {"reason": waiting.reason, "message": waiting.message},
                   state.status.warnings)
        if written != (guarded.waiting, guarded.warnings):
            log.info("%s waits: %s", name, guarded.waiting, extra=self._fields)
            status = {"waiting": guarded.waiting, "warnings": list(guarded.warnings) or None}
            await self._report(state, status, stopping)
        self._recheck[name] = self.clock() + timedelta(seconds=self.settings.guard_period)

    async def _attempt(
        self, state: LCMClusterState, todo: Operation, attempt: int, stopping: asyncio.Event,
    ) -> ItemResult:
        """One run with the target's marks around it; every write it needs is part of the attempt."""
        target = state.spec.arg
        try:
            address = await self._address(target)
            if todo.cordon is not None:
                await self._mark(target, todo.cordon[0], "")
            result = await self._execute(state, todo, address, attempt, stopping)
            if todo.cordon is not None:
                after = todo.cordon[1] if result.succeeded else todo.cordon[0]
                await self._mark(target, after, "" if result.succeeded else clip(result.message))
        except TargetError as exc:
            return ItemResult(EXIT_FAILED, "failed", str(exc))
        return result

    async def _address(self, machine: str) -> str:
        """The target's swarm address: its InternalIP, which the planner gave it as ``advertiseAddress``."""
        try:
            raw = await self.kube.get(LCMMACHINES, self.settings.namespace, machine)
            address = LCMMachine.from_raw(raw).status.internal_ip
        except (KubeError, InvalidObjectError) as exc:
            raise TargetError(f"cannot read machine {machine}: {exc}") from None
        if address is None:
            raise TargetError(f"machine {machine} has reported no InternalIP: its swarm node cannot be found")
        return address

    async def _mark(self, machine: str, value: CordonDrain | None, error: str) -> None:
        patch = {"status": {"swarmCordonDrain": value, "swarmCordonDrainError": error}}
        try:
            await self.kube.patch(LCMMACHINES, self.settings.namespace, machine, patch, subresource="status")
        except KubeError as exc:
            raise TargetError(f"cannot write swarmCordonDrain of machine {machine}: {exc}") from None

    async def _execute(
        self, state: LCMClusterState, todo: Operation, address: str, attempt: int, stopping: asyncio.Event,
    ) -> ItemResult:
        machine = self.own.latest
        params = {"playbook": todo.playbook, "node_address": address, **todo.params}
        timeout = self.settings.timeout
        if todo.params.get("availability") == "drain":
            wait = drain_wait(state, self.clock())
            params["drain_timeout"] = f"{wait:.0f}"
            timeout = max(timeout, wait + self.settings.stop_grace_period)
        inputs = ItemInput(
            machine=self.settings.name, name=str(state.metadata.name), runner="ansible",
            version=machine.spec.release if machine is not None else "", phase=PHASE,
            params=params, attempt=attempt, release_dir=self.settings.release_dir,
            work_dir=self.settings.work_dir, timeout=timeout, node_vars=self.settings.node_vars,
        )
        task = asyncio.ensure_future(self._run(inputs))
        try:
            await first_of(task, stopping.wait())
            if not task.done():
                log.info("stopping: the running %s gets %.0fs to finish", inputs.name,
                         self.settings.stop_grace_period, extra=self._fields)
                await first_of(task, seconds=self.settings.stop_grace_period)
                task.cancel()  # a no-op when it finished in time
            return await task
        except asyncio.CancelledError:
            await cancel_and_wait(task)
            raise

    async def _run(self, inputs: ItemInput) -> ItemResult:
        try:
            return await self.run_item(inputs, self.on_event)
        except asyncio.CancelledError:  # while waiting for the worker's item (``one_at_a_time``)
            return ItemResult(EXIT_CANCELLED, "cancelled", "cancelled")

    async def _report(self, state: LCMClusterState, status: dict[str, Any], stopping: asyncio.Event) -> None:
        """Write the object's status until it lands (an attempt's outcome must reach it, or the attempt
        would be repeated at once); if the server refuses it for good, decide again after a pause."""
        name = str(state.metadata.name)
        written = await write(self.kube, LCMCLUSTERSTATES, self.settings.namespace, name, {"status": status},
                              into=self.states, retry=UNTIL_LANDED, backoff=self.settings.backoff,
                              stopping=stopping, what=f"{name}: status write", fields=self._fields)
        if written is None and not stopping.is_set():
            await self.states.wait(self.states.version, stopping, self.settings.backoff.base)


def one_at_a_time(run_item: RunItem) -> RunItem:
    """``run_item`` that runs one item at a time, whoever calls it (the worker, the executor), in call
    order."""
    lock = asyncio.Lock()

    async def serialised(item: ItemInput, on_event: EventSink) -> ItemResult:
        async with lock:
            return await run_item(item, on_event)

    return serialised
