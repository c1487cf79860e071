"""Host facts for status.hostInfo: read right from the host's files, equal when nothing changed."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from agent.adapters.host import collect_host_info
from agent.api.host_facts import Cpu, Disk, Hardware, HostFacts, Memory, NetworkInterface, OsInfo
from testbed.sim.schema import StructuralSchema

REPO = Path(__file__).resolve().parents[2]
ROUTE_HEADER = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"


def _files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _disk(root: Path, name: str, sectors: int, *, device: str, rotational: str = "0", **attrs: str) -> Path:
    """A /sys/block entry as the kernel lays it out: a link into /sys/devices."""
    real = _files(root, {f"sys/{device}/block/{name}/size": f"{sectors}\n",
                         f"sys/{device}/block/{name}/queue/rotational": rotational + "\n"})
    entry = real / f"sys/{device}/block/{name}"
    _files(entry, attrs)
    (root / "sys/block").mkdir(parents=True, exist_ok=True)
    (root / "sys/block" / name).symlink_to(entry)
    return entry


def _link(root: Path, kind: str, name: str, target: str) -> None:
    (root / "dev/disk" / kind).mkdir(parents=True, exist_ok=True)
    (root / "dev/disk" / kind / name).symlink_to(f"../../{target}")


def test_a_debian_host_is_described_from_its_files(tmp_path: Path) -> None:
    root = _files(tmp_path, {
        "etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
                          'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n',
        "var/run/reboot-required": "*** System restart required ***\n",
        "var/run/reboot-required.pkgs": "linux-image-6.1.0-21-amd64\nlibc6\nlibc6\n",
        "proc/net/route": ROUTE_HEADER
        + "eth1\t00000000\t0102A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n"
        + "eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
        + "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
    })
    (root / "etc/localtime").symlink_to("/usr/share/zoneinfo/Europe/Berlin")
    ata = "devices/pci0000:00/0000:00:1f.2/ata1/host0"
    sda = _disk(root, "sda", 1953525168, device=f"{ata}/target0:0:0/0:0:0:0", rotational="1",
                **{"device/vendor": "ATA     \n", "device/model": "ST1000DM010\n"})
    _files(sda, {"sda1/size": "2048\n", "sda1/partition": "1\n", "holders/x": ""})
    _disk(root, "nvme0n1", 1000215216, device="devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0",
          serial="S4EWNX0N123456\n")
    _disk(root, "sr0", 0, device=f"{ata}/target0:0:1/0:0:1:0")  # a CD drive without a medium
    _disk(root, "loop0", 8192, device="devices/virtual")  # a view of a file, not hardware
    _disk(root, "dm-0", 4096, device="devices/virtual")
    _link(root, "by-path", "pci-0000:00:1f.2-ata-1", "sda")
    _link(root, "by-path", "pci-0000:00:1f.2-ata-1-part1", "sda1")
    _link(root, "by-id", "ata-ST1000DM010_Z9A1", "sda")
    _link(root, "by-id", "wwn-0x5000c500a1b2c3d4", "sda")
    _link(root, "by-label", "data", "sda1")

    info = collect_host_info(root=root)
    status = info.to_status()
    assert status["os"] == {
        "family": "debian", "platform": "debian", "name": "Debian GNU/Linux", "version": "12 (bookworm)",
        "major": 12, "minor": 0, "patch": 0, "build": "", "codename": "bookworm",
    }
    assert status["timezone"] == "Europe/Berlin"
    assert status["rebootRequired"] is True
    assert status["rebootReason"] == "required by packages: linux-image-6.1.0-21-amd64, libc6"
    assert info.default_interface == "eth0"  # lowest metric
    nvme, hdd = status["hardware"]["storage"]["disks"]
    assert hdd == {
        "serialNumber": "", "name": "sda", "size": 1953525168 * 512, "type": "hdd", "vendor": "ATA",
        "model": "ST1000DM010", "busPath": "pci-0000:00:1f.2-ata-1",
        "byPath": "/dev/disk/by-path/pci-0000:00:1f.2-ata-1",
        "byPaths": ["/dev/disk/by-path/pci-0000:00:1f.2-ata-1"],
        "byID": "/dev/disk/by-id/ata-ST1000DM010_Z9A1",
        "byIDs": ["/dev/disk/by-id/ata-ST1000DM010_Z9A1", "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"],
        "partitions": [{
            "name": "sda1", "size": 2048 * 512, "label": "data",
            "byPaths": ["/dev/disk/by-path/pci-0000:00:1f.2-ata-1-part1"], "byIDs": [],
        }],
    }
    assert (nvme["name"], nvme["type"], nvme["serialNumber"], nvme["partitions"]) == (
        "nvme0n1", "ssd", "S4EWNX0N123456", [],
    )


def test_status_has_the_lcmmachine_field_names_and_is_json(tmp_path: Path) -> None:
    status = collect_host_info(root=tmp_path).to_status()
    assert set(status) == {
        "bootTime", "architecture", "kernelVersion", "os", "timezone", "hardware", "rebootRequired",
        "rebootReason",
    }
    assert set(status["hardware"]) == {"cpu", "memory", "storage", "network"}
    assert json.loads(json.dumps(status)) == status
    assert status["architecture"] == platform.machine()
    assert status["kernelVersion"] == platform.release()
    assert status["hardware"]["cpu"]["threads"] == os.cpu_count()
    assert 0 < status["hardware"]["cpu"]["count"] <= status["hardware"]["cpu"]["threads"]
    assert status["hardware"]["memory"]["total"] > 0
    assert datetime.strptime(status["bootTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) < datetime.now(UTC)


def test_this_hosts_facts_pass_the_lcmmachine_crd_schema_unpruned() -> None:
    crd = yaml.safe_load((REPO / "deploy/crds/lcm.mirantis.com_lcmmachines.yaml").read_text())
    [version] = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema = StructuralSchema(version["schema"]["openAPIV3Schema"])
    host_info = collect_host_info().to_status()
    machine = {
        "apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMMachine", "metadata": {"name": "m1"},
        "spec": {}, "status": {"hostInfo": host_info},
    }
    assert schema.validate(machine) == []
    assert schema.default_and_prune(machine)["status"]["hostInfo"] == host_info  # nothing we send is dropped


@pytest.mark.parametrize(
    ("files", "link", "expected"),
    [
        ({}, "../usr/share/zoneinfo/posix/America/New_York", "America/New_York"),
        ({}, "/usr/share/zoneinfo/Etc/UTC", "Etc/UTC"),
        # /etc/localtime copied, not linked: only Debian's /etc/timezone names the zone.
        ({"etc/timezone": "Asia/Tokyo\n", "etc/localtime": "TZif2..."}, None, "Asia/Tokyo"),
        ({}, None, "UTC"),  # no /etc/localtime at all: glibc uses UTC
    ],
)
def test_timezone_is_the_zone_name(
    tmp_path: Path, files: dict[str, str], link: str | None, expected: str,
) -> None:
    root = _files(tmp_path, files)
    if link:
        (root / "etc").mkdir(exist_ok=True)
        (root / "etc/localtime").symlink_to(link)
    assert collect_host_info(root=root).timezone == expected


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"etc/os-release": 'ID=ubuntu\nID_LIKE=debian\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
                            'VERSION="22.04.4 LTS (Jammy Jellyfish)"\nVERSION_CODENAME=jammy\n'},
         OsInfo("debian", "ubuntu", "Ubuntu", "22.04.4 LTS (Jammy Jellyfish)", 22, 4, 0, "", "jammy")),
        ({"etc/os-release": "ID='rocky'\nID_LIKE='rhel centos fedora'\nNAME='Rocky Linux'\nVERSION_ID=9.3\n"},
         OsInfo("redhat", "rocky", "Rocky Linux", "", 9, 3, 0)),
        ({"etc/os-release": "ID=alpine\nNAME='Alpine Linux'\nVERSION_ID=3.19.1\n"},
         OsInfo("alpine", "alpine", "Alpine Linux", "", 3, 19, 1)),
        ({"usr/lib/os-release": "ID=debian\nNAME=Debian\nVERSION_ID=trixie/sid\n"},  # the fallback file
         OsInfo("debian", "debian", "Debian", "", 0, 0, 0)),
        ({"etc/os-release": 'ID=arch\nNAME="unbalanced\nBUILD_ID=rolling\n'},  # a bad line is skipped
         OsInfo("arch", "arch", "", "", 0, 0, 0, "rolling")),
        ({}, OsInfo(name=platform.system())),
    ],
)
def test_os_is_read_from_os_release(tmp_path: Path, files: dict[str, str], expected: OsInfo) -> None:
    assert collect_host_info(root=_files(tmp_path, files)).os == expected


@pytest.mark.parametrize(
    ("files", "required", "reason"),
    [
        ({}, False, ""),
        ({"var/run/reboot-required": "*** System restart required ***\n"}, True, "System restart required"),
        ({"var/run/reboot-required": "", "var/run/reboot-required.pkgs": "\n"}, True, "reboot required"),
        ({"var/run/reboot-required": "", "var/run/reboot-required.pkgs": "dbus\n"}, True,
         "required by packages: dbus"),
    ],
)
def test_reboot_required_and_why(tmp_path: Path, files: dict[str, str], required: bool, reason: str) -> None:
    info = collect_host_info(root=_files(tmp_path, files))
    assert (info.reboot_required, info.reboot_reason) == (required, reason)


V6_DEFAULT = f"{'0' * 32} 00 {'0' * 32} 00 {{gw}} {{metric}} 00000001 00000000 {{flags}} {{dev}}\n"


@pytest.mark.parametrize(
    ("route", "ipv6_route", "expected"),
    [
        (ROUTE_HEADER + "ens3\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n", "", "ens3"),
        # A default route that is down is no default route; IPv6 answers then.
        (ROUTE_HEADER + "ens3\t00000000\t0102A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n",
         V6_DEFAULT.format(gw="fd" + "0" * 29 + "1", metric="00000400", flags="00000003", dev="ens4"),
         "ens4"),
        # The kernel's "unreachable" IPv6 default on lo is not a route out.
        ("", V6_DEFAULT.format(gw="0" * 32, metric="ffffffff", flags="00200200", dev="lo"), None),
        ("", "", None),
    ],
)
def test_default_route_interface(tmp_path: Path, route: str, ipv6_route: str, expected: str | None) -> None:
    root = _files(tmp_path, {"proc/net/route": route, "proc/net/ipv6_route": ipv6_route})
    assert collect_host_info(root=root).default_interface == expected


def _sample(**changes: object) -> HostFacts:
    base = HostFacts(
        boot_time=datetime(2024, 5, 1, tzinfo=UTC), architecture="x86_64", kernel_version="6.1.0",
        os=OsInfo("debian", "debian", "Debian GNU/Linux", "12 (bookworm)", 12), timezone="UTC",
        hardware=Hardware(
            Cpu(4, 8), Memory(8 << 30), (Disk("sda", 1 << 40, "ssd"),),
            (NetworkInterface("eth0", "02:00:00:00:00:01", addresses=("10.0.0.5/24",)),),
        ),
        default_interface="eth0",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_an_unchanged_host_collects_equal_facts() -> None:
    assert collect_host_info() == collect_host_info()


@pytest.mark.parametrize(
    ("changes", "equal"),
    [
        ({}, True),
        ({"default_interface": "eth1"}, True),  # not reported: no hostInfo write
        ({"hardware": Hardware(Cpu(4, 8), Memory(8 << 30), (Disk("sda", 1 << 40, "ssd"),),  # DHCP renewal
                               (NetworkInterface("eth0", "02:00:00:00:00:01", addresses=("10.0.0.9/24",)),))},
         True),
        ({"reboot_required": True, "reboot_reason": "required by packages: libc6"}, False),
        ({"boot_time": datetime(2024, 5, 2, tzinfo=UTC)}, False),
        ({"os": OsInfo("debian", "debian", "Debian GNU/Linux", "13 (trixie)", 13)}, False),
        ({"hardware": Hardware(Cpu(4, 8), Memory(8 << 30), (), ())}, False),  # a disk and a NIC left
    ],
)
def test_host_info_is_equal_exactly_when_its_status_is(changes: dict[str, object], equal: bool) -> None:
    assert (_sample() == _sample(**changes)) is equal
    assert (_sample().to_status() == _sample(**changes).to_status()) is equal


NS = f"lcmt-{os.getpid()}"
COLLECT = textwrap.dedent("""
    import json
    from agent.adapters.host import collect_host_info
    from agent.decisions.addressing import choose_internal_ip
    info = collect_host_info()
    nics = info.hardware.network
    print(json.dumps({
        "nics": info.to_status()["hardware"]["network"]["nics"],
        "addresses": {nic.name: nic.addresses for nic in nics},
        "default": info.default_interface,
        "by_default": choose_internal_ip(nics, None, None, default_interface=info.default_interface),
        "by_cidr": choose_internal_ip(nics, None, "fd00:7::/64", default_interface=info.default_interface),
        "by_name": choose_internal_ip(nics, "lcmt1", None, default_interface=info.default_interface),
    }))
