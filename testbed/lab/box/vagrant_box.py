"""The libvirt box ``lcm/bookworm``: the VM disk of ``testbed.lab.box.disk``, packed and added to Vagrant.

Built once per set of inputs and cached like the machine image (``/var/cache/lcm-lab/box-<digest>``, a digest
of the image's own key and of the disk's inputs; under a lock, renamed into place only when complete). The box
carries its own ssh key pair, made at the build on this host (no well-known insecure key, nothing fetched):
the box's Vagrantfile names the private key, which stays in the build directory and in Vagrant's copy of the
box, both 0600 in owner-only directories. ``add`` registers the box under ``BOX_NAME`` and replaces a
registered box of another build (the key file inside the box says which build it is).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from testbed.lab.box import BOX_NAME, disk
from testbed.lab.machines.host import LabError, run
from testbed.lab.machines.rootfs import (
    CACHE_ROOT,
    debian_mirror,
    ensure_rootfs,
    host_sources,
    lock_build,
    rootfs_key,
)

log = logging.getLogger(__name__)

BOX_FILE = "lcm-bookworm.box"
CURRENT_LINK = "lcm-bookworm.box"
"""In the cache root: a link to the newest build's box file, the Vagrantfile's ``box_url``. Vagrant decides
whether it holds the box before the ``up`` trigger builds and adds it, so on a host's first ``vagrant up`` it
adds the box from this link instead of asking Vagrant Cloud."""
KEY_FILE = "lcm-box-key"
"""Inside the box: the build's digest, so ``add`` knows whether Vagrant holds this very build."""
PRIVATE_KEY = "vagrant_key"
BOX_VAGRANTFILE = """\
# lcm/bookworm, built by `lcmctl box build` from the lab's machine image: its own ssh key, libvirt defaults.
Vagrant.configure("2") do |config|
  config.ssh.private_key_path = File.expand_path("vagrant_key", __dir__)
  config.ssh.insert_key = false
  config.vm.synced_folder ".", "/vagrant", disabled: true
end
"""
_FORMAT = 1
"""Bump when the packing changes in a way the inputs below do not show."""


def box_key() -> str:
    """A digest of everything the box is made of: the machine image's key and the disk's inputs."""
    inputs = {"format": _FORMAT, "image": rootfs_key(), "packages": list(disk.VM_PACKAGES),
              "modules": list(disk.INITRD_MODULES), "files": disk.FILES, "grub": disk.GRUB_CFG,
              "size": disk.DISK_GIB, "vagrantfile": BOX_VAGRANTFILE}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]


def box_path(cache_root: Path = CACHE_ROOT) -> Path:
    return cache_root / f"box-{box_key()}"


async def ensure_box(cache_root: Path = CACHE_ROOT, *, mirror: str = "") -> Path:
    """The cached box file, built first when there is none (minutes, once)."""
    dest = box_path(cache_root)
    if (dest / BOX_FILE).is_file():
        return _link_current(dest / BOX_FILE, cache_root)
    missing = disk.missing_tools()
    if missing:
        raise LabError("cannot build the Vagrant box on this host; missing: " + "; ".join(missing))
    mirror = mirror or debian_mirror(host_sources())
    image = await ensure_rootfs(cache_root, mirror=mirror)
    lock = await asyncio.to_thread(lock_build, dest)
    try:
        if not (dest / BOX_FILE).is_file():
            await _build(image, dest, mirror)
    finally:
        os.close(lock)
    return _link_current(dest / BOX_FILE, cache_root)


def _link_current(box: Path, cache_root: Path) -> Path:
    """Point ``CURRENT_LINK`` at ``box`` (replaced atomically: a concurrent ``vagrant up`` sees one or the
    other build, never no link)."""
    link = cache_root / CURRENT_LINK
    if not link.is_symlink() or link.readlink() != box:
        tmp = link.with_name(f".{CURRENT_LINK}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(box)
        tmp.replace(link)
    return box


async def _build(image: Path, dest: Path, mirror: str) -> None:
    tmp = dest.with_name(dest.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700, parents=True)
    log.info("building the Vagrant box %s from %s (a few minutes, once)", dest, image)
    try:
        await run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lcm-box",
                   "-f", str(tmp / PRIVATE_KEY)])
        await disk.build_disk(image, tmp / "box.img", mirror=mirror,
                              public_key=(tmp / f"{PRIVATE_KEY}.pub").read_text())
        (tmp / "metadata.json").write_text(json.dumps(
            {"provider": "libvirt", "format": "qcow2", "virtual_size": disk.DISK_GIB}))
        (tmp / "Vagrantfile").write_text(BOX_VAGRANTFILE)
        (tmp / KEY_FILE).write_text(box_key() + "\n")
        await run(["tar", "-cf", str(tmp / BOX_FILE), "-C", str(tmp), "metadata.json", "Vagrantfile",
                   KEY_FILE, PRIVATE_KEY, "box.img"])
        (tmp / "box.img").unlink()  # the box file holds it; half the space
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def vagrant_home() -> Path:
    return Path(os.environ.get("VAGRANT_HOME") or Path.home() / ".vagrant.d")


def added_key(home: Path | None = None) -> str:
    """The build digest of the box Vagrant holds under ``BOX_NAME`` ("" when it holds none)."""
    boxes = (home or vagrant_home()) / "boxes" / BOX_NAME.replace("/", "-VAGRANTSLASH-")
    for found in sorted(boxes.glob(f"*/libvirt/{KEY_FILE}")):
        return found.read_text().strip()
    return ""


async def add(box: Path) -> bool:
    """Register ``box`` as ``BOX_NAME`` unless Vagrant holds this build already; True when it added it."""
    if added_key() == box_key():
        return False
    await run(["vagrant", "box", "add", "--force", "--name", BOX_NAME, str(box)])
    return True
