"""A lab: N network-namespace nodes on one host bridge, each with its own dockerd, set up and torn down as a
unit (by the ``lab_nodes`` test fixture and by ``lcmctl nodes up|down|ls``).

Every lab registers itself in ``/run/lcmlab/<prefix>.json`` (naming prefix, subnet, state directory, nodes),
so another process, or the same command after a crash, finds it again. Teardown does not rely on that record
alone: it kills every process living in a namespace named after the prefix (dockerd, its containerd and
shims, an agent started there, and their descendants), unmounts everything under the state directory,
deletes namespaces and links by prefix, and removes the directory. It is idempotent, and ``teardown`` of a
half-built lab is the same call.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import itertools
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from testbed.lab import processes
from testbed.lab.netns import dockerd
from testbed.lab.netns import namespaces as netns
from testbed.lab.netns.namespaces import LabError, LabNetwork
from testbed.lab.netns.node import NODE_FILE, LabNode

REGISTRY = Path("/run/lcmlab")
REQUIRED_TOOLS = ("dockerd", "ip", "nsenter", "unshare", "setsid")
AUTO_SUBNETS = ipaddress.IPv4Network("10.77.0.0/16")
"""Where a lab looks for a free /24 when none is given."""
_KILL_WAIT = 10.0
_KILL_ROUNDS = 10


def missing_requirements() -> str:
    """Why lab nodes cannot run here ("" when they can): they need root and a few host tools."""
    if os.geteuid() != 0:
        return "lab nodes need root (network namespaces, dockerd)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    return f"lab nodes need {', '.join(missing)} on PATH" if missing else ""


_labs_made = itertools.count()


def session_prefix(stem: str = "lt") -> str:
    """A naming prefix no other lab of this process or another uses: ``<stem><pid><letter>`` (tests)."""
    return f"{stem}{os.getpid()}{chr(ord('a') + next(_labs_made) % 26)}"[: netns.PREFIX_MAX]


def free_subnet(pool: ipaddress.IPv4Network = AUTO_SUBNETS) -> ipaddress.IPv4Network:
    """The first /24 of ``pool`` that no host interface and no registered lab uses."""
    taken = {record.get("subnet") for record in registered()}
    for candidate in pool.subnets(new_prefix=24):
        if str(candidate) not in taken and not netns.subnet_in_use(candidate):
            return candidate
    raise LabError(f"no free /24 left in {pool}")


def registered() -> list[dict[str, object]]:
    """The records of every lab registered on this host."""
    records = []
    for path in sorted(REGISTRY.glob("*.json")) if REGISTRY.is_dir() else []:
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return records


@dataclass
class Lab:
    """A set of running lab nodes; ``nodes`` in creation order."""

    net: LabNetwork
    state_dir: Path
    nodes: list[LabNode] = field(default_factory=list)

    def node(self, name: str) -> LabNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no lab node {name!r} (have: {', '.join(n.name for n in self.nodes)})")

    def __getitem__(self, name: str) -> LabNode:
        return self.node(name)

    def add(self, names: Sequence[str]) -> list[LabNode]:
        """Create nodes and start their dockerds (in parallel); returns the new nodes."""
        taken = {n.name for n in self.nodes}
        for name in names:
            netns.check_node_name(name)
            if name in taken:
                raise LabError(f"lab node {name!r} exists already")
            taken.add(name)
        first = max((n.index for n in self.nodes), default=0) + 1
        created = [LabNode.plan(self.net, self.state_dir, name, first + i) for i, name in enumerate(names)]
        netns.ensure_bridge(self.net)
        for node in created:
            _create(self.net, node)
            self.nodes.append(node)
        self._register()
        with ThreadPoolExecutor(max_workers=max(1, len(created))) as pool:
            list(pool.map(dockerd.start, created))
        return created

    def down(self) -> None:
        teardown(self.net.prefix, self.state_dir)

    def _register(self) -> None:
        REGISTRY.mkdir(mode=0o700, exist_ok=True)
        record = {"prefix": self.net.prefix, "subnet": str(self.net.subnet), "state_dir": str(self.state_dir),
                  "nodes": [n.name for n in self.nodes]}
        path = registry_path(self.net.prefix)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, prefix: str) -> Lab:
        """The registered lab ``prefix``, with the nodes whose directories still exist."""
        try:
            record = json.loads(registry_path(prefix).read_text(encoding="utf-8"))
        except OSError as exc:
            raise LabError(f"no lab {prefix!r} registered on this host") from exc
        net = LabNetwork(prefix, ipaddress.IPv4Network(record["subnet"]))
        state_dir = Path(record["state_dir"])
        nodes = [LabNode.load(state_dir / n) for n in record["nodes"] if (state_dir / n).is_dir()]
        return cls(net, state_dir, nodes)


@contextlib.contextmanager
def _registry_lock() -> Iterator[None]:
    REGISTRY.mkdir(mode=0o700, exist_ok=True)
    with open(REGISTRY / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def registry_path(prefix: str) -> Path:
    return REGISTRY / f"{prefix}.json"


def _create(net: LabNetwork, node: LabNode) -> None:
    node.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The directories a Debian /etc always has and the release's playbooks write into (apt sources).
    (node.etc_dir / "apt" / "sources.list.d").mkdir(parents=True, exist_ok=True)
    if not node.config_path.exists():
        node.config_path.write_text(json.dumps(dockerd.seed_config(node), indent=2) + "\n", encoding="utf-8")
    netns.add_node_network(net, node.name, node.index)
    netns.create_uts(node.uts_path, node.name)
    node.write_scripts()
    node.save()


def up(names: Sequence[str], *, prefix: str = "lcmlab", subnet: ipaddress.IPv4Network | None = None,
       state_dir: Path | None = None) -> Lab:
    """A new lab with ``names`` running; a failure half-way tears down what was built and re-raises.

    ``state_dir`` defaults to a fresh directory under /tmp: unix socket paths (containerd's among them) must
    stay under 108 bytes, which deep test directories break.
    """
    directory = state_dir or Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp"))
    with _registry_lock():  # two sessions starting labs at once must not pick the same subnet
        if registry_path(prefix).exists() or netns.leftovers(prefix) != ([], []):
            raise LabError(f"a lab with prefix {prefix!r} exists; `lcmctl nodes down --prefix {prefix}`")
        lab = Lab(LabNetwork(prefix, subnet or free_subnet()), directory)
        lab._register()
    try:
        lab.add(names)
    except BaseException:
        lab.down()
        raise
    return lab


@contextlib.contextmanager
def running(names: Sequence[str], *, prefix: str = "lcmlab", subnet: ipaddress.IPv4Network | None = None,
            state_dir: Path | None = None) -> Iterator[Lab]:
    """``up`` for the length of a ``with`` block, torn down however it ends."""
    lab = up(names, prefix=prefix, subnet=subnet, state_dir=state_dir)
    try:
        yield lab
    finally:
        lab.down()


def teardown(prefix: str, state_dir: Path | None = None) -> list[str]:
    """Remove every trace of lab ``prefix`` (see the module docstring); returns what was removed."""
    record_path = registry_path(prefix)
    if state_dir is None and record_path.exists():
        state_dir = Path(json.loads(record_path.read_text(encoding="utf-8"))["state_dir"])
    if state_dir is None:
        state_dir = _find_state_dir(prefix)
    spaces, links = netns.leftovers(prefix)
    ns_files = [netns.NETNS_DIR / s for s in spaces]
    if state_dir is not None and state_dir.is_dir():
        ns_files += [p for p in state_dir.glob("*/uts") if netns.is_ns_mount(p)]
    removed = _kill_all_in(ns_files)
    if state_dir is not None:
        netns.unmount_under(state_dir)
    for link in links:  # a veth's peer in the namespace goes with it
        netns.delete_link(link)
        removed.append(f"link {link}")
    for space in spaces:
        netns.delete_netns(space)
        removed.append(f"netns {space}")
    if state_dir is not None and state_dir.is_dir():
        removed += _remove_node_dirs(state_dir)
    record_path.unlink(missing_ok=True)
    return removed


def _remove_node_dirs(state_dir: Path) -> list[str]:
    """The node directories (those with a ``node.json``), then the state directory if that left it empty:
    a ``--state-dir`` given by hand may hold other things, which are not the lab's to delete."""
    removed = []
    for child in state_dir.iterdir():
        if (child / NODE_FILE).is_file():
            shutil.rmtree(child, ignore_errors=True)
            removed.append(f"dir {child}")
    with contextlib.suppress(OSError):
        state_dir.rmdir()
        removed.append(f"dir {state_dir}")
    return removed


def _find_state_dir(prefix: str) -> Path | None:
    """Without the lab's record: the directory of a node whose UTS namespace is still mounted and whose
    ``node.json`` names a namespace of this prefix."""
    for point in netns.mount_points():
        path = Path(point)
        if path.name != "uts":
            continue
        try:
            node = LabNode.load(path.parent)
        except (OSError, ValueError, KeyError):
            continue
        if node.netns_path.name.startswith(f"{prefix}-"):
            return path.parent.parent
    return None


def _kill_all_in(ns_files: list[Path]) -> list[str]:
    """Kill until the namespaces are empty: a process forked while its parent was being killed (dockerd
    re-executing itself to create a sandbox's namespace) is not in the first scan, and would go on to mount
    under the state directory after the unmount."""
    removed: list[str] = []
    for _ in range(_KILL_ROUNDS):
        pids = netns.processes_in(ns_files)
        if not pids:
            return removed
        removed += _kill(pids)
    raise LabError(f"processes keep appearing in the lab's namespaces after {_KILL_ROUNDS} rounds of SIGKILL")


def _kill(pids: Iterable[int]) -> list[str]:
    """SIGKILL and wait until gone: nothing of a torn-down lab may keep running or hold a mount."""
    targets = list(pids)
    for target in targets:
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + _KILL_WAIT
    alive = targets
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if processes.alive(p)]
        time.sleep(0.05)
    if alive:
        raise LabError(f"lab processes survived SIGKILL: {alive}")
    return [f"process {p}" for p in targets]


