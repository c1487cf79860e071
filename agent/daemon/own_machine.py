"""The agent's one handle on its own LCMMachine: the followed object, and the one way to write it.

Every root task of the daemon that reads or writes the machine's own LCMMachine goes through one
``OwnMachine``: registration, the item worker (and its host facts), the self-upgrade loop, the reconciler's
checks (``drift_watch``), the token renewal and telemetry's ``wake``. One watch per agent, so a fleet of a
thousand machines costs the API server a thousand watches, not two thousand; one write path with one retry
policy (``adapters.followed.write``: hopeless refusals are never repeated, others are retried with the
agent's backoff as often as the caller's ``Retry`` allows); and one rule for what is current: ``latest`` is
the newest object known, from the watch or from the answer to the agent's own requests, after which older
watch events are skipped (kopf's discipline: never decide on a version from before your own write). A write
returns the stored object, which is already ``latest``: the writer never waits for its own event, and never
decides on anything older. Consumers remember the ``version`` they decided on and ``wait`` for it to move.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agent.adapters.followed import ONCE, FollowedObjects, Retry, write
from agent.adapters.kube import Kube, Object, Resource
from agent.adapters.watching import WatchSettings
from agent.api.models import GROUP, VERSION, LCMMachine
from agent.decisions.reporting import condition_patch, machine_conditions
from agent.kits.backoff import Backoff
from agent.kits.tasks import until_stopped

log = logging.getLogger(__name__)

LCMMACHINES = Resource(GROUP, VERSION, "lcmmachines")


class OwnMachine:
    """The machine's LCMMachine; ``run`` is a root task of the daemon (it ends on stop, or by failing)."""

    def __init__(
        self, kube: Kube, namespace: str, name: str, *, watch: WatchSettings, backoff: Backoff,
    ) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        self.watch, self.backoff = watch, backoff
        self.objects: FollowedObjects[LCMMachine] = FollowedObjects(LCMMachine)
        self.gave_up = 0
        """Writes that gave up since the start (the metric ``lcm_agent_status_write_failures_total``)."""
        self.failures = 0
        """Consecutive writes that gave up (0 after one landed): the pause before a decision that needs a
        write to land is paced by it (``pause``)."""
        self.fields = {"machine": name, "namespace": namespace}
        """The structured log fields naming this machine."""

    @property
    def latest(self) -> LCMMachine | None:
        """The newest well-formed version known; None while unknown, deleted or malformed (logged once)."""
        entry = self.objects.entry(self.namespace, self.name)
        return None if entry is None else entry.model()

    @property
    def version(self) -> int:
        """Counts accepted changes of the object."""
        return self.objects.version

    async def run(self, stopping: asyncio.Event) -> None:
        """Follow until ``stopping``; a watch that ends anyway (a bug) raises: the daemon exits, systemd
        restarts it, instead of consumers acting on a frozen object."""
        await until_stopped(self.objects.follow(self.kube, LCMMACHINES, self.namespace,
                                                field_selector=f"metadata.name={self.name}",
                                                settings=self.watch), stopping)

    async def moved_from(self, seen: int) -> None:
        """Returns once ``version`` differs from ``seen``."""
        await self.objects.moved_from(seen)

    async def wait(self, seen: int, stopping: asyncio.Event, seconds: float | None) -> None:
        """Until the object moves past ``seen``, ``stopping`` is set, or ``seconds`` pass."""
        await self.objects.wait(seen, stopping, seconds)

    def answered(self, raw: Object) -> LCMMachine | None:
        """The server's answer to one of the agent's own requests (registration's read or create): the
        newest object, whatever the watch says."""
        self.objects.answered(raw)
        return self.latest

    async def reread(self) -> LCMMachine | None:
        """A fresh GET, taken as the newest version (for when the watch may lag: telemetry's ``wake``);
        raises ``KubeError``."""
        return self.answered(await self.kube.get(LCMMACHINES, self.namespace, self.name))

    async def write(
        self, patch: Mapping[str, Any], *, retry: Retry = ONCE, stopping: asyncio.Event | None = None,
        what: str = "status write",
    ) -> LCMMachine | None:
        """Patch the status (the one write path of the agent's own object); the stored object, which is now
        ``latest``, or None when the write gave up under ``retry``."""
        raw = await write(self.kube, LCMMACHINES, self.namespace, self.name, patch, into=self.objects,
                          retry=retry, backoff=self.backoff, stopping=stopping, what=what, fields=self.fields)
        if raw is None:
            self.failures += 1
            self.gave_up += 1
            return None
        self.failures = 0
        return self.latest

    def pause(self) -> float:
        """How long to wait before deciding again after writes that gave up: the backoff's jittered delay
        for the number of failures in a row."""
        return self.backoff.delay(max(self.failures - 1, 0), random.uniform)

    async def write_condition(
        self, machine: LCMMachine, kind: str, status: str, reason: str, message: str,
    ) -> bool:
        """Set condition ``kind`` of the status, best effort (written again when it next changes); nothing
        is written when it already says this. False when the write failed."""
        patch = condition_patch(machine_conditions(machine), kind, status, reason, message, datetime.now(UTC),
                                generation=machine.metadata.generation)
        if patch is None:
            return True
        return await self.write(patch, what=f"the {kind} condition's write") is not None
