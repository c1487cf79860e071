"""The agent's side of the MQTT plane: presence, heartbeats, events and commands (``docs/telemetry.md``).

A root task of the daemon when ``mqtt.url`` is set. Nothing here can hold the agent up: every message goes
through the bounded ``Outbox`` (``agent.adapters.mqtt``), which the link drains whenever the broker is
there. What is published:

* ``status`` (retained): ``online`` on every connect, ``offline`` as the last will (the broker publishes it
  when the connection dies: a killed agent, a dead node) and on a clean stop;
* ``heartbeat`` every ``timings.heartbeat_period``: host load, the machine's state, the worker's step and the
  running item with its Ansible progress, the count of dropped messages;
* ``diagnostics`` (retained): the evidence bundle of an item flagged stuck (``agent.daemon.diagnostics``);
* ``events``: the runners' ``ItemEvent``s, hardware changes (which also make the worker re-read host facts
  after a short settle: changes come in bursts, a veth pair is two NICs) and the outcome of commands;
* commands on ``cmd``: ``wake`` re-reads the LCMMachine now (as authoritative as the watch: a fresh GET);
  ``cancel`` cancels the running item's attempt. A command only ever hurries what the LCMMachine asks.

The topic subtree names the machine's cluster (``spec.clusterName``); when that changes (an unassigned
machine given to a cluster) the link is re-made under the new subtree and the old retained status cleared.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec

from agent import __version__
from agent.adapters.host import read_host_load
from agent.adapters.kube import KubeError
from agent.adapters.mqtt import BrokerSettings, MqttLink, Outbox, Outgoing
from agent.adapters.udev import HardwareChange, HardwareMonitor
from agent.api import telemetry as t
from agent.api.execution import ItemEvent
from agent.daemon.config import AgentSettings
from agent.daemon.own_machine import OwnMachine
from agent.daemon.worker import MachineWorker
from agent.decisions.execution import Idle, Rehash, Report, Run, Step, Wait
from agent.kits.logs import SecretRegistry
from agent.kits.tasks import first_of

log = logging.getLogger(__name__)
P = ParamSpec("P")

HARDWARE_SETTLE = 1.0
"""Seconds without another hardware event before host facts are re-read."""


def broker_settings(cfg: AgentSettings) -> BrokerSettings:
    mqtt, api = cfg.mqtt, cfg.api
    return BrokerSettings(
        url=mqtt.url, client_id=f"lcm-agent-{api.namespace}-{api.machine_name}", username=mqtt.username,
        password=mqtt.password.reveal() if mqtt.password is not None else None, ca_file=mqtt.ca_file,
        cert_file=mqtt.cert_file, key_file=mqtt.key_file,
        # Idle pings at twice the heartbeat period: heartbeats are the traffic; the keepalive only decides
        # how soon the broker fires the will of a node that vanished without closing its connection.
        keepalive=max(5, round(2 * cfg.timings.heartbeat_period)),
    )


class Telemetry:
    """Publishes for one agent; ``on_item_event`` is the worker's event sink."""

    def __init__(self, cfg: AgentSettings, own: OwnMachine, secrets: SecretRegistry) -> None:
        self.cfg = cfg
        self.own = own
        self.worker: MachineWorker | None = None
        self.outbox = Outbox(cfg.mqtt.buffer_size)
        self.subtree: t.Subtree | None = None
        self._secrets = secrets
        """Every payload is redacted like a log line: the config's credentials and the join tokens learned
        at run time never reach the broker, whatever a task name or device property carries."""
        self._seq = itertools.count()
        self._connection = 0.0
        """When the current broker connection was opened (``_will``)."""
        self._started = time.monotonic()
        self._progress: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._settle: asyncio.TimerHandle | None = None

    async def run(self, stopping: asyncio.Event, worker: MachineWorker) -> None:
        """Until ``stopping``; the broker's absence is absorbed here, so this ends only on stop."""
        self.worker = worker
        monitor = HardwareMonitor(self.on_hardware)
        tasks = [asyncio.ensure_future(c) for c in (self._links(stopping), self._heartbeats(stopping),
                                                      monitor.run(stopping))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in (*tasks, *self._tasks):
                task.cancel()
            if self._settle is not None:
                self._settle.cancel()

    # Publishing

    def _message(self, build: Any, **fields: Any) -> dict[str, Any]:
        message: dict[str, Any] = build(ts=time.time(), seq=next(self._seq), **fields)
        return message

    def _outgoing(self, subtree: t.Subtree, channel: t.Channel, message: Mapping[str, Any]) -> Outgoing:
        payload = self._secrets.redact(t.encode(message).decode()).encode()
        return Outgoing(subtree.topic(channel), payload, t.QOS[channel], t.RETAINED[channel])

    def publish(self, channel: t.Channel, message: Mapping[str, Any], *, latest_only: bool = False) -> None:
        """Queue a message for this machine's subtree; before the subtree is known there is no one to tell."""
        if self.subtree is not None:
            self.outbox.put(self._outgoing(self.subtree, channel, message), latest_only=latest_only)

    def _presence(self, subtree: t.Subtree, state: str, reason: str) -> Outgoing:
        status = self._message(t.status_message, state=state, reason=reason, agent_version=__version__,
                               heartbeat_interval=self.cfg.timings.heartbeat_period,
                               connection=self._connection)
        return self._outgoing(subtree, "status", status)

    def _will(self, subtree: t.Subtree) -> Outgoing:
        """Built on every connect, before the connection opens: it stamps the connection, so that its
        ``online`` and its will carry the same ``connection``."""
        self._connection = time.time()
        return self._presence(subtree, "offline", "lost")

    # The connection, re-made when the machine's cluster changes

    async def _links(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            machine = self.own.latest
            if machine is None:
                await self.own.wait(self.own.version, stopping, None)
                continue
            api = self.cfg.api
            self.subtree = t.Subtree(api.namespace, machine.spec.cluster_name, api.machine_name)
            link = MqttLink(
                broker_settings(self.cfg), outbox=self.outbox,
                will=functools.partial(self._will, self.subtree),
                hello=functools.partial(self._presence, self.subtree, "online", "connected"),
                subscriptions=[(self.subtree.topic("cmd"), t.QOS["cmd"])], on_message=self.on_command,
            )
            link.farewell = self._presence(self.subtree, "offline", "stopped")
            done = asyncio.Event()
            watcher = asyncio.ensure_future(self._until_moved(self.subtree, link, stopping, done))
            try:
                await link.run(done)
            finally:
                watcher.cancel()

    async def _until_moved(self, subtree: t.Subtree, link: MqttLink, stopping: asyncio.Event,
                           done: asyncio.Event) -> None:
        """Sets ``done`` on stop, or when the machine moved to another cluster (then the link's farewell
        clears the old subtree's retained status instead of saying offline)."""
        while not stopping.is_set():
            await self.own.wait(self.own.version, stopping, None)
            machine = self.own.latest
            if machine is not None and machine.spec.cluster_name != subtree.cluster:
                log.info("the machine's cluster is now %r: moving its MQTT topics",
                         machine.spec.cluster_name)
                link.farewell = Outgoing(subtree.topic("status"), b"", t.QOS["status"], retain=True)
                # The old subtree's retained bundle goes too: it would shadow the new one's for lcmctl.
                cleared = Outgoing(subtree.topic("diagnostics"), b"", t.QOS["diagnostics"], retain=True)
                self.outbox.put(cleared)
                break
        done.set()

    # Heartbeats

    async def _heartbeats(self, stopping: asyncio.Event) -> None:
        period = self.cfg.timings.heartbeat_period
        while not stopping.is_set():
            if self.subtree is not None:
                self.publish("heartbeat", await self._heartbeat(period), latest_only=True)
            await first_of(stopping.wait(), seconds=period)

    async def _heartbeat(self, period: float) -> dict[str, Any]:
        host = await asyncio.to_thread(read_host_load, self.cfg.state_dir)
        machine = self.own.latest
        state = machine.status.state if machine is not None else None
        step = self.worker.step if self.worker is not None else Idle("starting")
        return self._message(
            t.heartbeat_message, host=host, machine_state=state or "Unknown", step=_step_name(step),
            item=self._current(step), interval=period, agent_uptime=time.monotonic() - self._started,
            dropped=self.outbox.dropped, buffered=len(self.outbox), connection=self._connection,
        )

    def _current(self, step: Step) -> t.CurrentItem | None:
        if not isinstance(step, Run):
            return None
        progress = self._progress if self._progress.get("item") == step.item.name else {}
        return t.CurrentItem(name=step.item.name, phase=step.item.phase, attempt=step.attempt,
                             started=progress.get("started", time.time()), task=progress.get("task", ""),
                             counts=progress.get("counts"))

    # Events

    def on_item_event(self, event: ItemEvent) -> None:
        """The worker's event sink: keep the running item's progress for heartbeats, publish the event."""
        if event.kind == "started":
            self._progress = {"item": event.item, "started": time.time()}
        elif self._progress.get("item") == event.item:
            if "task" in event.data:
                self._progress["task"] = str(event.data["task"])
            if "counts" in event.data:
                self._progress["counts"] = dict(event.data["counts"])
        self.publish("events", self._message(t.event_message, type="item", event=event.kind,
                                             data=event.data, item=event.item))

    def on_reconcile(self, event: str, data: Mapping[str, Any]) -> None:
        """The reconciler's sink (``drift_watch.ReconcileSink``): drift found, a run started or finished.
        Checks themselves (one per node every 30 s by default, most of them clean) are counted in the
        metrics, not sent: at fleet scale they would be most of the broker's traffic and tell nothing a
        drift does not."""
        if event == "checked":
            return
        self.publish("events", self._message(t.event_message, type="reconciler", event=event, data=data))

    def on_diagnostics(self, item: str, bundle: Mapping[str, Any]) -> None:
        """The diagnostics' sink (``diagnostics.Publish``): the bundle, retained, on the machine's own
        ``diagnostics`` topic (the broker keeps the newest per machine for ``lcmctl diagnostics``)."""
        self.publish("diagnostics", self._message(t.diagnostics_message, trigger="stuck", item=item,
                                                  bundle=bundle), latest_only=True)

    def on_hardware(self, change: HardwareChange) -> None:
        log.info("hardware %s: %s %s", change.action, change.subsystem, change.device)
        data = {"subsystem": change.subsystem, "device": change.device, "devpath": change.devpath,
                "properties": dict(change.properties)}
        self.publish("events", self._message(t.event_message, type="hardware", event=change.action,
                                             data=data))
        if self.worker is not None:
            if self._settle is not None:
                self._settle.cancel()
            loop = asyncio.get_running_loop()
            self._settle = loop.call_later(HARDWARE_SETTLE, self.worker.refresh_host_now)

    # Commands

    def on_command(self, topic: str, payload: bytes) -> None:
        try:
            command = t.decode(payload)
            if command["kind"] != "cmd":
                raise t.TelemetryError(f"a {command['kind']} message is not a command")
        except t.TelemetryError as exc:
            log.warning("refused an MQTT command on %s: %s", topic, exc)
            return
        name, item, ident = command["command"], str(command.get("item", "")), str(command.get("id", ""))
        log.info("MQTT command %s", name, extra={"item": item} if item else None)
        if name == "wake":
            task = asyncio.ensure_future(self._wake(ident))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            cancelled = self.worker.cancel_running(item) if self.worker is not None else None
            detail = f"cancelled {cancelled}" if cancelled else "no such item running"
            self._answer("cancel", ident, "done" if cancelled else "refused", detail)

    async def _wake(self, ident: str) -> None:
        """A fresh read of the LCMMachine, taken as the newest version (older watch events are skipped)."""
        try:
            await self.own.reread()
        except KubeError as exc:
            self._answer("wake", ident, "refused", f"cannot read the LCMMachine: {exc}")
            return
        self._answer("wake", ident, "done", "re-read the LCMMachine")

    def _answer(self, command: str, ident: str, outcome: str, detail: str) -> None:
        data = {"command": command, "id": ident, "detail": detail}
        self.publish("events", self._message(t.event_message, type="command", event=outcome, data=data))


def fan_out(*sinks: Callable[P, None]) -> Callable[P, None]:
    """One event sink feeding several (the test hooks' and telemetry's)."""

    def sink(*args: P.args, **kwargs: P.kwargs) -> None:
        for each in sinks:
            each(*args, **kwargs)

    return sink


def _step_name(step: Step) -> str:
    if isinstance(step, Idle):
        return "starting" if step.reason == "starting" else "idle"
    if isinstance(step, Run):
        return "running"
    if isinstance(step, Report | Rehash):
        return "reporting"
    assert isinstance(step, Wait)
    return "waiting"
