"""Simulated agents: a fleet's worth of lcm-agent behaviour toward the API, with nothing actually run.

For the scheduler's tests and the fleet benchmark, which need many machines that act like real ones on the
wire without a host each. A ``FakeAgent`` decides exactly as lcm-agent does (``next_step`` on its machine and
an in-memory journal) and writes exactly what it writes (registration through ``summary_patch`` with an
InternalIP chosen by ``choose_internal_ip`` from a made-up NIC; a "started" mark, then each outcome written
through ``outcome_write`` with the next item's mark when that one runs straight away, hashes from
``item_hash``), each over its own watch of its own LCMMachine. Only the run itself is
replaced: a ``Script`` says how each attempt of each item ends, after ``item_seconds``.

The ``FakeExecutor`` stands in for the control machine's agent carrying out LCMClusterStates (docs/swarm.md):
for a swarm-drain it moves the target's ``status.swarmCordonDrain`` through ``cordondraining`` to
``cordondrained`` (or ``uncordoning`` to unset), then reports ``status.value``; a swarm-remove is reported
done. It acts only on objects whose executor label names a machine of the fleet.

All agents of a ``SimulatedFleet`` share one client (one connection pool, sized for a watch per agent), as a
process of simulated agents should; ``counts`` tallies their writes by kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import __version__
from agent.adapters.followed import resource_version
from agent.adapters.kube import Kube, KubeError, Object, Resource, from_kubeconfig
from agent.adapters.watching import Change, Snapshot, WatchSettings, watch_resource
from agent.api.execution import ItemResult
from agent.api.host_facts import Cpu, Hardware, HostFacts, Memory, NetworkInterface, OsInfo
from agent.api.models import GROUP, VERSION, InvalidObjectError, LCMClusterState, LCMMachine, StateItem
from agent.decisions.addressing import choose_internal_ip
from agent.decisions.execution import (
    Idle,
    LocalRecord,
    Rehash,
    Report,
    Run,
    Wait,
    next_step,
    outcome_write,
    rehash_patch,
)
from agent.decisions.reporting import finished_patch, finished_slot, started_patch, summary_patch
from agent.kits.backoff import Backoff
from agent.kits.tasks import cancel_and_wait

log = logging.getLogger(__name__)

MACHINES = Resource(GROUP, VERSION, "lcmmachines")
CLUSTER_STATES = Resource(GROUP, VERSION, "lcmclusterstates")
EXECUTOR_LABEL = "lcm.mirantis.com/executor"

class Newest:
    """The version of one object a follower holds, fed by two sources: its watch and the answers to its own
    writes. ``take`` says whether a version is newer than the one held (and then holds it).

    Neither source is always the newer. A write's answer is newer than every event its watch delivered
    before the write; but another writer's change made right after it (the scheduler's next items, once it
    saw this write) can reach the watch before the answer reaches the writer, on another connection. Taking
    the answer then would put the older version over that change, and the watch never sends it again: the
    follower waits forever for a change it has already been told about. So whatever the source, only a
    newer version is taken; the watch event of a follower's own write is then skipped too (its answer was
    that very version, parsed once is enough)."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = 0

    def take(self, raw: Object) -> bool:
        version = resource_version(raw) or 0
        if version <= self.held:
            return False
        self.held = version
        return True


Script = Callable[[str, StateItem, int], ItemResult]
"""(machine, item, attempt) → how that run ends."""


def succeed(machine: str, item: StateItem, attempt: int) -> ItemResult:
    return ItemResult(exit_code=0, result="success", message="")


@dataclass(frozen=True)
class SimulatedFleetSettings:
    item_seconds: float = 0.0
    """How long each simulated run takes."""
    drain_seconds: float = 0.0
    """How long a simulated drain takes between ``cordondraining`` and ``cordondrained``."""
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.2, cap=2.0))
    """Retry delays of failed items (shorter than the agent's defaults, so tests see retries soon)."""
    watch: WatchSettings = field(default_factory=WatchSettings)


async def fleet_client(kubeconfig: Path, connections: int) -> Kube:
    """One client for a whole process of simulated agents: its pool must hold a watch per agent plus the
    writes in flight (the default of 100 connections would stall a larger fleet)."""
    return Kube(await from_kubeconfig(kubeconfig, connections=connections))


def fake_host(index: int) -> HostFacts:
    """A small VM with one NIC, eth0, at 10.<a>.<b>.<c>/8 derived from ``index`` (unique per fleet)."""
    address = f"10.{index // 62500 % 250}.{index // 250 % 250}.{index % 250 + 1}/8"
    return HostFacts(
        boot_time=datetime(2024, 1, 1, tzinfo=UTC), architecture="x86_64", kernel_version="6.1.0-18-amd64",
        os=OsInfo(family="debian", platform="debian", name="Debian GNU/Linux", version="12 (bookworm)",
                  major=12, codename="bookworm"),
        timezone="UTC",
        hardware=Hardware(cpu=Cpu(2, 2), memory=Memory(4 << 30),
                          network=(NetworkInterface("eth0", f"52:54:00:{index >> 16 & 255:02x}:"
                                                    f"{index >> 8 & 255:02x}:{index & 255:02x}",
                                                    addresses=(address,)),)),
        default_interface="eth0")


