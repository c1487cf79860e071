"""The machines' private network: a host bridge, and per machine a network namespace wired to it by a veth.

The namespace is made and addressed on the host before the machine boots (``systemd-nspawn
--network-namespace-path``), so the machine's network is up before its first unit starts, as a VM's DHCP
lease would be, and nothing is needed from systemd-networkd on the host or in the machine. The machines
reach the host's services (API simulator, package mirror) on the bridge address and nothing else: there is
no route or NAT beyond the bridge, so they are air-gapped as production machines are.

Names: the bridge ``lcmvm0``, namespaces and host-side veths ``lcmvm-<machine>``; teardown finds leftovers
by that prefix. The subnet (10.79.0.0/24) is distinct from the network-namespace nodes' so both labs can
run at once.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from agent.lab.machines_host import LabError, run

PREFIX = "lcmvm-"
IFNAMSIZ = 15
"""Longest Linux interface name: it bounds machine names (``lcmvm-`` + up to 9 characters)."""
NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class Subnet:
    """The machines' network: the bridge holds the first address, machines get the following ones."""

    bridge: str = "lcmvm0"
    network: ipaddress.IPv4Network = field(default_factory=lambda: ipaddress.IPv4Network("10.79.0.0/24"))

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.network.network_address + 1

    def address(self, index: int) -> ipaddress.IPv4Address:
        """The address of the machine in slot ``index`` (0-based), after the bridge's."""
        address = self.network.network_address + 10 + index
        if address not in self.network or address == self.network.broadcast_address:
            raise LabError(f"no address left in {self.network} for machine slot {index}")
        return address


def link_name(machine: str) -> str:
    """The namespace and host-side veth of ``machine``; LabError if the name does not fit an interface."""
    name = PREFIX + machine
    if len(name) > IFNAMSIZ:
        raise LabError(f"machine name {machine!r} is too long: at most {IFNAMSIZ - len(PREFIX)} characters, "
                       "because it names the machine's network interface on the host")
    return name


async def ensure_bridge(subnet: Subnet) -> None:
    """Create the bridge with the gateway address, or leave an existing one as it is."""
    code, _ = await run(["ip", "link", "show", subnet.bridge], check=False)
    if code != 0:
        await run(["ip", "link", "add", subnet.bridge, "type", "bridge"])
    cidr = f"{subnet.gateway}/{subnet.network.prefixlen}"
    _, shown = await run(["ip", "-o", "-4", "addr", "show", "dev", subnet.bridge])
    if f" {cidr} " not in shown:
        await run(["ip", "addr", "add", cidr, "dev", subnet.bridge])
    await run(["ip", "link", "set", subnet.bridge, "up"])


async def plug(machine: str, address: ipaddress.IPv4Address, subnet: Subnet) -> Path:
    """The machine's namespace, with ``eth0`` at ``address`` and a default route via the bridge."""
    name = link_name(machine)
    await unplug(machine)
    await run(["ip", "netns", "add", name])
    await run(["ip", "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", name])
    await run(["ip", "link", "set", name, "master", subnet.bridge, "up"])
    inside = ["ip", "-n", name]
    await run([*inside, "addr", "add", f"{address}/{subnet.network.prefixlen}", "dev", "eth0"])
    await run([*inside, "link", "set", "lo", "up"])
    await run([*inside, "link", "set", "eth0", "up"])
    await run([*inside, "route", "add", "default", "via", str(subnet.gateway)])
    return NETNS_DIR / name


async def unplug(machine: str) -> None:
    """Remove the namespace and veth of ``machine``; nothing happens when they are gone already."""
    name = link_name(machine)
    if (NETNS_DIR / name).exists():
        await run(["ip", "netns", "delete", name])  # takes the veth pair with it
    await run(["ip", "link", "delete", name], check=False)


def leftover_namespaces() -> list[str]:
    """Machine names whose namespaces exist, whoever made them."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name.removeprefix(PREFIX) for p in NETNS_DIR.iterdir() if p.name.startswith(PREFIX))


async def remove_bridge(subnet: Subnet) -> None:
    await run(["ip", "link", "delete", subnet.bridge], check=False)
