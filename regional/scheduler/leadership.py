"""Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Two scheduler replicas must never act at once: two planners writing the same machines would fight, and two
drains could run where the cluster allows one. So a replica acts only while it holds the Lease:

- **acquire**: take the Lease when it is free (no holder, released), expired, or already ours. Expiry is
  judged on the local clock from when this replica last *saw the record change*, never from the renewTime
  written by another machine's clock: a replica that just started waits a whole ``lease_duration`` before
  taking over a Lease it finds held;
- every write of the Lease is a PUT carrying the resourceVersion read (optimistic concurrency): of two
  candidates, one gets 409 and stays a candidate;
- **renew** every ``retry_period``; when no renewal succeeded for ``renew_deadline`` (shorter than
  ``lease_duration``, so the others cannot have taken over yet), or another holder shows up, the replica
  stops acting at once: its work is cancelled and ``leading()`` (the fence every write asks first) is
  already false;
- **release** on a clean stop: the holder is cleared, so a standby takes over within one retry period
  instead of waiting for the Lease to expire.

A replica that lost the Lease campaigns again, starting its work afresh (caches relisted) if it wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.adapters.kube import Kube, KubeError, Object, Resource
from agent.kits.tasks import cancel_and_wait, first_of
from agent.kits.timestamps import micro_time

log = logging.getLogger(__name__)

LEASES = Resource("coordination.k8s.io", "v1", "leases")
JITTER = 1.2
"""Campaign retries wait ``retry_period`` times up to this factor, so candidates do not retry in step."""


class LeaseLostError(Exception):
    """This replica no longer holds the Lease: nothing more may be written."""


def default_identity() -> str:
    """client-go's convention: the host name plus a unique suffix, so two replicas on one host differ."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseSettings:
    """Which Lease, who we are, and client-go's timings (seconds; its defaults)."""

    name: str = "lcm-scheduler"
    namespace: str = "default"
    identity: str = field(default_factory=default_identity)
    lease_duration: int = 15
    """How long a Lease that stopped being renewed keeps standbys away (whole seconds, as in the API)."""
    renew_deadline: float = 10.0
    """How long the leader keeps acting without a successful renewal."""
    retry_period: float = 2.0
    """Between renewals, and between a candidate's attempts."""

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period * JITTER:
            raise ValueError("lease timings must satisfy lease_duration > renew_deadline > "
                             f"{JITTER} * retry_period")


