"""Agent liveness from the MQTT plane onto LCMMachines, as the ``AgentReachable`` condition.

Heartbeats never reach the API server: this subscriber keeps, in memory, when each machine was last heard
of, and writes the condition only when a machine's reachability changes. A fleet where nothing changes costs
the API nothing; a thousand machines coming up cost a thousand writes once, paced by a token bucket.

A machine is unreachable when its retained status says ``offline`` (the last will: the broker saw its
connection die, at once for a killed agent) or when no heartbeat came for ``grace`` of its own heartbeat
intervals; a heartbeat or an ``online`` status makes it reachable again. Transitions are collected each
``tick`` and written as one batch (a machine that flapped within a tick costs nothing). After the
subscriber (re)connects, nobody is called unreachable for ``settle`` seconds: after a broker restart the
retained statuses are the broker's wills of the whole fleet, and the agents need their reconnect backoff to
come back; calling them all dead would be a write storm telling nothing true.

Silence is only evidence while the subscriber's own connection works. A broker that hangs (stopped, not
dead) keeps the TCP connection open for a keepalive or more, and no heartbeat arrives meanwhile. So the
subscriber sends itself a probe through the broker every ``probe_period`` and judges silence only up to
the last probe that came back: while none does, nobody is called unreachable, and once probes come back
after such a gap, the book settles again as after a reconnect. A last will of an older connection than the
machine's latest ``online`` or heartbeat (``connection`` in each) is stale, delivered late by a broker that
was hung or restarted, and is ignored.

The book of who was heard when is pure (``regional.planning.liveness``, times passed in);
``Liveness`` is the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.adapters.kube import Kube, KubeError, Resource
from agent.adapters.mqtt import BrokerSettings, MqttLink, Outbox, Outgoing
from agent.api import telemetry as t
from agent.api.models import GROUP, VERSION
from agent.kits.tasks import first_of
from regional.planning.liveness import CONDITION, Key, LivenessBook, Verdict, liveness_patch
from regional.scheduler.throttling import RateLimiter

log = logging.getLogger(__name__)

LCMMACHINES = Resource(GROUP, VERSION, "lcmmachines")


@dataclass(frozen=True)
class LivenessSettings:
    """The broker to read and how liveness is judged and written; seconds throughout."""

    broker: BrokerSettings
    """The regional user (``lcm_regional`` in ``deploy/mqtt/acl``): reads every machine's subtree."""
    grace: float = 1.5
    """Heartbeat intervals without a heartbeat before a machine is unreachable: one missed heartbeat plus
    the jitter of the next."""
    settle: float = 40.0
    """After connecting, how long before anyone is called unreachable: the agents' reconnect backoff is
    capped at 30 s, plus a heartbeat period."""
    tick: float = 1.0
    """How often the book is read and its transitions written as a batch."""
    writes_per_second: float = 10.0
    burst: int = 50
    """Condition writes are paced by a token bucket, so a mass transition cannot crowd out the agents'
    own status writes."""
    default_interval: float = 10.0
    """A machine's heartbeat interval until its status or a heartbeat names its own."""
    probe_period: float = 1.0
    """How often the subscriber's own probe goes through the broker; silence is judged up to the last one
    back, so a missed heartbeat is noticed up to this much later."""


