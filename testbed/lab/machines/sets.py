"""Machines as a provider would bring them up against one regional API.

``MachineSet.prepare`` readies what every machine shares: the cached image, the bridge, and the package mirror
on the bridge (the agent's wheel and dependency index, the apt repository with Docker Engine). ``connect``
attaches the regional API (any cluster: the CLI and the tests run the project's simulator on the bridge
address). ``add`` provisions one machine (LCMMachine, ServiceAccount, Role, token), renders its user-data
with the same renderer operators use, and boots it; from there cloud-init and systemd do the rest, and
``wait_registered`` watches the API for the agent's first report. When a machine does not get there,
``diagnose`` says why from inside it: the machine is down, cloud-init failed, or the agent's own last error
(e.g. the API refusing its token), so a failed boot reads as a cause, not a timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from agent.adapters.kube import Kube, KubeError, connect
from agent.decisions.cloudinit import UNIT_FILE, AgentBuild, MachineUserData, render_user_data
from regional.provisioning import LCMMACHINES, ensure_namespace, provision
from testbed.lab.machines.diagnosis import agent_unit_summary, cloud_init_summary, last_agent_error
from testbed.lab.machines.host import LabError, missing_prerequisites
from testbed.lab.machines.machine import STATE_ROOT, Machine, known_machines
from testbed.lab.machines.network import Subnet, ensure_bridge, remove_bridge
from testbed.lab.machines.rootfs import (
    CACHE_ROOT,
    debian_mirror,
    ensure_rootfs,
    host_sources,
    rootfs_path,
    usable,
)
from testbed.lab.mirrors.apt import PACKAGES, ensure_apt_repo, sources_line
from testbed.lab.mirrors.pypi import build_index
from testbed.lab.mirrors.server import MirrorServer
from testbed.lab.mirrors.tree import build_tree
from testbed.lab.stack.stages import Stages

log = logging.getLogger(__name__)

REGISTER_TIMEOUT = 300.0
"""Seconds from boot to the agent's first status report: cloud-init installs some 50 wheels first."""


class LabUnavailableError(LabError):
    """This host cannot run machines; the message lists what is missing."""


@dataclass(frozen=True)
class RegionalApi:
    """The API the machines register with: the URL and CA they use, the admin kubeconfig the lab uses."""

    server: str
    ca_pem: str
    kubeconfig: Path

    @classmethod
    def from_kubeconfig(cls, path: Path) -> RegionalApi:
        """Server and CA of the kubeconfig's current context: the machines reach the API where it does."""
        doc = yaml.safe_load(path.read_text())
        context = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])["context"]
        cluster = next(c for c in doc["clusters"] if c["name"] == context["cluster"])["cluster"]
        ca, ca_file = cluster.get("certificate-authority-data"), cluster.get("certificate-authority")
        ca_pem = base64.b64decode(ca).decode() if ca else Path(ca_file).read_text() if ca_file else ""
        return cls(server=cluster["server"], ca_pem=ca_pem, kubeconfig=path)


@dataclass(frozen=True)
class MqttAccess:
    """A machine's broker account, for its user-data: the URL, its user name and password (a secret)."""

    url: str
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class MachineSetSettings:
    run_dir: Path
    """This run's files: the mirror's document root (agent wheel, index, apt repository)."""
    namespace: str = "lcm-lab"
    cluster: str = "lab"
    subnet: Subnet = field(default_factory=Subnet)
    machines_root: Path = STATE_ROOT
    cache_root: Path = CACHE_ROOT
    apt_packages: tuple[str, ...] = PACKAGES
    mirror_port: int = 0
    """Port of the package mirror on the bridge; 0 picks a free one."""
    debian_mirror: str = ""
    """Where the image and the apt repository are built from; "" takes the host's apt configuration."""
    unit_file: Path = UNIT_FILE


def check_host() -> None:
    """LabUnavailableError naming everything this host lacks to run machines."""
    missing = missing_prerequisites()
    if missing:
        raise LabUnavailableError("cannot run nspawn machines on this host; missing: " + "; ".join(missing))


