"""The host side of the Vagrant VMs: their network, the release's mirrors, and a NoCloud seed per VM.

``prepare`` makes the isolated libvirt network and storage pool (``testbed.lab.box.libvirt``) and serves the
lab's package mirror on the bridge address: the agent's wheel and dependency index, the apt repository
(``testbed.lab.machines.sets``, the same mirror the nspawn machines install from). ``objects`` are the release
and cluster to load, with ``aptSource`` set to that repository
(``testbed.lab.stack.machines.with_apt_source``).
Once an API holds them,
``seed`` provisions a VM's LCMMachine and access and writes its user-data, rendered by the operators'
renderer, as a NoCloud seed ISO (volume ``cidata``) the Vagrantfile attaches as the VM's CD-ROM: cloud-init
reads it at the VM's first boot, as it would a cloud's seed, and nothing goes over ``vagrant ssh``.

The seed holds the VM's token: it is written 0600 into a directory only root may list (0711: QEMU, which
libvirt runs as its own user and lets own the file while the VM runs, must traverse it), and the staging
copies of user-data are removed at once.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from agent.adapters.kube import Kube, connect
from regional.provisioning import LCMMACHINES
from testbed.kube.objects import documents
from testbed.lab.box import libvirt
from testbed.lab.machines.host import LabError, run
from testbed.lab.machines.sets import MachineSet, MachineSetSettings, RegionalApi
from testbed.lab.stack.machines import with_apt_source
from testbed.lab.stack.stages import Stages

STATE_DIR = Path("/var/lib/lcm-lab/vagrant")
READY = "ready.json"
"""Written by ``lcmctl vagrant serve`` once the seeds are there: the kubeconfig, the namespace, the seeds."""
RUN_STATE = ("sim", "lab", "kubeconfig", READY, "objects.yaml")


@dataclass(frozen=True)
class VagrantSettings:
    state_dir: Path = STATE_DIR
    """Owner-only: the admin kubeconfig, the API's store, logs; ``seeds/`` is traversable for QEMU."""
    namespace: str = "lcm-vagrant"
    cluster: str = "vagrant"
    mirror_port: int = 8080
    debian_mirror: str = ""

    @property
    def seeds(self) -> Path:
        return self.state_dir.parent / "vagrant-seeds"


def seed_path(name: str, settings: VagrantSettings | None = None) -> Path:
    """Where the seed ISO of VM ``name`` is: the Vagrantfile attaches this path."""
    return (settings or VagrantSettings()).seeds / f"{name}.iso"


class VagrantRegional:
    def __init__(self, settings: VagrantSettings) -> None:
        self.settings = settings
        self.machines = MachineSet(MachineSetSettings(
            run_dir=settings.state_dir / "lab", namespace=settings.namespace, cluster=settings.cluster,
            subnet=libvirt.SUBNET, mirror_port=settings.mirror_port, debian_mirror=settings.debian_mirror))
        self._kube: Kube | None = None

    async def prepare(self, stages: Stages) -> str:
        """The network and the mirror on it; the bridge address, where the API is to listen too."""
        s = self.settings
        s.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        s.seeds.mkdir(mode=0o711, parents=True, exist_ok=True)
        s.seeds.chmod(0o711)
        await libvirt.ensure_network(s.state_dir)
        await libvirt.ensure_pool()
        stages.done("isolated libvirt network, storage pool")
        await self.machines.prepare(stages)
        return str(libvirt.SUBNET.gateway)

    def objects(self, paths: Sequence[Path]) -> Path:
        """``paths`` as one file, every ClusterRelease's packages item pointed at the lab's apt repository."""
        dest = self.settings.state_dir / "objects.yaml"
        docs = [with_apt_source(doc, self.machines.apt_source) for doc in documents(paths)]
        dest.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        return dest

    async def connect(self, api: RegionalApi) -> None:
        await self.machines.connect(api)
        self._kube = await connect(kubeconfig=api.kubeconfig)

    async def seed(self, name: str, *, machine_type: str) -> Path:
        """Provision VM ``name`` and write its NoCloud seed ISO; the ISO's path.

        The LCMMachine's ``spec.cidr`` names the VMs' network: an isolated libvirt network hands out no
        default route, and without one (or a cidr) an agent finds no InternalIP and stays Uninitialized.
        """
        user_data = await self.machines.user_data(name, machine_type=machine_type)
        if self._kube is None:
            raise LabError("connect the regional side to an API before seeding VMs")
        await self._kube.patch(LCMMACHINES, self.settings.namespace, name,
                               {"spec": {"cidr": str(libvirt.SUBNET.network)}})
        dest = seed_path(name, self.settings)
        with tempfile.TemporaryDirectory(dir=self.settings.state_dir) as staging:
            root = Path(staging)
            (root / "user-data").write_text(user_data)
            # A new instance-id per seed: cloud-init runs its first-boot modules once per instance.
            (root / "meta-data").write_text(
                f"instance-id: {name}-{secrets.token_hex(4)}\nlocal-hostname: {name}\n")
            tmp = dest.with_suffix(".tmp")
            tmp.unlink(missing_ok=True)
            tmp.touch(mode=0o600)
            await run(["genisoimage", "-quiet", "-output", str(tmp), "-volid", "cidata", "-joliet", "-rock",
                       str(root / "user-data"), str(root / "meta-data")])
            tmp.chmod(0o600)
            tmp.rename(dest)
        return dest

    async def close(self) -> None:
        """Stop the mirror; the network stays until no VM uses it (``remove``)."""
        await self.machines.close()
        if self._kube is not None:
            await self._kube.close()
            self._kube = None


async def remove(settings: VagrantSettings) -> list[str]:
    """The network, the pool with its volumes, the seeds and the state; what was removed. LabError (and
    nothing removed) while a VM still uses the network."""
    removed = [f"libvirt network {libvirt.NETWORK}"] if await libvirt.remove_network() else []
    removed += [f"volume {v}" for v in await libvirt.remove_storage()]
    for seed in sorted(settings.seeds.glob("*.iso")):
        seed.unlink()
        removed.append(f"seed {seed.name}")
    forget_run(settings)
    return removed


def forget_run(settings: VagrantSettings) -> None:
    """The previous run's API store, admin kubeconfig and mirror tree (credentials among them); its logs and
    the VMs' consoles stay for a look."""
    for name in RUN_STATE:
        path = settings.state_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