class LeaderElector:
    def __init__(
        self, kube: Kube, settings: LeaseSettings, *, clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.kube, self.settings = kube, settings
        self.clock, self.wall, self.uniform = clock, wall, uniform
        self._lease: Object | None = None
        self._observed: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._renewed_at: float | None = None
        """Local time at which the last successful acquire or renewal was *sent*: the conservative end."""
        self._fields = {"lease": f"{settings.namespace}/{settings.name}", "identity": settings.identity}

    def leading(self) -> bool:
        """True while the last successful renewal is younger than ``renew_deadline``."""
        renewed = self._renewed_at
        return renewed is not None and self.clock() < renewed + self.settings.renew_deadline

    async def run(self, stopping: asyncio.Event, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Campaign, run ``work`` while leading, until ``stopping``; the Lease is released on the way out."""
        while not stopping.is_set():
            if not await self._campaign(stopping):
                await self.release()  # the record may still name us if renewals timed out just before
                return
            log.info("became the leader", extra=self._fields)
            tasks = {"work": asyncio.create_task(work(), name="scheduler-term"),
                     "renewal": asyncio.create_task(self._keep(), name="lease-renewal")}
            try:
                await first_of(*tasks.values(), stopping.wait())
            finally:
                ended = {name for name, task in tasks.items() if task.done()}
                await cancel_and_wait(*tasks.values())
            term = tasks["work"]
            failure = term.exception() if "work" in ended and not term.cancelled() else None
            if ("renewal" in ended or isinstance(failure, LeaseLostError)) and not stopping.is_set():
                self._renewed_at = None
                log.error("lost the lease; stopped acting", extra=self._fields)
                continue
            await self.release()
            if failure is not None:
                raise failure
            if "work" in ended and not stopping.is_set():
                raise RuntimeError("the scheduler's work ended while it was leading")

    async def release(self) -> None:
        """Clear the holder if it is us, so that a standby need not wait for the Lease to expire.

        A renewal cancelled by the stop may have landed without its answer (the Lease's new
        resourceVersion) reaching us, and the release then conflicts (409): the Lease is read again and,
        if it still names us, released once more (seen in CI under load)."""
        lease, self._renewed_at = self._lease, None
        ns, name = self.settings.namespace, self.settings.name
        for last in (False, True):
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.settings.identity:
                return
            now = micro_time(self.wall())
            spec = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": now,
                    "renewTime": now}
            try:
                self._lease = await self.kube.replace(LEASES, ns, name, {**lease, "spec": spec})
                log.info("released the lease", extra=self._fields)
                return
            except KubeError as exc:
                if exc.status == 409 and not last:
                    with contextlib.suppress(KubeError):
                        lease = await self.kube.get(LEASES, ns, name)
                        continue
                log.warning("could not release the lease (%s); standbys wait for it to expire", exc,
                            extra=self._fields)
                return

    async def _campaign(self, stopping: asyncio.Event) -> bool:
        """Until the Lease is ours (True) or ``stopping`` is set (False)."""
        while not stopping.is_set():
            if await self._try() and self.leading():  # an answer slower than the renew deadline is no win
                return True
            delay = self.settings.retry_period * self.uniform(1.0, JITTER)
            await first_of(stopping.wait(), seconds=delay)
        return False

    async def _keep(self) -> None:
        """Renew every retry period; returns once leadership is lost."""
        while True:
            await asyncio.sleep(self.settings.retry_period)
            if not await self._renew():
                return

    async def _renew(self) -> bool:
        """Retry until renewed (True) or until the renew deadline has passed (False)."""
        while self.leading() and self._renewed_at is not None:
            remaining = self._renewed_at + self.settings.renew_deadline - self.clock()
            try:
                if await asyncio.wait_for(self._try(), remaining):
                    return True
            except TimeoutError:
                # Said, because it is the usual way to lose a lease on a starved API server or event loop.
                log.warning("no renewal answered within the renew deadline (%.0fs)",
                            self.settings.renew_deadline, extra=self._fields)
                break
            if self.leading():
                await asyncio.sleep(min(self.settings.retry_period, max(remaining, 0.0)))
        return False

    async def _try(self) -> bool:
        """One acquire-or-renew round trip (client-go's tryAcquireOrRenew)."""
        sent_at, now = self.clock(), micro_time(self.wall())
        me = self.settings.identity
        mine = {"holderIdentity": me, "leaseDurationSeconds": self.settings.lease_duration,
                "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
        try:
            lease = await self.kube.get(LEASES, self.settings.namespace, self.settings.name)
        except KubeError as exc:
            if exc.status != 404:
                log.warning("cannot read the lease: %s", exc, extra=self._fields)
                return False
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.settings.name, "namespace": self.settings.namespace},
                    "spec": mine}
            return await self._write(self.kube.create(LEASES, self.settings.namespace, body), sent_at)
        spec = dict(lease.get("spec") or {})
        if spec != self._observed:
            self._observed, self._observed_at = spec, sent_at
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or self.settings.lease_duration
        if holder and holder != me:
            if self._renewed_at is not None:
                log.error("the lease is held by %s now", holder, extra=self._fields)
                self._renewed_at = None
            if self._observed_at + duration > sent_at:
                return False
        if holder == me:
            mine.update(acquireTime=spec.get("acquireTime", now),
                        leaseTransitions=spec.get("leaseTransitions", 0))
        else:
            mine["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        body = {**lease, "spec": mine}
        return await self._write(self.kube.replace(LEASES, self.settings.namespace, self.settings.name, body),
                                 sent_at)

    async def _write(self, request: Coroutine[Any, Any, Object], sent_at: float) -> bool:
        try:
            self._lease = await request
        except KubeError as exc:
            if exc.status != 409:
                log.warning("cannot write the lease: %s", exc, extra=self._fields)
            return False
        self._observed, self._observed_at = dict(self._lease.get("spec") or {}), sent_at
        self._renewed_at = sent_at
        return True
