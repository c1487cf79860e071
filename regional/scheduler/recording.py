"""Kubernetes Events (core/v1) for what the scheduler did and why: ``kubectl describe lcmmachine`` shows them.

Events are a courtesy to the operator, never a condition of progress, so they must not compete with the
writes that move a rollout: they have their own token bucket (client-go's recorder has its own spam filter
for the same reason), a bounded queue whose overflow is dropped and counted, and an identical event still
waiting to be sent is folded into it (``count`` goes up) instead of queued twice. An identical event already
sent is not sent again either: like client-go's event correlator, the recorder remembers the last
``remembered`` Events it created and raises the ``count`` and ``lastTimestamp`` of the one that says the
same thing (a merge patch), so a retry loop shows in ``kubectl describe`` as one line "x12", and a new
message is a new Event. A failed send is logged and dropped: retrying a log line at an API server that is
in trouble would only add to its trouble.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from agent.adapters.kube import Kube, KubeError, Resource
from agent.api.models import API_VERSION
from agent.kits.timestamps import rfc3339
from regional.scheduler.throttling import RateLimiter

log = logging.getLogger(__name__)

EVENTS = Resource("", "v1", "events")
COMPONENT = "lcm-scheduler"
MESSAGE_LIMIT = 1024
"""Characters of an Event message (the API server refuses more than 1 KiB)."""

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class Involved:
    """The object an Event is about."""

    kind: str
    namespace: str
    name: str
    uid: str = ""
    api_version: str = API_VERSION


@dataclass
class _Pending:
    type: EventType
    first: datetime
    last: datetime
    count: int = 1


@dataclass
class _Sent:
    """An Event created earlier: its name and how many times it has happened so far."""

    name: str
    namespace: str
    count: int


Key = tuple[Involved, str, str]
"""(involved object, reason, message): what makes two events the same."""


class EventRecorder:
    """``record`` never blocks and never fails; ``run`` sends the queue until cancelled."""

    def __init__(
        self, kube: Kube, *, instance: str, qps: float = 5.0, burst: int = 25, capacity: int = 1000,
        remembered: int = 4096, fence: Callable[[], bool] = lambda: True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.instance = instance
        """The scheduler replica's identity, as ``reportingInstance`` and ``source.host``."""
        self.limiter = RateLimiter(qps, burst)
        self.capacity = capacity
        self.fence = fence
        """Only the leader writes; a replica that lost its lease sends nothing more."""
        self.clock = clock
        self._queue: OrderedDict[Key, _Pending] = OrderedDict()
        self.remembered = remembered
        self._sent: OrderedDict[Key, _Sent] = OrderedDict()
        """Events created, newest last, so that the same event again raises their count."""
        self._wake = asyncio.Event()
        self.sent = 0
        self.dropped = 0

    def record(self, involved: Involved, reason: str, message: str, type_: EventType = "Normal") -> None:
        now = self.clock()
        key = (involved, reason, message[:MESSAGE_LIMIT])
        pending = self._queue.get(key)
        if pending is not None:
            pending.count += 1
            pending.last = now
            return
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            return
        self._queue[key] = _Pending(type_, now, now)
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self.limiter.acquire()
                if not self._queue:
                    break
                key, pending = self._queue.popitem(last=False)
                if not self.fence():
                    self.dropped += 1 + len(self._queue)
                    self._queue.clear()
                    break
                await self._send(*key, pending)

    async def _send(self, involved: Involved, reason: str, message: str, pending: _Pending) -> None:
        key = (involved, reason, message)
        sent = self._sent.get(key)
        if sent is not None and await self._count_again(key, sent, pending):
            return
        namespace = involved.namespace or "default"
        # client-go's naming: a generateName may not end in ".", and the nanoseconds keep names apart.
        name = f"{involved.name}.{time.time_ns():x}"
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {"apiVersion": involved.api_version, "kind": involved.kind,
                               "name": involved.name, "namespace": involved.namespace,
                               **({"uid": involved.uid} if involved.uid else {})},
            "reason": reason, "message": message, "type": pending.type, "count": pending.count,
            "firstTimestamp": rfc3339(pending.first), "lastTimestamp": rfc3339(pending.last),
            "source": {"component": COMPONENT, "host": self.instance},
            "reportingComponent": COMPONENT, "reportingInstance": self.instance,
        }
        try:
            await self.kube.create(EVENTS, namespace, body)
            self.sent += 1
        except KubeError as exc:
            self._failed(key, exc)
            return
        self._sent[key] = _Sent(name, namespace, pending.count)
        while len(self._sent) > self.remembered:
            self._sent.popitem(last=False)

    async def _count_again(self, key: Key, sent: _Sent, pending: _Pending) -> bool:
        """Raise the count of the Event created for ``key`` earlier; False when it is gone (expired: the
        API server keeps Events an hour by default), so a new one is created."""
        count = sent.count + pending.count
        patch = {"count": count, "lastTimestamp": rfc3339(pending.last), "type": pending.type}
        try:
            await self.kube.patch(EVENTS, sent.namespace, sent.name, patch)
        except KubeError as exc:
            if exc.status == 404:
                del self._sent[key]
                return False
            self._failed(key, exc)
            return True
        sent.count = count
        self._sent.move_to_end(key)
        self.sent += 1
        return True

    def _failed(self, key: Key, exc: KubeError) -> None:
        involved, reason, _ = key
        self.dropped += 1
        log.warning("event %s on %s %s/%s not recorded: %s", reason, involved.kind, involved.namespace,
                    involved.name, exc)
