"""Hardware changes: which uevents are reported, and a NIC added to the host (a veth pair, as root) reaching
MQTT as an event and ``status.hostInfo`` without waiting for the periodic refresh."""

from __future__ import annotations

import asyncio
import os
import shutil
from typing import Any

import pytest
import pyudev
from agent_harness import Node, status
from conftest import Received, kind, listening, telemetry_config

from agent.adapters.udev import HardwareChange, change_of
from testbed.lab.stack.mosquitto import Broker


@pytest.mark.parametrize(("action", "subsystem", "name", "expected"), [
    ("add", "block", "sdb", "added"),
    ("remove", "block", "sdb1", "removed"),
    ("change", "block", "loop0", "changed"),  # a loop device attached, a disk resized
    ("add", "net", "eth1", "added"),
    ("move", "net", "ens5", "renamed"),
    ("change", "net", "eth1", None),  # link state noise
    ("add", "net", "veth12ab", None),  # Docker's per-container NICs come and go all day
    ("add", "net", "docker0", None),
    ("remove", "net", "br-4f2a", None),
    ("bind", "block", "sdb", None),
    ("add", "usb", "1-1", None),
])
def test_which_uevents_are_reported(action: str, subsystem: str, name: str, expected: str | None) -> None:
    change = change_of(action, subsystem, name, f"/devices/x/{name}", {"SEQNUM": "7", "DEVTYPE": "disk"})
    if expected is None:
        assert change is None
    else:
        assert change == HardwareChange(expected, subsystem, name, f"/devices/x/{name}", {"DEVTYPE": "disk"})


def _uevents_reach_us() -> str:
    """Why a NIC cannot be added and seen here, or ""."""
    if os.geteuid() != 0:
        return "adding a NIC needs root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is missing"
    try:
        pyudev.Monitor.from_netlink(pyudev.Context(), source="kernel").start()
    except (ImportError, OSError) as exc:
        return f"no uevent netlink socket here: {exc}"
    return ""


def _nics(obj: dict[str, Any]) -> set[str]:
    return {nic["name"] for nic in status(obj).get("hostInfo", {}).get("hardware", {}).get("network", {})
            .get("nics", [])}


def _hardware(event: str, device: str) -> Any:
    def match(entry: Received) -> bool:
        hardware = kind("events", type="hardware", event=event)(entry)
        return hardware and entry.message["data"]["device"] == device
    return match


async def _ip(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec("ip", "link", *args)
    await proc.wait()


@pytest.mark.root
@pytest.mark.skipif(bool(_uevents_reach_us()), reason=_uevents_reach_us() or "-")
async def test_a_new_nic_is_an_event_and_reaches_host_info_at_once(node: Node, mqtt_broker: Broker) -> None:
    # hostInfo is re-read hourly here: only the uevent can bring the NIC in within the test's time.
    cfg = await telemetry_config(node, mqtt_broker, heartbeat_period=0.5, host_info_period=3600.0)
    await node.create([node.item("prep", "deploy")])
    nic, peer = f"lcmhw{os.getpid() % 10000}a", f"lcmhw{os.getpid() % 10000}b"
    async with listening(mqtt_broker) as regional, node.agent(cfg):
        await node.wait_state("Ready")
        await _ip("add", nic, "type", "veth", "peer", "name", peer)
        try:
            added = await regional.wait_for(_hardware("added", nic), within=10, describe=f"{nic} added")
            machine = await node.wait_for(lambda o: nic in _nics(o), within=10, describe=f"{nic} in hostInfo")
        finally:
            await _ip("del", nic)
        await regional.wait_for(_hardware("removed", nic), within=10, describe=f"{nic} removed")
        await node.wait_for(lambda o: nic not in _nics(o), within=10, describe=f"{nic} gone from hostInfo")
    assert added.message["data"]["subsystem"] == "net"
    assert {nic, peer} <= _nics(machine)