class MachineSet:
    def __init__(self, settings: MachineSetSettings) -> None:
        self.settings = settings
        self.machines: dict[str, Machine] = {}
        self._mirror: MirrorServer | None = None
        self._image: Path | None = None
        self._agent: AgentBuild | None = None
        self._kube: Kube | None = None
        self._api: RegionalApi | None = None
        self._booted: dict[str, float] = {}
        """``time.monotonic()`` of each machine's boot: registration times are logged from it."""

    async def prepare(self, stages: Stages | None = None) -> None:
        """Image, bridge and mirror; the first run builds the image (minutes), later runs reuse it. Each
        of the two is a stage in ``stages``."""
        check_host()
        s = self.settings
        stages = stages or Stages()
        mirror = s.debian_mirror or debian_mirror(host_sources())
        cached = usable(rootfs_path(s.cache_root))
        self._image = await ensure_rootfs(s.cache_root, mirror=mirror)
        stages.done("image", "cached" if cached else f"built from {mirror}")
        await ensure_bridge(s.subnet)
        www = s.run_dir / "www"
        wheel = await build_index(www / "pypi", s.cache_root)
        repo = await ensure_apt_repo(self._image, s.cache_root, mirror=mirror, packages=s.apt_packages)
        (www / "apt").unlink(missing_ok=True)
        (www / "apt").symlink_to(repo)
        self._mirror = MirrorServer(www, str(s.subnet.gateway), s.mirror_port).start()
        self._agent = AgentBuild(url=f"{self._mirror.url}/pypi/files/{wheel.path.name}", sha256=wheel.sha256,
                                 index_url=f"{self._mirror.url}/pypi/simple/")
        tree = await build_tree(www / "pypi", wheel, self._agent.version, self._image, s.cache_root)
        link = www / "trees" / tree.path.name
        link.parent.mkdir(exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(tree.path)
        self._agent = replace(self._agent, tree_url=f"{self._mirror.url}/trees/{tree.path.name}",
                              tree_sha256=tree.sha256)
        stages.done("bridge and package mirror")

    @property
    def agent(self) -> AgentBuild:
        """The agent build machines install: the release's downloadURL, sha256 and index, in the lab, and
        the tree built from them (testbed.lab.mirrors.tree)."""
        if self._agent is None:
            raise LabError("the fleet is not prepared")
        return self._agent

    @property
    def apt_source(self) -> str:
        """The sources.list line of the lab's apt repository (Docker Engine): the release's mirror param."""
        if self._mirror is None:
            raise LabError("the fleet is not prepared")
        return sources_line(f"{self._mirror.url}/apt")

    async def connect(self, api: RegionalApi, *, create_namespace: bool = True) -> None:
        """Use ``api`` from now on; ``create_namespace=False`` only reads (``lcmctl machines ls``)."""
        self._api = api
        self._kube = await connect(kubeconfig=api.kubeconfig)
        if create_namespace:
            await ensure_namespace(self._kube, self.settings.namespace)

    async def add(
        self, name: str, *, machine_type: str = "worker", token: str | None = None,
        mqtt: MqttAccess | None = None, from_wheel: bool = False,
    ) -> Machine:
        """Provision and boot one machine; ``token`` replaces the issued one (to show a bad credential);
        ``mqtt`` gives the agent its broker account; ``from_wheel`` has it install the agent from the wheel
        and the index instead of the tree, as at a site that publishes none."""
        user_data = await self.user_data(name, machine_type=machine_type, token=token, mqtt=mqtt,
                                         from_wheel=from_wheel)
        return await self.boot(name, user_data)

    async def boot(self, name: str, user_data: str) -> Machine:
        """Boot a machine on the fleet's image with ``user_data`` as its cloud-init document: an LCM node's
        (``add``) or any other (the boot benchmark's floor does the same work by plain commands)."""
        image = self._image
        if image is None:
            raise LabError("prepare the fleet before booting machines")
        s = self.settings
        machine = Machine(name, s.machines_root)
        await machine.create(image, self._free_address(name), s.subnet, user_data=user_data)
        machine.boot()
        self._booted[name] = time.monotonic()
        self.machines[name] = machine
        log.info("machine %s booting at %s", name, machine.record.address if machine.record else "?")
        return machine

    @property
    def booted(self) -> dict[str, float]:
        """``time.monotonic()`` of each machine's boot (the host's clock is the machines' too)."""
        return dict(self._booted)

    async def user_data(
        self, name: str, *, machine_type: str = "worker", token: str | None = None,
        mqtt: MqttAccess | None = None, from_wheel: bool = False,
    ) -> str:
        """Provision one machine (LCMMachine, ServiceAccount, Role, token) and render its user-data, the
        document any provider hands to cloud-init (nspawn seed, VM seed ISO); as ``add``'s arguments."""
        kube, api = self._kube, self._api
        if kube is None or api is None or self._agent is None:
            raise LabError("prepare the fleet and connect it to an API before provisioning machines")
        s = self.settings
        issued = await provision(kube, s.namespace, name, cluster=s.cluster, machine_type=machine_type)
        agent = replace(self.agent, tree_url="", tree_sha256="") if from_wheel else self.agent
        return render_user_data(MachineUserData(
            machine=name, namespace=s.namespace, api_server=api.server, token=token or issued,
            ca_pem=api.ca_pem, agent=agent, unit=s.unit_file.read_text(),
            mqtt_url=mqtt.url if mqtt else "", mqtt_username=mqtt.username if mqtt else "",
            mqtt_password=mqtt.password if mqtt else ""))

    def _free_address(self, name: str) -> ipaddress.IPv4Address:
        """The lowest address no other machine (of any run) holds."""
        taken = {m.record.address for m in known_machines(self.settings.machines_root)
                 if m.record is not None and m.name != name}
        slot = 0
        while str(self.settings.subnet.address(slot)) in taken:
            slot += 1
        return self.settings.subnet.address(slot)

    async def lcm_machine(self, name: str) -> dict[str, Any] | None:
        if self._kube is None:
            raise LabError("the fleet is not connected to an API")
        try:
            return await self._kube.get(LCMMACHINES, self.settings.namespace, name)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def wait_registered(self, names: Sequence[str], within: float = REGISTER_TIMEOUT) -> dict[str, Any]:
        """The LCMMachines once each reports an InternalIP; LabError with each laggard's diagnosis if not."""
        deadline = time.monotonic() + within
        done: dict[str, Any] = {}
        while time.monotonic() < deadline and len(done) < len(names):
            for name in names:
                obj = await self.lcm_machine(name)
                if name not in done and obj is not None and registered(obj):
                    done[name] = obj
                    if name in self._booted:
                        log.info("machine %s registered %.1fs after its boot", name,
                                 time.monotonic() - self._booted[name])
            await asyncio.sleep(1.0)
        missing = [n for n in names if n not in done]
        if missing:
            reasons = [await self.diagnose(n) for n in missing]
            raise LabError(f"not registered within {within:.0f}s:\n" + "\n".join(reasons))
        return done

    async def diagnose(self, name: str) -> str:
        """One line saying where the machine is stuck, from the API's and the machine's points of view."""
        obj = await self.lcm_machine(name)
        return await diagnose(Machine(name, self.settings.machines_root), obj)

    async def close(self) -> None:
        """Destroy the machines this fleet booted and stop its mirror."""
        # Concurrently: each machine's clean poweroff takes seconds.
        await asyncio.gather(*(machine.destroy() for machine in self.machines.values()))
        self.machines.clear()
        if self._mirror is not None:
            self._mirror.stop()
            self._mirror = None
        if self._kube is not None:
            await self._kube.close()
            self._kube = None


def registered(obj: dict[str, Any]) -> bool:
    """The agent reported an InternalIP, which takes the machine out of Uninitialized."""
    addresses = (obj.get("status") or {}).get("addresses") or []
    return any(a.get("type") == "InternalIP" and a.get("address") for a in addresses)


async def diagnose(machine: Machine, obj: dict[str, Any] | None) -> str:
    """``<name>: <state>; <what the machine says>`` for an operator deciding what to fix."""
    state = "no LCMMachine" if obj is None else (obj.get("status") or {}).get("state") or "Uninitialized"
    if machine.leader() is None:
        return f"{machine.name}: {state}; the machine is not running (console: {machine.console})"
    _, status = await machine.exec(["cloud-init", "status", "--long"], check=False)
    _, active = await machine.exec(["systemctl", "is-active", "lcm-agent.service"], check=False)
    parts = [f"{machine.name}: {state}", cloud_init_summary(status), agent_unit_summary(active)]
    with contextlib.suppress(LabError):
        error = last_agent_error(await machine.journal())
        if error:
            parts.append(f"the agent's last error: {error}")
    return "; ".join(parts)


async def destroy_all(subnet: Subnet, machines_root: Path = STATE_ROOT) -> list[str]:
    """Every machine found on disk or by its network namespace, then the bridge; returns their names."""
    machines = known_machines(machines_root)
    await asyncio.gather(*(machine.destroy() for machine in machines))
    await remove_bridge(subnet)
    return [machine.name for machine in machines]


async def release_bridge(subnet: Subnet, machines_root: Path = STATE_ROOT) -> None:
    """Remove the bridge (and its forwarding rule) unless machines of another run still use it."""
    if not known_machines(machines_root):
        await remove_bridge(subnet)