class FakeAgent:
    """One machine's agent: register, then run (pretend to) whatever ``next_step`` says, forever."""

    def __init__(self, fleet: SimulatedFleet, name: str, index: int) -> None:
        self.fleet, self.name, self.host = fleet, name, fake_host(index)
        self.latest: LCMMachine | None = None
        self.state = ""
        """``status.state`` as this agent last wrote it."""
        self._finished: dict[str, tuple[str, int]] = {}
        self._newest = Newest()
        self._moved = asyncio.Event()

    async def run(self) -> None:
        follower = asyncio.create_task(self._follow())
        try:
            while (machine := self.latest) is None:
                self._moved.clear()
                await self._changed(None)
            await self._register(machine)
            await self._work()
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    async def _follow(self) -> None:
        selector = f"metadata.name={self.name}"
        async for event in watch_resource(self.fleet.kube, MACHINES, self.fleet.namespace,
                                          field_selector=selector, settings=self.fleet.settings.watch):
            if isinstance(event, Snapshot):
                self._accept(event.objects[0] if event.objects else None)
            elif isinstance(event, Change):
                self._accept(None if event.type == "DELETED" else event.object)

    def _accept(self, raw: Object | None) -> None:
        """Like the agent's follower: a version from the watch or a write's answer, taken only when newer
        than the one held (``Newest``)."""
        if raw is not None and not self._newest.take(raw):
            return
        try:
            self.latest = None if raw is None else LCMMachine.from_raw(raw)
        except InvalidObjectError as exc:
            log.warning("machine %s is malformed: %s", self.name, exc)
            self.latest = None
        self._moved.set()

    async def _changed(self, seconds: float | None) -> None:
        """Until the object changed since ``_moved`` was last cleared, or ``seconds`` pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._moved.wait(), seconds)

    async def _register(self, machine: LCMMachine) -> None:
        ip = choose_internal_ip(self.host.hardware.network, machine.spec.interface or None,
                                machine.spec.cidr or None, default_interface=self.host.default_interface)
        addresses = [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": self.name}]
        fields = {"addresses": addresses, "agentVersion": __version__, "hostInfo": self.host.to_status()}
        await self._write(summary_patch(machine, fields), "registration")

    async def _work(self) -> None:
        while True:
            self._moved.clear()
            machine = self.latest
            if machine is None:
                await self._changed(None)
                continue
            now = datetime.now(UTC)
            step = next_step(machine, LocalRecord(dict(self._finished)), now, self.fleet.settings.backoff)
            if isinstance(step, Run):
                await self._execute(machine, step)
            elif isinstance(step, Report):
                patch = finished_patch(machine, step.item.name, step.hash, step.attempt, exit_code=0,
                                       result="success", message="", started_at=None, now=now)
                await self._write(patch, "finished")
            elif isinstance(step, Rehash):
                await self._write(rehash_patch(machine, step), "rehashed")
            elif isinstance(step, Wait):
                await self._changed((step.until - now).total_seconds())
            elif isinstance(step, Idle):
                await self._changed(None)

    async def _execute(self, machine: LCMMachine, step: Run) -> None:
        started = datetime.now(UTC)
        await self._write(started_patch(machine, step.item.name, step.hash, step.attempt, started), "started")
        current: Run | None = step
        while current is not None:
            if self.fleet.settings.item_seconds:
                await asyncio.sleep(self.fleet.settings.item_seconds)
            result = self.fleet.script(self.name, current.item, current.attempt)
            self._finished[current.item.name] = (current.hash, result.exit_code)
            newest, now = self.latest or machine, datetime.now(UTC)
            outcome = finished_slot(current.hash, current.attempt, exit_code=result.exit_code,
                                    result=result.result, message=result.message, started_at=started, now=now)
            local = LocalRecord(dict(self._finished))
            patch, current = outcome_write(newest, current.item.name, outcome, local, now,
                                           self.fleet.settings.backoff)
            await self._write(patch, "finished")
            started = now

    async def _write(self, patch: dict[str, Any], kind: str) -> None:
        """A status write, retried until it lands (a 404 means the machine is gone: nothing to report)."""
        for attempt in itertools.count():
            try:
                raw = await self.fleet.kube.patch(MACHINES, self.fleet.namespace, self.name, patch,
                                                  subresource="status")
            except KubeError as exc:
                if exc.status in (404, 422):
                    log.warning("status write of %s refused: %s", self.name, exc)
                    return
                await asyncio.sleep(self.fleet.settings.backoff.window(attempt))
                continue
            self.fleet.counts[kind] += 1
            if (resource_version(raw) or 0) < self._newest.held:
                self.fleet.counts["overtaken"] += 1
            self.state = str(patch["status"].get("state", self.state))
            self._accept(raw)
            self.fleet.state_changed()
            return


class FakeExecutor:
    """Carries out drains and removals for the fleet's control machines (one watch for the namespace)."""

    def __init__(self, fleet: SimulatedFleet) -> None:
        self.fleet = fleet
        self._latest: dict[str, LCMClusterState] = {}
        self._wake = asyncio.Event()
        self.drained: list[tuple[str, bool]] = []
        """(machine, drained) in the order drains and undrains completed."""

    async def run(self) -> None:
        worker = asyncio.create_task(self._serve())
        try:
            async for event in watch_resource(self.fleet.kube, CLUSTER_STATES, self.fleet.namespace,
                                              label_selector=EXECUTOR_LABEL,
                                              settings=self.fleet.settings.watch):
                objects = event.objects if isinstance(event, Snapshot) else [event.object]
                if isinstance(event, Snapshot):
                    self._latest.clear()
                for raw in objects:
                    self._take(raw, deleted=isinstance(event, Change) and event.type == "DELETED")
                self._wake.set()
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    def _take(self, raw: Object, *, deleted: bool) -> None:
        name = raw["metadata"]["name"]
        executor = raw["metadata"].get("labels", {}).get(EXECUTOR_LABEL)
        if deleted or executor not in self.fleet.agents:
            self._latest.pop(name, None)
            return
        known = self._latest.get(name)
        if known is not None and (resource_version(raw) or 0) <= int(known.metadata.resource_version or 0):
            return  # not newer than what we hold (``Newest``): an old event, or our answer overtaken
        with contextlib.suppress(InvalidObjectError):
            self._latest[name] = LCMClusterState.from_raw(raw)

    async def _serve(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            for name, state in list(self._latest.items()):
                if state.status.value != state.spec.value:
                    await self._carry_out(name, state)

    async def _carry_out(self, name: str, state: LCMClusterState) -> None:
        wanted = state.spec.requested
        try:
            if state.spec.type == "swarm-drain":
                first, then = ("cordondraining", "cordondrained") if wanted else ("uncordoning", None)
                await self._machine_status(state.spec.arg, {"swarmCordonDrain": first})
                if self.fleet.settings.drain_seconds:
                    await asyncio.sleep(self.fleet.settings.drain_seconds)
                await self._machine_status(state.spec.arg, {"swarmCordonDrain": then,
                                                            "swarmCordonDrainError": ""})
                self.drained.append((state.spec.arg, wanted))
            done = {"value": state.spec.value, "message": "", "attempt": state.status.attempt + 1}
            answer = await self.fleet.kube.patch(CLUSTER_STATES, self.fleet.namespace, name, {"status": done},
                                                 subresource="status")
            self.fleet.counts["executor"] += 1
            self._take(answer, deleted=False)
        except KubeError as exc:
            log.warning("cluster state %s not carried out: %s", name, exc)
            self._wake.set()
            await asyncio.sleep(self.fleet.settings.backoff.base)

    async def _machine_status(self, machine: str, fields: dict[str, Any]) -> None:
        await self.fleet.kube.patch(MACHINES, self.fleet.namespace, machine, {"status": fields},
                                    subresource="status")
        self.fleet.counts["executor"] += 1


class SimulatedFleet:
    """Agents for ``names`` (LCMMachines in ``namespace``, created by whoever plays the provider)."""

    def __init__(self, kube: Kube, namespace: str, names: Iterable[str], *, script: Script = succeed,
                 settings: SimulatedFleetSettings | None = None) -> None:
        self.kube, self.namespace, self.script = kube, namespace, script
        self.settings = settings or SimulatedFleetSettings()
        self.agents = {name: FakeAgent(self, name, index) for index, name in enumerate(names)}
        self.executor = FakeExecutor(self)
        self.counts: Counter[str] = Counter()
        """Writes by kind: ``registration``, ``started``, ``finished`` (agents' status), ``executor``; and
        ``overtaken``: answers to agents' writes that arrived after the watch had brought a newer version."""
        self._changed = asyncio.Event()

    async def run(self) -> None:
        """Every agent and the executor, until cancelled."""
        tasks = [asyncio.create_task(a.run(), name=f"agent-{name}") for name, a in self.agents.items()]
        tasks.append(asyncio.create_task(self.executor.run(), name="executor"))
        try:
            await asyncio.gather(*tasks)
        finally:
            await cancel_and_wait(*tasks)

    def state_changed(self) -> None:
        self._changed.set()

    def ready(self, names: Iterable[str] | None = None) -> bool:
        """Every agent (of ``names``) last wrote state Ready: done with what it holds, which for a planner
        that gates phases may be only its prepare items (the LCMCluster's status says more)."""
        chosen = self.agents if names is None else names
        return all(self.agents[name].state == "Ready" for name in chosen)

    async def wait(self, done: Callable[[], bool]) -> None:
        """Until ``done()`` holds, checked after every status write of the fleet."""
        while not done():
            self._changed.clear()
            await self._changed.wait()