""")


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace with a veth pair and a Docker-like bridge; addresses exist only inside it."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nsenter") is None:
        pytest.skip("needs root with ip and nsenter to build a network namespace")
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        for cmd in (
            "link add lcmt0 address 02:00:0a:e7:07:02 type veth peer name lcmt1 address 02:00:0a:e7:07:01",
            "addr add 10.231.7.2/24 dev lcmt0",
            "addr add fd00:7::2/64 dev lcmt0 nodad",
            "addr add 10.231.7.1/24 dev lcmt1",
            "link add docker0 type bridge",
            "addr add 172.17.0.1/16 dev docker0",
            "link set lcmt0 up",
            "link set lcmt1 up",
            "link set docker0 up",
            "route add default via 10.231.7.1 dev lcmt0",
        ):
            subprocess.run(["ip", "-n", NS, *cmd.split()], check=True)
        yield NS
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=True)


def test_nic_facts_and_internal_ip_inside_a_network_namespace(netns: str) -> None:
    proc = subprocess.run(
        ["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-c", COLLECT],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=60,
    )
    facts = json.loads(proc.stdout)
    assert facts["nics"] == [  # lo and Docker's bridge are not reported
        {"name": "lcmt0", "macAddress": "02:00:0a:e7:07:02", "isVirtual": True, "pciAddress": None},
        {"name": "lcmt1", "macAddress": "02:00:0a:e7:07:01", "isVirtual": True, "pciAddress": None},
    ]
    addresses = facts["addresses"]["lcmt0"]
    assert addresses[:2] == ["10.231.7.2/24", "fd00:7::2/64"]
    assert all(a.startswith("fe80::") for a in addresses[2:])
    assert facts["default"] == "lcmt0"
    assert facts["by_default"] == "10.231.7.2"
    assert facts["by_cidr"] == "fd00:7::2"
    assert facts["by_name"] == "10.231.7.1"
