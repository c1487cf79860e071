"""``mqtts://``: agents and the regional side talk to a TLS listener, verifying the broker against the CA the
config names; a client that does not trust that CA never connects (no silent fallback to plain MQTT)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PASSWORDS, kind, listening, publishing, settings
from test_liveness import HOST

from agent.adapters.mqtt import MqttLink, Outgoing
from agent.api import telemetry as t
from testbed.lab.stack.mosquitto import Broker, BrokerTls, available
from testbed.tls import ensure_certificate


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Broker]:
    reason = available()
    if reason:
        pytest.skip(reason)
    cert = ensure_certificate(tmp_path / "pki")
    broker = Broker(tmp_path / "mosquitto", PASSWORDS,
                    tls=BrokerTls(ca_file=tmp_path / "pki" / "ca.crt", cert_file=cert.cert_path,
                                  key_file=cert.key_path))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def test_heartbeats_travel_over_tls(tls_broker: Broker) -> None:
    assert tls_broker.url.startswith("mqtts://")
    async with listening(tls_broker) as regional, publishing(settings(tls_broker, "node-1")) as outbox:
        message = t.heartbeat_message(host=HOST, machine_state="Ready", step="idle", item=None, interval=10.0,
                                      agent_uptime=1.0, dropped=0, buffered=0, ts=time.time(), seq=0)
        outbox.put(Outgoing("lcm/demo/demo/node-1/heartbeat", t.encode(message)))
        await regional.wait_for(kind("heartbeat"), describe="node-1's heartbeat over TLS")


async def test_a_client_that_does_not_trust_the_brokers_ca_never_connects(
        tls_broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    untrusting = dataclasses.replace(settings(tls_broker, "node-1"), ca_file=None)  # the system's CAs only
    link = MqttLink(untrusting, subscriptions=[])
    stopping = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="agent.adapters.mqtt")
    task = asyncio.create_task(link.run(stopping))
    try:
        refusal = await _first_warning(caplog, "unreachable")  # its first attempt, over and failed
        assert "CERTIFICATE_VERIFY_FAILED" in refusal, refusal
        assert not link.connected.is_set()
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


async def _first_warning(caplog: pytest.LogCaptureFixture, text: str, within: float = 30.0) -> str:
    """The first warning of the MQTT adapter whose message holds ``text``."""
    async with asyncio.timeout(within):
        while True:
            for record in caplog.records:
                if record.name == "agent.adapters.mqtt" and text in record.getMessage():
                    return record.getMessage()
            await asyncio.sleep(0.05)
