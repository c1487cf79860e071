"""Host facts as values: what an LCMMachine reports in ``status.hostInfo``.

The JSON shape is Mirantis/mcc-api's ``HostInfo`` (as in the project's CRD): ``os`` is go-sysinfo's
structured OSInfo, ``hardware.storage.disks`` and ``hardware.network.nics`` are lists inside objects, so an
object written by that system reads here and back, and nothing we send is pruned by the API server.

Frozen dataclasses, and two values are equal exactly when their ``to_status()`` is: the daemon writes
hostInfo only when ``collect_host_info() != last``, which keeps a fleet of idle agents from storming the API
server. Facts the agent needs but does not report (interface addresses, the default route) ride along
with ``compare=False``; only slowly changing facts are reported (total memory, never free memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.kits.timestamps import rfc3339


@dataclass(frozen=True)
class OsInfo:
    """The distribution, from os-release: ``platform`` is its ID ("ubuntu"), ``family`` the distribution
    it derives from ("debian"), ``major.minor.patch`` the numeric VERSION_ID (0 where absent)."""

    family: str = ""
    platform: str = ""
    name: str = ""
    version: str = ""
    major: int = 0
    minor: int = 0
    patch: int = 0
    build: str = ""
    codename: str = ""

    def to_status(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "platform": self.platform,
            "name": self.name,
            "version": self.version,
            "major": self.major,
            "minor": self.minor,
            "patch": self.patch,
            "build": self.build,
            "codename": self.codename,
        }


@dataclass(frozen=True)
class Cpu:
    """``count`` physical cores, ``threads`` logical CPUs (equal without SMT, or when cores are unknown)."""

    count: int
    threads: int

    def to_status(self) -> dict[str, Any]:
        return {"count": self.count, "threads": self.threads}


@dataclass(frozen=True)
class Memory:
    """Physical memory; ``total`` in bytes."""

    total: int

    def to_status(self) -> dict[str, Any]:
        return {"total": self.total}


@dataclass(frozen=True)
class Partition:
    """One partition of a disk; ``size`` in bytes, ``label`` the filesystem label if any."""

    name: str
    size: int
    label: str = ""
    by_paths: tuple[str, ...] = ()
    by_ids: tuple[str, ...] = ()

    def to_status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "label": self.label,
            "byPaths": list(self.by_paths),
            "byIDs": list(self.by_ids),
        }


@dataclass(frozen=True)
class Disk:
    """One physical (or hypervisor-provided) disk; ``size`` in bytes; ``type`` is mcc-api's vocabulary:
    ``hdd``, ``ssd``, ``odd`` (optical), ``fdd`` (floppy). ``by_paths``/``by_ids`` are /dev/disk links,
    the stable names an operator puts in a playbook."""

    name: str
    size: int
    type: str
    serial_number: str = ""
    vendor: str = ""
    model: str = ""
    by_paths: tuple[str, ...] = ()
    by_ids: tuple[str, ...] = ()
    partitions: tuple[Partition, ...] = ()

    def to_status(self) -> dict[str, Any]:
        first_path = self.by_paths[0] if self.by_paths else ""
        return {
            "serialNumber": self.serial_number,
            "name": self.name,
            "size": self.size,
            "type": self.type,
            "vendor": self.vendor,
            "model": self.model,
            "busPath": first_path.rsplit("/", 1)[-1],  # "pci-0000:00:04.0-scsi-0:0:0:0"
            # byPath and byID are mcc-api's deprecated singulars, still filled for older readers.
            "byPath": first_path,
            "byPaths": list(self.by_paths),
            "byID": self.by_ids[0] if self.by_ids else "",
            "byIDs": list(self.by_ids),
            "partitions": [p.to_status() for p in self.partitions],
        }


@dataclass(frozen=True)
class NetworkInterface:
    """One NIC. ``addresses`` (``address/prefixlen``, kernel order) are for choosing the InternalIP; they
    are not part of hostInfo, which the InternalIP choice reports separately in ``status.addresses``."""

    name: str
    mac: str
    is_virtual: bool = False
    pci_address: str | None = None
    addresses: tuple[str, ...] = field(default=(), compare=False)

    def to_status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "macAddress": self.mac,
            "isVirtual": self.is_virtual,
            "pciAddress": self.pci_address,
        }


@dataclass(frozen=True)
class Hardware:
    """What the machine is built of; disks and NICs ordered by name so re-enumeration is not a change."""

    cpu: Cpu
    memory: Memory
    storage: tuple[Disk, ...] = ()
    network: tuple[NetworkInterface, ...] = ()

    def to_status(self) -> dict[str, Any]:
        return {
            "cpu": self.cpu.to_status(),
            "memory": self.memory.to_status(),
            "storage": {"disks": [d.to_status() for d in self.storage]},
            "network": {"nics": [n.to_status() for n in self.network]},
        }


@dataclass(frozen=True)
class HostFacts:
    """Everything ``status.hostInfo`` carries, plus the routing fact the InternalIP choice needs."""

    boot_time: datetime
    architecture: str
    kernel_version: str
    os: OsInfo
    timezone: str
    hardware: Hardware
    reboot_required: bool = False
    reboot_reason: str = ""
    default_interface: str | None = field(default=None, compare=False)
    """The interface of the default route (IPv4 preferred), for ``choose_internal_ip``; not reported."""

    def to_status(self) -> dict[str, Any]:
        """The camelCase JSON of LCMMachine ``status.hostInfo``."""
        return {
            "bootTime": rfc3339(self.boot_time),
            "architecture": self.architecture,
            "kernelVersion": self.kernel_version,
            "os": self.os.to_status(),
            "timezone": self.timezone,
            "hardware": self.hardware.to_status(),
            "rebootRequired": self.reboot_required,
            "rebootReason": self.reboot_reason,
        }
