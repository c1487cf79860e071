"""The machines' private network: a host bridge, and per machine a network namespace wired to it by a veth.

The namespace is made and addressed on the host before the machine boots (``systemd-nspawn
--network-namespace-path``), so the machine's network is up before its first unit starts, as a VM's DHCP
lease would be, and nothing is needed from systemd-networkd on the host or in the machine. The machines
reach the host's services (API simulator, package mirror) on the bridge address and nothing else: there is
no route or NAT beyond the bridge, so they are air-gapped as production machines are.

Names: the bridge ``lcmvm0``, namespaces ``lcmvm-<machine>``; teardown finds leftovers by that prefix. The
host-side veth is ``lcmvm-<machine>`` too when that fits an interface name (15 characters), else
``lcmvm<10 hex digits of the name's digest>`` (``demo-control-0`` is too long). The subnet (10.79.0.0/24) is
distinct from the network-namespace nodes' so both labs can run at once.

**Forwarding between machines.** Traffic from one machine to another crosses the bridge; with
``br_netfilter`` loaded (Docker on the host loads it) bridged frames go through the host's iptables FORWARD
chain, whose policy the host's own dockerd sets to DROP, which would silently cut the swarm's ports (2377,
7946, 4789) between machines. ``ensure_bridge`` therefore inserts one rule accepting traffic that enters and
leaves the lab's bridge, and ``remove_bridge`` deletes it; nothing else of the host's firewall is touched.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from testbed.lab.machines.host import LabError, run

PREFIX = "lcmvm-"
IFNAMSIZ = 15
"""Longest Linux interface name (the host-side veths)."""
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


_HOSTNAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def link_name(machine: str) -> str:
    """The network namespace of ``machine``; LabError if the name cannot be a machine's host name."""
    if not _HOSTNAME.fullmatch(machine):
        raise LabError(f"machine name {machine!r} is not a host name: lower-case letters, digits and '-', "
                       "at most 63 characters")
    return PREFIX + machine


def veth_name(machine: str) -> str:
    """The host side of ``machine``'s veth: readable when it fits an interface name, else a digest."""
    name = link_name(machine)
    if len(name) <= IFNAMSIZ:
        return name
    return PREFIX.rstrip("-") + hashlib.sha256(machine.encode()).hexdigest()[:IFNAMSIZ - len(PREFIX) + 1]


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
    await _forwarding(subnet, accept=True)


async def _forwarding(subnet: Subnet, *, accept: bool) -> None:
    """Insert (once) or delete the FORWARD rule that lets machines reach each other across the bridge."""
    if shutil.which("iptables") is None:
        return  # no iptables, no FORWARD chain to drop bridged frames
    rule = ["FORWARD", "-i", subnet.bridge, "-o", subnet.bridge, "-j", "ACCEPT"]
    present = (await run(["iptables", "-w", "-C", *rule], check=False))[0] == 0
    if accept and not present:
        await run(["iptables", "-w", "-I", *rule])
    while not accept and present:
        await run(["iptables", "-w", "-D", *rule])
        present = (await run(["iptables", "-w", "-C", *rule], check=False))[0] == 0


async def plug(machine: str, address: ipaddress.IPv4Address, subnet: Subnet) -> Path:
    """The machine's namespace, with ``eth0`` at ``address`` and a default route via the bridge."""
    name, veth = link_name(machine), veth_name(machine)
    await unplug(machine)
    await run(["ip", "netns", "add", name])
    await run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name])
    await run(["ip", "link", "set", veth, "master", subnet.bridge, "up"])
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
    await run(["ip", "link", "delete", veth_name(machine)], check=False)


def leftover_namespaces() -> list[str]:
    """Machine names whose namespaces exist, whoever made them."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name.removeprefix(PREFIX) for p in NETNS_DIR.iterdir() if p.name.startswith(PREFIX))


async def remove_bridge(subnet: Subnet) -> None:
    await _forwarding(subnet, accept=False)
    await run(["ip", "link", "delete", subnet.bridge], check=False)
