"""The libvirt side of the Vagrant VMs: their isolated network and what ``vagrant destroy`` leaves behind.

The network is made here, before ``vagrant up``, because the regional side must listen on its host address
before the VMs boot; the Vagrantfile names it as vagrant-libvirt's management network, which vagrant-libvirt
then finds and uses as it is. It is isolated: no ``<forward>`` element, so libvirt neither routes nor NATs
and never turns on the host's IP forwarding; dnsmasq only hands out addresses (no DNS, no default route
beyond the bridge). The VMs reach the host's regional services on the bridge address and nothing else.

vagrant-libvirt removes a domain and its own disk on ``vagrant destroy``; the box's base volume, which it
uploads once into the storage pool, stays, as would the pool. The project's VMs use a pool of their own, so
``remove_storage`` can delete the pool with every volume in it once no domain uses the network any more.
"""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path
from xml.etree import ElementTree

from testbed.lab.machines.host import LabError, run
from testbed.lab.machines.network import Subnet, remove_bridge

NETWORK = "lcm-vagrant"
BRIDGE = "lcmvag0"
SUBNET = Subnet(bridge=BRIDGE, network=ipaddress.IPv4Network("10.80.0.0/24"))
"""Beside the nspawn machines' 10.79.0.0/24, so both labs can run at once."""
POOL = "lcm-vagrant"
POOL_DIR = Path("/var/lib/lcm-lab/vagrant-pool")
"""Beside the state directory (0700): QEMU runs as libvirt's own user and must reach the volumes."""
URI = "qemu:///system"


def missing_tools() -> list[str]:
    """What the host lacks to run the Vagrant VMs, each with its package."""
    tools = {"vagrant": "vagrant (apt-get install vagrant vagrant-libvirt)",
             "virsh": "virsh (apt-get install libvirt-daemon-system libvirt-clients)",
             "qemu-system-x86_64": "QEMU (apt-get install qemu-system-x86)",
             "genisoimage": "genisoimage (apt-get install genisoimage), for the VMs' NoCloud seeds"}
    return [hint for tool, hint in tools.items() if shutil.which(tool) is None]


def network_xml(subnet: Subnet = SUBNET, name: str = NETWORK) -> str:
    """An isolated libvirt network: a bridge with the gateway address and DHCP for the rest, no forward."""
    hosts = list(subnet.network.hosts())
    root = ElementTree.Element("network", ipv6="no")
    ElementTree.SubElement(root, "name").text = name
    ElementTree.SubElement(root, "bridge", name=subnet.bridge, stp="on", delay="0")
    ElementTree.SubElement(root, "dns", enable="no")
    ip = ElementTree.SubElement(root, "ip", address=str(subnet.gateway), netmask=str(subnet.network.netmask))
    dhcp = ElementTree.SubElement(ip, "dhcp")
    ElementTree.SubElement(dhcp, "range", start=str(subnet.address(0)), end=str(hosts[-1]))
    return ElementTree.tostring(root, encoding="unicode")


async def virsh(*args: str, check: bool = True) -> tuple[int, str]:
    return await run(["virsh", "--quiet", "-c", URI, *args], check=check)


async def ensure_network(state_dir: Path, subnet: Subnet = SUBNET, name: str = NETWORK) -> None:
    """The isolated network, defined and started (an existing one is started if it is not)."""
    code, info = await virsh("net-info", name, check=False)
    if code != 0:
        xml = state_dir / f"{name}.xml"
        xml.write_text(network_xml(subnet, name))
        await virsh("net-define", str(xml))
        info = ""
    if "Active:         yes" not in info:
        await virsh("net-start", name)


async def ensure_pool(pool: str = POOL, path: Path = POOL_DIR) -> None:
    """The project's storage pool (a directory), defined, built and started; vagrant-libvirt makes only
    its ``default`` pool itself."""
    if (await virsh("pool-info", pool, check=False))[0] != 0:
        await virsh("pool-define-as", pool, "dir", "--target", str(path))
        await virsh("pool-build", pool)
    _, info = await virsh("pool-info", pool)
    if "running" not in info:
        await virsh("pool-start", pool)


async def domains_on(name: str = NETWORK) -> list[str]:
    """The domains (running or not) with an interface on network ``name``."""
    _, listed = await virsh("list", "--all", "--name", check=False)
    found = []
    for domain in listed.split():
        _, xml = await virsh("domiflist", domain, check=False)
        if any(line.split()[2:3] == [name] for line in xml.splitlines() if line.split()):
            found.append(domain)
    return found


async def remove_network(subnet: Subnet = SUBNET, name: str = NETWORK) -> bool:
    """The network stopped and undefined, and the lab's forwarding rule for its bridge deleted; LabError while
    a domain still uses it. Idempotent; True when there was a network to remove."""
    users = await domains_on(name)
    if users:
        raise LabError(f"libvirt network {name} is still used by {', '.join(users)}: "
                       "vagrant destroy -f them first")
    found = (await virsh("net-info", name, check=False))[0] == 0
    if found:
        await virsh("net-destroy", name, check=False)
        await virsh("net-undefine", name)
    await remove_bridge(subnet)  # the bridge is gone with the network; this deletes the FORWARD rule
    return found


async def remove_storage(pool: str = POOL) -> list[str]:
    """Every volume of the project's pool (the box's base image, seeds), then the pool; their names."""
    if (await virsh("pool-info", pool, check=False))[0] != 0:
        return []
    await virsh("pool-start", pool, check=False)  # vol-delete needs an active pool
    await virsh("pool-refresh", pool, check=False)
    _, listed = await virsh("vol-list", pool, check=False)
    volumes = [line.split()[0] for line in listed.splitlines() if line.split()]
    for volume in volumes:
        await virsh("vol-delete", volume, "--pool", pool)
    await virsh("pool-destroy", pool, check=False)
    await virsh("pool-delete", pool, check=False)  # its (now empty) directory
    await virsh("pool-undefine", pool)
    return volumes


async def leftovers(pool: str = POOL, name: str = NETWORK) -> list[str]:
    """What of the project's is still in libvirt: its network, its pool, domains on the network."""
    found = [f"domain {d}" for d in await domains_on(name)]
    if (await virsh("net-info", name, check=False))[0] == 0:
        found.append(f"network {name}")
    if (await virsh("pool-info", pool, check=False))[0] == 0:
        found.append(f"pool {pool}")
    return found
