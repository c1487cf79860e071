"""The repository's Mosquitto config and ACL (``deploy/mqtt``): each node is confined to its own subtree,
the regional user reads all and can only send commands, and nobody gets in without credentials."""

from __future__ import annotations

import aiomqtt
import pytest
from conftest import PASSWORDS, listening, publishing, settings

from agent.adapters.mqtt import Outgoing
from agent.api import telemetry as t
from testbed.lab.stack.mosquitto import REGIONAL_USER, Broker

OWN = "lcm/ns/demo/node-1"
OTHER = "lcm/ns/demo/node-2"


async def test_a_node_cannot_publish_into_another_nodes_subtree(mqtt_broker: Broker) -> None:
    async with listening(mqtt_broker) as regional, publishing(settings(mqtt_broker, "node-1")) as node_1:
        for channel in t.CHANNELS:
            node_1.put(Outgoing(f"{OTHER}/{channel}", b"forged", qos=1))
        node_1.put(Outgoing("lcm/other-ns/demo/node-1/../node-2/events", b"forged", qos=1))
        node_1.put(Outgoing(f"{OWN}/cmd", b"forged", qos=1))  # its own commands come from the region only
        node_1.put(Outgoing(f"{OWN}/events", b"mine", qos=1))
        await regional.wait_for_raw(lambda r: r.payload == b"mine", describe="node-1's own event")
    assert [r.topic for r in regional.received] == [f"{OWN}/events"]


async def test_whatever_a_node_publishes_the_regional_reader_attributes_to_that_node(
    mqtt_broker: Broker,
) -> None:
    """The regional reader (liveness, ``lcmctl watch``) takes a message's machine from its topic
    (``telemetry.parse_topic``): every topic node-1's credentials get through names node-1, whatever
    namespace, cluster or look-alike name it tries. The namespace segment is open (the ACL pins
    ``%u``, the machine's name), which is why provisioning keeps machine names unique across namespaces."""
    forged = [f"lcm/{ns}/{cluster}/{machine}/{channel}"
              for ns in ("ns", "other-ns") for cluster in ("demo", "other")
              for machine in ("node-2", "node-10", "node", "node-1/x", "") for channel in t.CHANNELS]
    async with listening(mqtt_broker) as regional, publishing(settings(mqtt_broker, "node-1")) as node_1:
        for topic in forged:
            node_1.put(Outgoing(topic, b"forged", qos=1))
        for ns in ("ns", "other-ns"):
            node_1.put(Outgoing(f"lcm/{ns}/other/node-1/heartbeat", b"mine", qos=1))
        node_1.put(Outgoing(f"{OWN}/events", b"last", qos=1))
        await regional.wait_for_raw(lambda r: r.payload == b"last", describe="node-1's last message")
    parsed = [t.parse_topic(r.topic) for r in regional.received]
    attributed = {where[0].machine if where else None for where in parsed}
    assert attributed == {"node-1"}
    assert not [r for r in regional.received if r.payload == b"forged"]


async def test_a_node_reads_its_own_commands_and_nothing_of_other_nodes(mqtt_broker: Broker) -> None:
    async with (listening(mqtt_broker, "node-1") as node_1,
                listening(mqtt_broker) as everything,
                publishing(settings(mqtt_broker, "node-2")) as node_2,
                publishing(settings(mqtt_broker, REGIONAL_USER)) as regional):
        node_2.put(Outgoing(f"{OTHER}/heartbeat", b"beat"))
        node_2.put(Outgoing(f"{OTHER}/status", b"online", qos=1, retain=True))
        regional.put(Outgoing(f"{OTHER}/cmd", b"for node-2", qos=1))
        regional.put(Outgoing(f"{OWN}/cmd", b"for node-1", qos=1))
        for payload in (b"beat", b"online", b"for node-2"):  # routed: to every subscriber it was allowed to
            await everything.wait_for_raw(lambda r, p=payload: r.payload == p, describe=f"{payload!r} routed")
        regional.put(Outgoing(f"{OWN}/cmd", b"last", qos=1))  # queued for node-1 behind all routed before
        await node_1.wait_for_raw(lambda r: r.payload == b"last", describe="node-1's last command")
    assert [(r.topic, r.payload) for r in node_1.received] == [(f"{OWN}/cmd", b"for node-1"),
                                                               (f"{OWN}/cmd", b"last")]


async def test_the_regional_user_cannot_fake_a_nodes_heartbeat_or_status(mqtt_broker: Broker) -> None:
    async with (listening(mqtt_broker, "node-2", topics=(f"{OTHER}/#",)) as witness,
                listening(mqtt_broker) as regional_view,
                publishing(settings(mqtt_broker, REGIONAL_USER)) as regional):
        regional.put(Outgoing(f"{OWN}/heartbeat", b"fake", qos=1))
        regional.put(Outgoing(f"{OWN}/status", b"fake", qos=1, retain=True))
        regional.put(Outgoing(f"{OWN}/diagnostics", b"fake", qos=1, retain=True))
        regional.put(Outgoing(f"{OTHER}/cmd", b"wake", qos=1))
        await witness.wait_for_raw(lambda r: r.payload == b"wake", describe="the command")
    assert [r.payload for r in regional_view.received] == [b"wake"]


@pytest.mark.parametrize(("user", "password"), [(None, None), ("node-1", "wrong"), ("nobody", "x"),
                                                ("node-1", PASSWORDS["node-2"])])
async def test_clients_without_valid_credentials_are_refused(mqtt_broker: Broker, user: str | None,
                                                             password: str | None) -> None:
    with pytest.raises(aiomqtt.MqttError, match=r"[Nn]ot authori[sz]ed|[Bb]ad user"):
        async with aiomqtt.Client("127.0.0.1", mqtt_broker.port, username=user, password=password,
                                  protocol=aiomqtt.ProtocolVersion.V5):
            pass
