"""The machine's own LCMMachine, followed once and shared by everything in the agent that acts on it.

One watch per agent (the item worker and the self-upgrade loop read the same object), so a fleet of a
thousand machines costs the API server a thousand watches, not two thousand. ``latest`` is the newest object
known: the watch's events, and the answers to the agent's own status writes, after which older watch events
are skipped (kopf's discipline: never decide on a version from before your own write). Consumers remember the
``version`` they decided on and wait for it to move.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from agent.adapters.kube import Kube, KubeError, Resource
from agent.adapters.watching import Change, Snapshot, WatchSettings, watch_resource
from agent.api.models import GROUP, VERSION, InvalidObjectError, LCMMachine
from agent.daemon.stopping import until_stopped
from agent.decisions.reporting import condition_patch

log = logging.getLogger(__name__)

LCMMACHINES = Resource(GROUP, VERSION, "lcmmachines")


def resource_version(raw: dict[str, Any]) -> int:
    """The object's resourceVersion as a number: etcd revisions (and the simulator's) are integers, which
    lets the agent tell an older event from a newer one; an unparseable version compares as oldest."""
    try:
        return int(raw.get("metadata", {}).get("resourceVersion", 0))
    except (TypeError, ValueError):
        return 0


class MachineFollower:
    """Keeps ``latest`` current; ``run`` is a root task of the daemon (it ends on stop, or by failing)."""

    def __init__(self, kube: Kube, namespace: str, name: str, settings: WatchSettings) -> None:
        self.kube, self.namespace, self.name, self.settings = kube, namespace, name, settings
        self.latest: LCMMachine | None = None
        self.version = 0
        """Counts accepted changes; a consumer waits for it to differ from the one it decided on."""
        self._written_rv = 0
        self._moved = asyncio.Event()
        self._fields = {"machine": name, "namespace": namespace}

    async def run(self, stopping: asyncio.Event) -> None:
        """Follow until ``stopping``. The watch absorbs every API failure, so if it ends anyway (a bug) this
        raises instead of leaving consumers acting on a frozen object: the daemon exits, systemd restarts
        it."""
        await until_stopped(self._follow(), stopping)

    async def _follow(self) -> None:
        stream = watch_resource(self.kube, LCMMACHINES, self.namespace,
                                field_selector=f"metadata.name={self.name}", settings=self.settings)
        async for event in stream:
            if isinstance(event, Snapshot):
                self.accept(event.objects[0] if event.objects else None)
            elif isinstance(event, Change):
                self.accept(None if event.type == "DELETED" else event.object)
        raise RuntimeError("the watch of the LCMMachine ended")

    async def write_condition(
        self, machine: LCMMachine, kind: str, status: str, reason: str, message: str,
    ) -> bool:
        """Set condition ``kind`` of the status (best effort: a failed write is logged, and the condition is
        written again when it next changes); nothing is written when it already says this. False when the
        write failed."""
        patch = condition_patch(machine, kind, status, reason, message, datetime.now(UTC))
        if patch is None:
            return True
        try:
            raw = await self.kube.patch(LCMMACHINES, self.namespace, self.name, patch, subresource="status")
        except KubeError as exc:
            log.warning("cannot write the %s condition: %s", kind, exc, extra=self._fields)
            return False
        self.wrote(raw)
        return True

    def wrote(self, raw: dict[str, Any]) -> LCMMachine | None:
        """The server's answer to one of the agent's own writes: the newest object, whatever the watch
        says."""
        self._written_rv = max(self._written_rv, resource_version(raw))
        self.accept(raw, from_watch=False)
        return self.latest

    def accept(self, raw: dict[str, Any] | None, *, from_watch: bool = True) -> None:
        """Take a new version of the object, unless it is older than the agent's own last write."""
        if raw is not None and from_watch and resource_version(raw) < self._written_rv:
            return
        if raw is None:
            log.warning("LCMMachine is gone; waiting for it to come back", extra=self._fields)
            self.latest = None
        else:
            try:
                self.latest = LCMMachine.from_raw(raw)
            except InvalidObjectError as exc:
                log.error("LCMMachine is malformed, not acting on it: %s", exc, extra=self._fields)
                self.latest = None
        self.version += 1
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def moved_from(self, seen: int) -> None:
        """Returns once ``version`` differs from ``seen`` (at once if it already does)."""
        if self.version == seen:
            await self._moved.wait()

    async def wait(self, seen: int, stopping: asyncio.Event, seconds: float | None) -> None:
        """Until the object moves past ``seen``, ``stopping`` is set, or ``seconds`` pass."""
        waiters = [asyncio.ensure_future(self.moved_from(seen)), asyncio.ensure_future(stopping.wait())]
        try:
            await asyncio.wait(waiters, timeout=None if seconds is None else max(seconds, 0.0),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
