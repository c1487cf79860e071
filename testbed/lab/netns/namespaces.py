"""The plumbing of lab nodes: one host bridge, and per node a named network namespace joined to it by a veth,
plus a persistent UTS namespace so each node has its own hostname.

Everything a lab creates carries its ``prefix`` in its name (bridge ``<prefix>-br``, namespaces
``<prefix>-<node>``, host-side veths ``<prefix>-v<index>``), so a lab left behind by a crashed test or demo
is found and removed by name alone. Network namespaces are the ``ip netns`` kind (``/run/netns/<name>``);
processes enter them with ``nsenter --net=``, never ``ip netns exec``, which remounts ``/sys`` and hides the
cgroups dockerd needs.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")
PREFIX_MAX = 10
_PREFIX = re.compile(rf"[a-z][a-z0-9]{{0,{PREFIX_MAX - 1}}}")
_NODE_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?")
DEFAULT_SUBNET = ipaddress.IPv4Network("10.77.0.0/24")
FIRST_HOST = 10
"""Node ``i`` gets the subnet's address ``FIRST_HOST + i``; the gateway (host side) is the first address."""


class LabError(RuntimeError):
    """A lab operation failed; the message says which command and why."""


@dataclass(frozen=True)
class LabNetwork:
    """Names and addresses of one lab: pure, so every part of the lab derives them the same way.

    ``prefix``: lower-case letters and digits, at most 10, so that ``<prefix>-v<index>`` fits the kernel's
    15-character interface names.
    """

    prefix: str = "lcmlab"
    subnet: ipaddress.IPv4Network = DEFAULT_SUBNET

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise LabError(f"lab prefix {self.prefix!r} must be 1-10 lower-case letters/digits, letter first")
        if self.subnet.num_addresses < 16:
            raise LabError(f"lab subnet {self.subnet} is too small (at least a /28)")

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-br"

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The host's address on the bridge: what a node reaches the host side (API simulator) at."""
        return self.subnet.network_address + 1

    def address(self, index: int) -> ipaddress.IPv4Address:
        address = self.subnet.network_address + FIRST_HOST + index
        if address not in self.subnet or address == self.subnet.broadcast_address:
            raise LabError(f"node index {index} does not fit subnet {self.subnet}")
        return address

    def netns(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def netns_path(self, node: str) -> Path:
        return NETNS_DIR / self.netns(node)

    def veth(self, index: int) -> str:
        return f"{self.prefix}-v{index}"


def check_node_name(name: str) -> str:
    """Node names become hostnames and namespace names: DNS labels, at most 32 characters."""
    if not _NODE_NAME.fullmatch(name):
        raise LabError(f"node name {name!r} must be a DNS label (a-z, 0-9, '-'), at most 32 characters")
    return name


def run(*argv: str) -> str:
    """Run a plumbing command; a failure raises LabError with the command and its stderr."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {proc.stderr.strip() or f'exit {proc.returncode}'}")
    return proc.stdout


def _links() -> list[dict[str, object]]:
    found: list[dict[str, object]] = json.loads(run("ip", "-j", "link", "show") or "[]")
    return found


def link_names() -> set[str]:
    return {str(link["ifname"]) for link in _links()}


def subnet_in_use(subnet: ipaddress.IPv4Network, *, except_link: str = "") -> str:
    """The host interface whose addresses overlap ``subnet`` (other than ``except_link``), or ""."""
    for entry in json.loads(run("ip", "-j", "-4", "addr", "show") or "[]"):
        if entry.get("ifname") == except_link:
            continue
        for info in entry.get("addr_info", []):
            network = ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False)
            if network.overlaps(subnet):
                return str(entry["ifname"])
    return ""


def ensure_bridge(net: LabNetwork) -> None:
    """The host bridge with the gateway address, up; refuses a subnet another interface already uses."""
    used_by = subnet_in_use(net.subnet, except_link=net.bridge)
    if used_by:
        raise LabError(f"subnet {net.subnet} is already used by host interface {used_by}; pick another")
    if net.bridge not in link_names():
        run("ip", "link", "add", net.bridge, "type", "bridge")
    gateway = f"{net.gateway}/{net.subnet.prefixlen}"
    if gateway not in run("ip", "-4", "-o", "addr", "show", "dev", net.bridge):
        run("ip", "addr", "add", gateway, "dev", net.bridge)
    run("ip", "link", "set", net.bridge, "up")


def add_node_network(net: LabNetwork, name: str, index: int) -> None:
    """The node's namespace with ``eth0`` on the bridge, its address, and a default route via the host."""
    netns, veth = net.netns(name), net.veth(index)
    if not net.netns_path(name).exists():
        run("ip", "netns", "add", netns)
    if veth not in link_names():
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    run("ip", "link", "set", veth, "master", net.bridge, "up")
    address = f"{net.address(index)}/{net.subnet.prefixlen}"
    if address not in run("ip", "-n", netns, "-4", "-o", "addr", "show", "dev", "eth0"):
        run("ip", "-n", netns, "addr", "add", address, "dev", "eth0")
    run("ip", "-n", netns, "link", "set", "lo", "up")
    run("ip", "-n", netns, "link", "set", "eth0", "up")
    run("ip", "-n", netns, "route", "replace", "default", "via", str(net.gateway))


def create_uts(path: Path, hostname: str) -> None:
    """A persistent UTS namespace bind-mounted on ``path``, its hostname set (kept if it exists)."""
    if is_ns_mount(path):
        return
    path.touch()
    run("unshare", f"--uts={path}", "hostname", hostname)


def is_ns_mount(path: Path) -> bool:
    return str(path) in mount_points()


def mount_points() -> list[str]:
    """Mount points of this mount namespace, in mount order (octal escapes decoded)."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4]
            points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point))
    return points


_UNMOUNT_ROUNDS = 10


def unmount_under(root: Path) -> None:
    """Lazily unmount everything mounted at or below ``root``, deepest first (dockerd's overlay mounts,
    namespace files), again while anything is left: one path may carry stacked mounts (a namespace file
    bound twice), and one ``umount`` takes off only the top one."""
    prefix = str(root).rstrip("/") + "/"
    for _ in range(_UNMOUNT_ROUNDS):
        points = sorted({p for p in mount_points() if p.startswith(prefix)}, key=len, reverse=True)
        if not points:
            return
        for point in points:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    raise LabError(f"still mounted under {root} after {_UNMOUNT_ROUNDS} rounds of umount: "
                   f"{[p for p in mount_points() if p.startswith(prefix)]}")


def namespace_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a namespace file: the identity /proc/<pid>/ns/* compare equal to."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def processes_in(ns_paths: list[Path]) -> list[int]:
    """Pids of every process living in one of the namespaces bound at ``ns_paths`` (net or uts), plus all
    their descendants (container processes run in namespaces of their own)."""
    wanted = {i for i in (namespace_id(p) for p in ns_paths) if i is not None}
    if not wanted:
        return []
    parents: dict[int, int] = {}
    members: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
                stat = f.read()
            parents[pid] = int(stat[stat.rindex(")") + 2 :].split()[1])
            if any(namespace_id(Path(f"/proc/{pid}/ns/{kind}")) in wanted for kind in ("net", "uts")):
                members.add(pid)
        except (OSError, ValueError):
            continue
    changed = True
    while changed:
        extra = {pid for pid, ppid in parents.items() if ppid in members and pid not in members}
        members |= extra
        changed = bool(extra)
    members.discard(os.getpid())
    return sorted(members)


def delete_link(name: str) -> None:
    """Delete a host link; one already gone is fine (teardown is idempotent)."""
    subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)


def delete_netns(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def leftovers(prefix: str) -> tuple[list[str], list[str]]:
    """(namespace names, host links) a lab with ``prefix`` left behind."""
    tag = f"{prefix}-"
    spaces = sorted(p.name for p in NETNS_DIR.glob(f"{tag}*")) if NETNS_DIR.is_dir() else []
    links = sorted(n.split("@")[0] for n in link_names() if n.startswith(tag))
    return spaces, links
