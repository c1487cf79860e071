"""Fixtures of the telemetry tests: a real Mosquitto with the repository's config and ACL (``mqtt_broker``),
the agent harness of ``tests/agent`` (``node``), and a regional listener that records what the plane carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "agent"))  # the agent harness, shared with tests/agent
sys.path.insert(0, str(Path(__file__).parents[1] / "scheduler"))  # the scheduler harness

from agent_harness import Node

from agent.adapters.kube import connect
from agent.adapters.mqtt import BrokerSettings, MqttLink, Outbox
from agent.api import telemetry as t
from agent.daemon.config import AgentSettings, load_config
from testbed.lab.stack.mosquitto import REGIONAL_USER, Broker, available
from testbed.sim.testing import KubeApi

PASSWORDS = {"node-1": "node-1-Secret-pw", "node-2": "node-2-Secret-pw", REGIONAL_USER: "regional-Secret-pw"}
"""Broker users: nodes are named after their LCMMachine, as ``deploy/mqtt/acl`` expects."""


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[Broker]:
    reason = available()
    if reason:
        pytest.skip(reason)
    broker = Broker(tmp_path / "mosquitto", PASSWORDS)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
async def node(kube_api: KubeApi, tmp_path: Path) -> AsyncIterator[Node]:
    admin = await connect(kubeconfig=kube_api.kubeconfig_path)
    async with admin:
        yield Node(kube_api, admin, tmp_path)


def settings(broker: Broker, user: str, client_id: str = "") -> BrokerSettings:
    """``user``'s client settings; for a TLS broker they trust its CA (and nothing else)."""
    ca_file = broker.tls.ca_file if broker.tls else None
    return BrokerSettings(broker.url, client_id or f"test-{user}", user, PASSWORDS[user], ca_file=ca_file)


async def telemetry_config(node: Node, broker: Broker, *, buffer_size: int = 1000,
                           **timings: float) -> AgentSettings:
    """The harness's agent config plus an ``mqtt`` section: the node's own broker user and password file."""
    await node.configure(**timings)
    secret = node.tmp / "mqtt-password"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(PASSWORDS[node.name] + "\n")
    doc = yaml.safe_load(node.config_path.read_text())
    doc["mqtt"] = {"url": broker.url, "username": node.name, "password_file": str(secret),
                   "buffer_size": buffer_size}
    node.config_path.write_text(yaml.safe_dump(doc))
    return load_config(node.config_path, {})


@dataclass
class Received:
    topic: str
    payload: bytes
    at: float
    subtree: t.Subtree | None = None
    channel: str = ""
    message: dict[str, Any] = field(default_factory=dict)


class Listener:
    """A client recording every message it may read, each validated against the schema on arrival (an
    invalid one fails the test that waits on it)."""

    def __init__(self, broker: Broker, user: str = REGIONAL_USER,
                 topics: tuple[str, ...] = ("lcm/#",)) -> None:
        self.received: list[Received] = []
        self.invalid: list[tuple[str, str]] = []
        self.link = MqttLink(settings(broker, user, f"listener-{user}-{id(self)}"),
                             subscriptions=[(topic, 1) for topic in topics], on_message=self._take)

    def _take(self, topic: str, payload: bytes) -> None:
        entry = Received(topic, payload, time.monotonic())
        where = t.parse_topic(topic)
        if where is not None and payload:
            entry.subtree, entry.channel = where
            try:
                entry.message = t.decode(payload)
            except t.TelemetryError as exc:
                self.invalid.append((topic, str(exc)))
        self.received.append(entry)

    def messages(self, channel: str, machine: str = "") -> list[dict[str, Any]]:
        return [r.message for r in self.received
                if r.channel == channel and r.message
                and (not machine or (r.subtree is not None and r.subtree.machine == machine))]

    async def wait_for(self, what: Callable[[Received], bool], within: float = 30.0,
                       describe: str = "") -> Received:
        """The first schema-valid message for which ``what`` holds; fails at once on an invalid one."""
        def valid(entry: Received) -> bool:
            assert not self.invalid, f"messages off the schema: {self.invalid}"
            return bool(entry.message) and what(entry)
        return await self.wait_for_raw(valid, within, describe)

    async def wait_for_raw(self, what: Callable[[Received], bool], within: float = 30.0,
                           describe: str = "") -> Received:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for entry in self.received:
                if what(entry):
                    return entry
            await asyncio.sleep(0.05)
        pytest.fail(f"timed out waiting for {describe or what}; got {[r.topic for r in self.received][-20:]}")


@contextlib.asynccontextmanager
async def connected(run: Callable[[asyncio.Event], Awaitable[None]], link: MqttLink) -> AsyncIterator[None]:
    """``run(stopping)`` as a task, entered once its broker ``link`` is connected and stopped (and awaited) on
    exit: how every test holds a subscriber of its own."""
    stopping = asyncio.Event()
    task = asyncio.create_task(run(stopping))
    try:
        await asyncio.wait_for(link.connected.wait(), 10)
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def listening(broker: Broker, user: str = REGIONAL_USER,
                    topics: tuple[str, ...] = ("lcm/#",)) -> AsyncIterator[Listener]:
    listener = Listener(broker, user, topics)
    async with connected(listener.link.run, listener.link):
        yield listener


def broker_log(broker: Broker, client_prefix: str) -> list[str]:
    """The broker's log lines about clients whose id starts with ``client_prefix`` (``connection_messages``
    in ``deploy/mqtt/mosquitto.conf``: who connected as which user, and how each connection ended)."""
    return [line for line in broker.log.read_text().splitlines()
            if f" as {client_prefix}" in line or f"Client {client_prefix}" in line]


def kind(channel: str, machine: str = "node-1", **fields: Any) -> Callable[[Received], bool]:
    """Matches a message of ``channel`` for ``machine`` whose top-level fields have the values given."""
    def match(entry: Received) -> bool:
        if entry.channel != channel or entry.subtree is None or entry.subtree.machine != machine:
            return False
        return all(entry.message.get(key) == value for key, value in fields.items())
    return match


@contextlib.asynccontextmanager
async def publishing(broker_settings: BrokerSettings) -> AsyncIterator[Outbox]:
    """A connected client; what is put into the yielded outbox is published in order."""
    outbox = Outbox(100)
    link = MqttLink(broker_settings, outbox=outbox)
    stopping = asyncio.Event()
    task = asyncio.create_task(link.run(stopping))
    try:
        await asyncio.wait_for(link.connected.wait(), 10)
        yield outbox
        for _ in range(200):  # until the broker took everything
            if not len(outbox):
                break
            await asyncio.sleep(0.05)
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)
