"""Collecting host facts for ``status.hostInfo``: psutil and platform first, /proc, /sys and /etc for the
rest (disks and their /dev/disk names, NICs' PCI addresses, the default route, the OS, the timezone, a
pending reboot).

Blocking by design (it reads a few dozen small files): the daemon calls ``collect_host_info`` in a thread.
``root`` relocates the file reads so tests can present any host; psutil always reports the real one.

Interfaces Docker creates per container or network (``veth*``, ``docker*``, ``br-*``) are left out: they
come and go with every container, would make hostInfo change (and be rewritten) all day, and must never be
chosen as the InternalIP.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import re
import shlex
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from agent.api.host_facts import Cpu, Disk, Hardware, HostFacts, Memory, NetworkInterface, OsInfo, Partition
from agent.api.telemetry import HostLoad

CONTAINER_NIC_PREFIXES = ("veth", "docker", "br-")
# Distributions by the family go-sysinfo files them under; others report their first ID_LIKE.
_FAMILIES = {
    "debian": "debian", "ubuntu": "debian", "rhel": "redhat", "centos": "redhat", "fedora": "redhat",
    "suse": "suse", "sles": "suse", "opensuse": "suse",
}
_PCI = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")
_RTF_UP = 0x0001
_RTF_REJECT = 0x0200


def collect_host_info(*, root: Path = Path("/")) -> HostFacts:
    """The host's facts now; two calls on an unchanged host return equal values."""
    reboot_required, reboot_reason = _reboot(root / "var/run")
    return HostFacts(
        boot_time=datetime.fromtimestamp(int(psutil.boot_time()), UTC),
        architecture=platform.machine(),
        kernel_version=platform.release(),
        os=_os_info(root),
        timezone=_timezone(root / "etc"),
        hardware=Hardware(
            cpu=_cpu(),
            memory=Memory(total=psutil.virtual_memory().total),
            storage=_storage(root),
            network=_network(root),
        ),
        reboot_required=reboot_required,
        reboot_reason=reboot_reason,
        default_interface=_default_interface(root / "proc/net"),
    )


def _read(path: Path) -> str:
    """The file's text, or "" when it is absent or unreadable: a missing fact is not an error."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _os_info(root: Path) -> OsInfo:
    """go-sysinfo's reading of os-release (the file systemd documents; /usr/lib/os-release its fallback)."""
    fields = _os_release(_read(root / "etc/os-release")) or _os_release(_read(root / "usr/lib/os-release"))
    if not fields:
        return OsInfo(name=platform.system())
    platform_id = fields.get("ID", "")
    like = fields.get("ID_LIKE", "").split()
    family = next((_FAMILIES[c] for c in [platform_id, *like] if c in _FAMILIES), (like or [platform_id])[0])
    numbers = [int(n) if n.isdigit() else 0 for n in fields.get("VERSION_ID", "").split(".")[:3]]
    major, minor, patch = [*numbers, 0, 0, 0][:3]
    return OsInfo(
        family=family, platform=platform_id, name=fields.get("NAME", ""), version=fields.get("VERSION", ""),
        major=major, minor=minor, patch=patch, build=fields.get("BUILD_ID", ""),
        codename=fields.get("VERSION_CODENAME", ""),
    )


def _os_release(text: str) -> dict[str, str]:
    """``KEY=value`` lines with shell quoting; a line that does not parse is skipped."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or key.lstrip().startswith("#"):
            continue
        try:
            fields[key.strip()] = " ".join(shlex.split(value))
        except ValueError:
            continue
    return fields


def _timezone(etc: Path) -> str:
    """The zone name ("Europe/Berlin"): /etc/localtime's link target, else /etc/timezone (Debian)."""
    try:
        target = os.readlink(etc / "localtime")
    except FileNotFoundError:
        return "UTC"  # glibc's behaviour without /etc/localtime
    except OSError:
        target = ""  # a copied file, not a link: the name is only in /etc/timezone, if anywhere
    if "zoneinfo/" in target:
        zone = target.split("zoneinfo/", 1)[1]
        return zone.removeprefix("posix/").removeprefix("right/")
    return _read(etc / "timezone").strip() or time.strftime("%Z")


def _cpu() -> Cpu:
    threads = psutil.cpu_count(logical=True) or 1
    return Cpu(count=psutil.cpu_count(logical=False) or threads, threads=threads)


def _storage(root: Path) -> tuple[Disk, ...]:
    """Every disk with a size, with its partitions; virtual block devices (loop, dm, md, zram, ram) are
    views of other disks, not hardware, and are left out (the kernel files them under devices/virtual)."""
    links = {kind: _disk_links(root / "dev/disk" / kind) for kind in ("by-path", "by-id", "by-label")}
    disks = []
    for entry in _entries(root / "sys/block"):
        size = _sectors(entry) * 512
        if size == 0 or "/devices/virtual/" in os.path.realpath(entry):
            continue
        partitions = tuple(
            Partition(
                name=part.name, size=_sectors(part) * 512,
                label=next((link.rsplit("/", 1)[-1] for link in links["by-label"].get(part.name, ())), ""),
                by_paths=links["by-path"].get(part.name, ()), by_ids=links["by-id"].get(part.name, ()),
            )
            for part in _entries(entry) if (part / "partition").exists()
        )
        disks.append(Disk(
            name=entry.name, size=size, type=_disk_type(entry),
            serial_number=(_read(entry / "serial") or _read(entry / "device/serial")).strip(),
            vendor=_read(entry / "device/vendor").strip(), model=_read(entry / "device/model").strip(),
            by_paths=links["by-path"].get(entry.name, ()), by_ids=links["by-id"].get(entry.name, ()),
            partitions=partitions,
        ))
    return tuple(disks)


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.iterdir()) if directory.is_dir() else []


