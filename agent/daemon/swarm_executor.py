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
success). A failure is retried with the agent's backoff; another type (``cordon-drain`` is Kubernetes-only)
gets a status message saying so once, and no retry.

Serialised with the item worker (``one_at_a_time``): both drive the same engine, and a drain racing the
machine's own engine restart (a ``daemon-config`` item) would fail half-way for nothing. The cost is that a
drain may wait for the running item; the planner drains a machine before it runs that machine's items, so
the wait never feeds back into itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.adapters.kube import Kube, KubeError, Resource
from agent.adapters.watching import Change, Snapshot, WatchSettings, watch_resource
from agent.api.backoff import Backoff
from agent.api.execution import EXIT_CANCELLED, EXIT_FAILED, EventSink, ItemInput, ItemResult
from agent.api.models import GROUP, VERSION, CordonDrain, InvalidObjectError, LCMClusterState, LCMMachine
from agent.daemon.following import LCMMACHINES, MachineFollower, resource_version
from agent.daemon.worker import RunItem
from agent.decisions.reporting import clip

log = logging.getLogger(__name__)

LCMCLUSTERSTATES = Resource(GROUP, VERSION, "lcmclusterstates")
EXECUTOR_LABEL = "lcm.mirantis.com/executor"
DRAIN_PLAYBOOK = "maintenance/swarm-drain.yml"
REMOVE_PLAYBOOK = "maintenance/swarm-remove.yml"
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


# -- what to do with one object (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """A playbook run for one object; ``cordon`` = the target's swarmCordonDrain before and after it."""

    playbook: str
    params: Mapping[str, str]
    cordon: tuple[CordonDrain, CordonDrain | None] | None = None


@dataclass(frozen=True)
class Settle:
    """No run: write this status once (``value`` None leaves it unset)."""

    value: str | None
    message: str


def operation(state: LCMClusterState) -> Operation | Settle:
    """What ``state`` asks of this agent."""
    spec = state.spec
    if spec.type == "swarm-drain" and spec.requested:
        return Operation(DRAIN_PLAYBOOK, {"availability": "drain"}, ("cordondraining", "cordondrained"))
    if spec.type == "swarm-drain":
        return Operation(DRAIN_PLAYBOOK, {"availability": "active"}, ("uncordoning", None))
    if spec.type == "swarm-remove" and spec.requested:
        return Operation(REMOVE_PLAYBOOK, {})
    if spec.type == "swarm-remove":
        return Settle("false", "")
    return Settle(None, f"{spec.type} is not handled here: the swarm agent only executes swarm-drain and "
                        "swarm-remove")


def settled(state: LCMClusterState) -> bool:
    """Nothing left to do: the requested value is applied, or the one-off answer is already written."""
    if state.status.value == state.spec.value:
        return True
    todo = operation(state)
    written = (state.status.value, state.status.message)
    return isinstance(todo, Settle) and written == (todo.value, todo.message)


# -- the executor ------------------------------------------------------------------------------------------


class TargetError(Exception):
    """The target machine cannot be acted on (not found, no address, its status not writable)."""


@dataclass
class _Retry:
    value: str
    failures: int
    not_before: float