class Liveness:
    """The subscriber and the writer; ``writes`` counts condition writes (for logs and the benchmark)."""

    def __init__(self, kube: Kube, settings: LivenessSettings, *,
                 observe: Callable[[t.Subtree, dict[str, Any]], None] | None = None,
                 leading: Callable[[], bool] = lambda: True) -> None:
        self.kube = kube
        self.settings = settings
        self.leading = leading
        """Whether this replica may write now: a standby scheduler listens (its book stays warm for a
        takeover) but never writes, so two replicas never both act."""
        self.book = LivenessBook(settings.grace, settings.settle, settings.default_interval,
                                 probe_period=max(settings.probe_period, settings.tick))  # sent on ticks
        self.limiter = RateLimiter(settings.writes_per_second, settings.burst)
        self.observe = observe
        """Called with every valid message taken (the benchmark's latency probe)."""
        self.writes = 0
        self.probe_topic = t.probe_topic(settings.broker.client_id)
        self.outbox = Outbox(1)
        """Only probes go out; an unsent one is replaced by the next."""
        self.link = MqttLink(
            settings.broker, on_message=self.on_message, outbox=self.outbox,
            subscriptions=[(t.topic_filter("status"), t.QOS["status"]),
                           (t.topic_filter("heartbeat"), t.QOS["heartbeat"]), (self.probe_topic, 0)])

    def on_message(self, topic: str, payload: bytes) -> None:
        if topic == self.probe_topic:
            self.book.proven(time.monotonic())
            return
        try:
            taken = t.received(topic, payload)
        except t.TelemetryError as exc:
            log.debug("ignored a message on %s: %s", topic, exc)
            return
        if taken is None:
            return
        subtree, _, message = taken
        key, now = (subtree.namespace, subtree.machine), time.monotonic()
        if message["kind"] == "heartbeat":
            self.book.heard(key, now, interval=message["interval"], connection=message.get("connection", 0.0))
        elif message["kind"] == "status":
            online, connection = message["state"] == "online", message.get("connection", 0.0)
            if not self.book.heard(key, now, interval=message["heartbeatInterval"], online=online,
                                   reason=message["reason"], connection=connection):
                log.info("%s/%s: ignored a stale last will (connection %.3f, latest %.3f)", *key, connection,
                         self.book.machines[key].connection)
        if self.observe is not None:
            self.observe(subtree, message)

    async def run(self, stopping: asyncio.Event) -> None:
        await self._load(stopping)
        link = asyncio.ensure_future(self.link.run(stopping))
        try:
            await self._write_loop(stopping)
        finally:
            if not stopping.is_set():  # the writer failed: do not leave the subscription behind
                link.cancel()
            await asyncio.wait([link])

    async def _load(self, stopping: asyncio.Event) -> None:
        """The condition as the LCMMachines say now, so a restarted scheduler rewrites nothing."""
        while not stopping.is_set():
            try:
                listed = await self.kube.list_objects(LCMMACHINES)
            except KubeError as exc:
                log.warning("cannot list LCMMachines for liveness (%s); retrying", exc)
                await first_of(stopping.wait(), seconds=self.settings.tick * 5)
                continue
            now = time.monotonic()
            for raw in listed.get("items", []):
                key = (raw["metadata"]["namespace"], raw["metadata"]["name"])
                for c in (raw.get("status") or {}).get("conditions") or []:
                    if c.get("type") == CONDITION:
                        self.book.recorded[key] = c.get("status") == "True"
                if self.book.recorded.get(key):
                    # Reachable as far as anyone knows: it must be heard from within the grace, like
                    # any machine, even if the broker lost its retained status.
                    self.book.heard(key, now)
            return

    async def _write_loop(self, stopping: asyncio.Event) -> None:
        was_connected = False
        probe_due = 0.0
        while not stopping.is_set():
            await first_of(stopping.wait(), seconds=self.settings.tick)
            connected = self.link.connected.is_set()
            now = time.monotonic()
            if connected and not was_connected:
                self.book.connected(now)
            was_connected = connected
            if connected and now >= probe_due:
                self.outbox.put(Outgoing(self.probe_topic, b"probe", 0, False), latest_only=True)
                probe_due = now + self.settings.probe_period
            if connected and self.leading():
                await self._write_batch(self.book.due(time.monotonic()), stopping)

    async def _write_batch(self, due: list[tuple[Key, Verdict]], stopping: asyncio.Event) -> None:
        """At most a burst's worth per tick; each verdict is taken again once its token is there, so a
        backlog of writes never lands news that went stale while it waited (a machine back meanwhile)."""
        for key, _ in due[:self.settings.burst]:
            if stopping.is_set():
                return
            await self.limiter.acquire()
            verdict = self.book.still_due(key, time.monotonic())
            if verdict is not None and await self._write(key, verdict):
                self.book.recorded[key] = verdict.reachable

    async def _write(self, key: Key, verdict: Verdict) -> bool:
        """Read, patch with the read's resourceVersion, again on a conflict; True once it is recorded."""
        namespace, name = key
        for _ in range(3):
            try:
                raw = await self.kube.get(LCMMACHINES, namespace, name)
                patch = liveness_patch(raw, verdict, datetime.now(UTC))
                if patch is not None:
                    await self.kube.patch(LCMMACHINES, namespace, name, patch, subresource="status")
                    self.writes += 1
                    log.info("%s/%s: %s=%s (%s)", namespace, name, CONDITION, verdict.reachable,
                             verdict.reason)
                return True
            except KubeError as exc:
                if exc.status == 404:  # no such LCMMachine (deleted, or a stray client): nothing to say
                    return True
                if exc.status != 409:
                    log.warning("cannot write %s of %s/%s: %s", CONDITION, namespace, name, exc)
                    return False
        return False