def _sectors(entry: Path) -> int:
    """/sys reports sizes in 512-byte sectors, whatever the device's own sector size."""
    text = _read(entry / "size").strip()
    return int(text) if text.isdigit() else 0


def _disk_type(entry: Path) -> str:
    if entry.name.startswith("sr"):
        return "odd"
    if entry.name.startswith("fd"):
        return "fdd"
    return "hdd" if _read(entry / "queue/rotational").strip() == "1" else "ssd"


def _disk_links(directory: Path) -> dict[str, tuple[str, ...]]:
    """``device name → its /dev/disk/<kind>/ links``, as the host names them."""
    found: dict[str, list[str]] = {}
    for link in _entries(directory):
        found.setdefault(os.path.basename(os.path.realpath(link)), []).append(
            f"/dev/disk/{directory.name}/{link.name}",
        )
    return {name: tuple(paths) for name, paths in found.items()}


def _network(root: Path) -> tuple[NetworkInterface, ...]:
    nics = []
    for name, addrs in sorted(psutil.net_if_addrs().items()):
        if name.startswith(CONTAINER_NIC_PREFIXES) or name == "lo":
            continue
        sys_device = root / "sys/class/net" / name / "device"
        v4 = [_with_prefix(a.address, a.netmask) for a in addrs if a.family == socket.AF_INET]
        v6 = [_with_prefix(a.address, a.netmask) for a in addrs if a.family == socket.AF_INET6]
        nics.append(NetworkInterface(
            name=name, mac=next((a.address for a in addrs if a.family == psutil.AF_LINK), ""),
            is_virtual=not sys_device.exists(), pci_address=_pci_address(sys_device),
            addresses=tuple(v4 + v6),
        ))
    return tuple(nics)


def _pci_address(sys_device: Path) -> str | None:
    """The PCI function behind a NIC ("0000:00:03.0"); virtio NICs sit one level below theirs."""
    if not sys_device.exists():
        return None
    parts = Path(os.path.realpath(sys_device)).parts
    return next((part for part in reversed(parts) if _PCI.fullmatch(part)), None)


def _with_prefix(address: str, netmask: str | None) -> str:
    """``10.0.0.5/24`` from psutil's address and netmask; the ``%eth0`` scope suffix is dropped (the
    interface name says the same)."""
    address = address.split("%", 1)[0]
    if not netmask:
        return address
    return f"{address}/{bin(int(ipaddress.ip_address(netmask))).count('1')}"


def _default_interface(proc_net: Path) -> str | None:
    """The interface of the lowest-metric default route: IPv4 if there is one, else IPv6."""
    v4 = []
    for line in _read(proc_net / "route").splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 8 and cols[1] == "00000000" and cols[7] == "00000000" and _is_up(cols[3]):
            v4.append((int(cols[6]), cols[0]))
    if v4:
        return min(v4)[1]
    v6 = []
    for line in _read(proc_net / "ipv6_route").splitlines():
        cols = line.split()
        default = len(cols) == 10 and int(cols[0], 16) == 0 and cols[1] == "00"
        if default and _is_up(cols[8]) and cols[9] != "lo":
            v6.append((int(cols[5], 16), cols[9]))
    return min(v6)[1] if v6 else None


def _is_up(flags: str) -> bool:
    """A usable route: up, and not an "unreachable"/"prohibit" placeholder."""
    value = int(flags, 16)
    return bool(value & _RTF_UP) and not value & _RTF_REJECT


def _reboot(run: Path) -> tuple[bool, str]:
    """Debian/Ubuntu's convention: /run/reboot-required exists, and .pkgs names the packages that want it."""
    flag = run / "reboot-required"
    if not flag.exists():
        return False, ""
    lines = _read(run / "reboot-required.pkgs").splitlines()
    packages = list(dict.fromkeys(p.strip() for p in lines if p.strip()))
    if packages:
        return True, "required by packages: " + ", ".join(packages)
    return True, _read(flag).strip(" *\n") or "reboot required"


def read_host_load(disk_path: Path) -> HostLoad:
    """What a heartbeat says about the host: load averages, memory, the filesystem of ``disk_path`` (the
    agent's state dir: where items and Docker need room) and the uptime. Cheap (three small /proc reads and
    a statvfs), unlike ``collect_host_info``."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(disk_path))
    return HostLoad(
        load=psutil.getloadavg(), memory_total=memory.total, memory_available=memory.available,
        disk_path=str(disk_path), disk_total=disk.total, disk_free=disk.free,
        uptime=max(0.0, time.time() - psutil.boot_time()),
    )