class ClusterStateExecutor:
    """Carries out this machine's LCMClusterStates; ``run`` is a root task of the daemon."""

    def __init__(
        self, kube: Kube, follower: MachineFollower, settings: ExecutorSettings, *, run_item: RunItem,
        on_event: EventSink, watch: WatchSettings,
    ) -> None:
        self.kube, self.follower, self.settings = kube, follower, settings
        self.run_item, self.on_event, self.watch = run_item, on_event, watch
        self.states: dict[str, LCMClusterState] = {}
        self._written: dict[str, int] = {}
        self._retries: dict[str, _Retry] = {}
        self._version = 0
        self._moved = asyncio.Event()
        self._fields = {"machine": settings.name, "namespace": settings.namespace}

    async def run(self, stopping: asyncio.Event) -> None:
        """Idle until the machine is a control machine; then execute until ``stopping``."""
        if not await self._until_control(stopping):
            return
        log.info("executing the LCMClusterStates labelled %s=%s", EXECUTOR_LABEL, self.settings.name,
                 extra=self._fields)
        watcher = asyncio.ensure_future(self._follow())
        work = asyncio.ensure_future(self._work(stopping))
        try:
            await asyncio.wait([watcher, work], return_when=asyncio.FIRST_COMPLETED)
            if watcher.done():
                work.cancel()
                await asyncio.wait([work])
                watcher.result()  # raises what ended it
                raise RuntimeError("the watch of LCMClusterStates ended")
            await work
        finally:
            for task in (watcher, work):
                task.cancel()
            await asyncio.wait([watcher, work])

    async def _until_control(self, stopping: asyncio.Event) -> bool:
        while not stopping.is_set():
            seen = self.follower.version
            machine = self.follower.latest
            if machine is not None and machine.spec.type == "control":
                return True
            await self.follower.wait(seen, stopping, None)
        return False

    async def _follow(self) -> None:
        selector = f"{EXECUTOR_LABEL}={self.settings.name}"
        stream = watch_resource(self.kube, LCMCLUSTERSTATES, self.settings.namespace, label_selector=selector,
                                settings=self.watch)
        async for event in stream:
            if isinstance(event, Snapshot):
                self.states.clear()
                for raw in event.objects:
                    self._accept(raw)
            elif isinstance(event, Change) and event.type == "DELETED":
                name = event.object.get("metadata", {}).get("name", "")
                for known in (self.states, self._retries, self._written):
                    known.pop(name, None)
            elif isinstance(event, Change):
                self._accept(event.object)
            self._bump()

    def _accept(self, raw: dict[str, Any], *, from_watch: bool = True) -> None:
        """Take a version of an object, unless it is older than this agent's own last write of it."""
        name = str(raw.get("metadata", {}).get("name", ""))
        if from_watch and resource_version(raw) < self._written.get(name, 0):
            return
        try:
            self.states[name] = LCMClusterState.from_raw(raw)
        except InvalidObjectError as exc:
            log.error("LCMClusterState is malformed, not acting on it: %s", exc, extra=self._fields)
            self.states.pop(name, None)

    def _bump(self) -> None:
        self._version += 1
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def _work(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            seen = self._version
            state, delay = self._next(time.monotonic())
            if state is not None:
                await self._handle(state, stopping)
                continue
            waiters = [asyncio.ensure_future(self._moved.wait()), asyncio.ensure_future(stopping.wait())]
            try:
                if self._version == seen:
                    await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    def _next(self, now: float) -> tuple[LCMClusterState | None, float | None]:
        """The first object due (by name), else how long until one is (None: until something changes)."""
        soonest: float | None = None
        for name in sorted(self.states):
            state = self.states[name]
            if settled(state):
                continue
            retry = self._retries.get(name)
            if retry is not None and retry.value == state.spec.value and retry.not_before > now:
                wait = retry.not_before - now
                soonest = wait if soonest is None else min(soonest, wait)
                continue
            return state, None
        return None, soonest

    async def _handle(self, state: LCMClusterState, stopping: asyncio.Event) -> None:
        name, spec = str(state.metadata.name), state.spec
        todo = operation(state)
        if isinstance(todo, Settle):
            log.info("%s: %s", name, todo.message or f"{spec.type}={spec.value}: nothing to do",
                     extra=self._fields)
            if not await self._report(state, todo.value, todo.message, state.status.attempt):
                self._retry_later(name, spec.value)
            return
        attempt = state.status.attempt + 1
        fields = {**self._fields, "item": name, "attempt": attempt}
        log.info("%s %s=%s on machine %s", name, spec.type, spec.value, spec.arg, extra=fields)
        result = await self._attempt(state, todo, attempt, stopping)
        log.info("%s %s (exit code %d)", name, result.result, result.exit_code, extra=fields)
        if result.succeeded:
            if await self._report(state, spec.value, "", attempt):
                self._retries.pop(name, None)
                return
        else:
            await self._report(state, state.status.value, result.message, attempt)
        self._retry_later(name, spec.value)

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

    def _retry_later(self, name: str, value: str) -> None:
        retry = self._retries.get(name)
        failures = retry.failures if retry is not None and retry.value == value else 0
        delay = self.settings.backoff.delay(failures, random.uniform)
        self._retries[name] = _Retry(value, failures + 1, time.monotonic() + delay)
        log.info("%s: retrying in %.1fs", name, delay, extra=self._fields)

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
        machine = self.follower.latest
        inputs = ItemInput(
            machine=self.settings.name, name=str(state.metadata.name), runner="ansible",
            version=machine.spec.release if machine is not None else "", phase=PHASE,
            params={"playbook": todo.playbook, "node_address": address, **todo.params}, attempt=attempt,
            release_dir=self.settings.release_dir, work_dir=self.settings.work_dir,
            timeout=self.settings.timeout, node_vars=self.settings.node_vars,
        )
        task = asyncio.ensure_future(self._run(inputs))
        try:
            stop = asyncio.ensure_future(stopping.wait())
            try:
                await asyncio.wait([task, stop], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
            if not task.done():
                log.info("stopping: the running %s gets %.0fs to finish", inputs.name,
                         self.settings.stop_grace_period, extra=self._fields)
                done, _ = await asyncio.wait([task], timeout=self.settings.stop_grace_period)
                if not done:
                    task.cancel()
            return await task
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait([task])
            raise

    async def _run(self, inputs: ItemInput) -> ItemResult:
        try:
            return await self.run_item(inputs, self.on_event)
        except asyncio.CancelledError:  # while waiting for the worker's item (``one_at_a_time``)
            return ItemResult(EXIT_CANCELLED, "cancelled", "cancelled")

    async def _report(self, state: LCMClusterState, value: str | None, message: str, attempt: int) -> bool:
        """Write the object's status; False when the write failed (the attempt is then retried)."""
        name = str(state.metadata.name)
        body = {"status": {"value": value, "message": clip(message), "attempt": attempt}}
        try:
            raw = await self.kube.patch(LCMCLUSTERSTATES, self.settings.namespace, name, body,
                                        subresource="status")
        except KubeError as exc:
            log.warning("%s: status write failed: %s", name, exc, extra=self._fields)
            if exc.status == 404:
                self.states.pop(name, None)
            return False
        self._written[name] = resource_version(raw)
        self._accept(raw, from_watch=False)
        return True


def one_at_a_time(run_item: RunItem) -> RunItem:
    """``run_item`` that runs one item at a time, whoever calls it (the worker, the executor), in call
    order."""
    lock = asyncio.Lock()

    async def serialised(item: ItemInput, on_event: EventSink) -> ItemResult:
        async with lock:
            return await run_item(item, on_event)

    return serialised
