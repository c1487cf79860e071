"""A bootable VM disk made from the nspawn machines' Debian image, so VMs and machines run the same system.

The cached machine image (``testbed.lab.machines.rootfs``: systemd, cloud-init limited to NoCloud,
python3-venv,
no apt sources, no machine-id) is copied onto one ext4 partition of a raw disk on a loop device; inside it
(``systemd-nspawn``, the host's Debian mirror as for the image itself) apt adds what a VM needs and a
container does not: a kernel with a small initrd (``MODULES=list``: virtio and ext4 only, so it stays small
and boots under QEMU's emulation quickly), OpenSSH and sudo for Vagrant, locales. GRUB comes from the host's
``grub-pc-bin`` (written into the disk's first megabyte as ``grub-install`` would), with a fixed ``grub.cfg``
that boots ``/vmlinuz`` and ``/initrd.img``: Debian's kernel packages keep those links current, so the VM
needs no grub package of its own.
The network is systemd-networkd with DHCP on every Ethernet link (the libvirt network's dnsmasq answers);
cloud-init's own network configuration stays off as in the machines. SSH host keys are not in the disk: every
VM makes its own at its first boot (``ssh-keygen -A`` before sshd).

The result is converted to qcow2 (only the used blocks are stored). Every step needs root and loop devices;
the loop device and the mount are released however the build ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from testbed.lab.machines.host import LabError, run
from testbed.lab.machines.rootfs import AIR_GAPPED_SOURCES, SUITE, in_image

log = logging.getLogger(__name__)

DISK_GIB = 10
"""Virtual size of the disk: the release's preflight asks for 5 GiB, Docker Engine and its images more."""
LABEL = "lcm-root"
VM_PACKAGES = ("linux-image-amd64", "initramfs-tools", "openssh-server", "sudo", "locales")
"""Added to the machine image: what a VM needs beyond a container (kernel, initrd tools, Vagrant's ssh)."""
INITRD_MODULES = ("virtio_pci", "virtio_blk", "virtio_scsi", "virtio_net", "ext4")
TOOLS = {
    "sfdisk": "sfdisk (apt-get install fdisk)",
    "losetup": "losetup (apt-get install mount)",
    "mkfs.ext4": "mkfs.ext4 (apt-get install e2fsprogs)",
    "grub-mkimage": "grub-mkimage (apt-get install grub-pc-bin grub2-common)",
    "qemu-img": "qemu-img (apt-get install qemu-utils)",
    "ssh-keygen": "ssh-keygen (apt-get install openssh-client)",
}

GRUB_MODULES = Path("/usr/lib/grub/i386-pc")
"""The host's grub-pc-bin: the boot sector, the core image's modules, the modules grub.cfg loads."""
GRUB_PREFIX = "/boot/grub"
SECTOR = 512
MBR_CODE = 440
"""Bytes of boot code in the first sector; the disk signature and the partition table follow."""
CORE_LIMIT = (2048 - 1) * SECTOR
"""The gap between the boot sector and the first partition (which starts at sector 2048)."""
GRUB_CFG = f"""\
# lcm box: boots Debian's current kernel through the links its packages maintain.
set timeout=1
insmod part_msdos
insmod ext2
search --no-floppy --label {LABEL} --set=root
linux /vmlinuz root=LABEL={LABEL} ro console=tty0 console=ttyS0,115200n8
initrd /initrd.img
boot
"""
NETWORK = """\
# lcm box: DHCP on every Ethernet link; the libvirt network's dnsmasq answers (no route beyond it).
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
"""
SSH_HOST_KEYS = """\
# lcm box: the disk holds no host keys; each VM makes its own before its first sshd.
[Service]
ExecStartPre=/usr/bin/ssh-keygen -A
"""
FILES = {
    "etc/fstab": f"LABEL={LABEL} / ext4 errors=remount-ro 0 1\n",
    "etc/initramfs-tools/conf.d/lcm-box.conf": "MODULES=list\n",
    "etc/initramfs-tools/modules": "".join(f"{m}\n" for m in INITRD_MODULES),
    "etc/systemd/network/80-lcm-dhcp.network": NETWORK,
    "etc/systemd/system/ssh.service.d/lcm-host-keys.conf": SSH_HOST_KEYS,
    "etc/sudoers.d/vagrant": "vagrant ALL=(ALL) NOPASSWD: ALL\n",
    "etc/locale.gen": "en_US.UTF-8 UTF-8\n",
}
"""Written before the packages are installed, so the kernel's postinst builds the small initrd at once."""
PUBLIC_KEY = "etc/lcm-box-vagrant.pub"
_VAGRANT_USER = f"""set -e
locale-gen
systemctl enable systemd-networkd.service
useradd -m -s /bin/bash vagrant
install -d -m 0700 -o vagrant -g vagrant /home/vagrant/.ssh
install -m 0600 -o vagrant -g vagrant /{PUBLIC_KEY} /home/vagrant/.ssh/authorized_keys
rm /{PUBLIC_KEY}
"""
"""Inside the disk after the packages: locales, networkd on, the vagrant user with the box's key."""


def missing_tools() -> list[str]:
    """What the host lacks to build the disk, each with its package."""
    return [hint for tool, hint in TOOLS.items() if shutil.which(tool) is None]


async def build_disk(image: Path, dest: Path, *, mirror: str, public_key: str) -> None:
    """The qcow2 disk ``dest`` from the machine image ``image``, with ``public_key`` for the vagrant user."""
    work = dest.with_name(dest.name + ".raw")
    work.unlink(missing_ok=True)
    try:
        await run(["truncate", "-s", f"{DISK_GIB}G", str(work)])
        await run(["sfdisk", "--quiet", str(work)], stdin=b"label: dos\nstart=2048, type=83, bootable\n")
        mountpoint = dest.with_name(dest.name + ".root")
        async with _attached(work) as device, _mounted(f"{device}p1", mountpoint) as root:
            await run(["cp", "-a", f"{image}/.", str(root)])
            _prepare(root, public_key, mirror)
            await in_image(root, ["apt-get", "update", "-q"])
            await in_image(root, ["apt-get", "install", "-y", "-q", "--no-install-recommends", *VM_PACKAGES])
            await in_image(root, ["sh", "-c", _VAGRANT_USER])
            await in_image(root, ["apt-get", "clean"])
            _make_generic(root)
            shutil.copytree(GRUB_MODULES, root / "boot/grub/i386-pc", dirs_exist_ok=True)
            (root / "boot/grub/grub.cfg").write_text(GRUB_CFG)
        await _install_grub(work, dest.with_name("core.img"))
        await run(["qemu-img", "convert", "-O", "qcow2", str(work), str(dest)])
    finally:
        work.unlink(missing_ok=True)


async def _install_grub(disk: Path, core: Path) -> None:
    """GRUB's boot sector and core image written straight into ``disk``'s first megabyte.

    ``grub-install`` cannot map a loop device's partition to a BIOS drive without udev, so this does what it
    would: a core image that finds its modules on the first partition (``grub-mkimage -p``), the boot
    sector's code (its first 440 bytes: the partition table stays) and the core image from sector 1, where
    both images' default block lists point (GRUB's boot.S and diskboot.S).
    """
    await run(["grub-mkimage", "-O", "i386-pc", "-o", str(core), "-p", f"(hd0,msdos1){GRUB_PREFIX}",
               "biosdisk", "part_msdos", "ext2"])
    _write_boot_code(disk, core)


def _write_boot_code(disk: Path, core: Path) -> None:
    try:
        image = core.read_bytes()
        if len(image) > CORE_LIMIT:
            raise LabError(f"GRUB's core image ({len(image)} bytes) does not fit before the first partition")
        with disk.open("r+b") as out:
            out.write((GRUB_MODULES / "boot.img").read_bytes()[:MBR_CODE])
            out.seek(SECTOR)
            out.write(image)
    finally:
        core.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def _attached(path: Path) -> AsyncIterator[str]:
    """``path`` on a loop device with its partitions scanned; the device node."""
    _, out = await run(["losetup", "--find", "--show", "--partscan", str(path)])
    device = out.strip().splitlines()[0]
    try:
        # Where the kernel's own scan makes no partition node (no udev, as in containers), partx does.
        if not os.path.exists(f"{device}p1"):  # noqa: ASYNC240 - a device node, no I/O
            await run(["partx", "--add", device])
        await run(["mkfs.ext4", "-q", "-L", LABEL, f"{device}p1"])
        yield device
    finally:
        await run(["partx", "--delete", device], check=False)
        await run(["losetup", "-d", device], check=False)


@contextlib.asynccontextmanager
async def _mounted(device: str, where: Path) -> AsyncIterator[Path]:
    await run(["mkdir", "-p", str(where)])
    await run(["mount", device, str(where)])
    try:
        yield where
    finally:
        await run(["umount", str(where)], check=False)
        await run(["rmdir", str(where)], check=False)


def _prepare(root: Path, public_key: str, mirror: str) -> None:
    """The box's files, the vagrant user's key, and for the build only the Debian mirror as apt source."""
    (root / "etc/apt/sources.list").write_text(f"deb {mirror} {SUITE} main\n")
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "etc/sudoers.d/vagrant").chmod(0o440)
    (root / PUBLIC_KEY).write_text(public_key.strip() + "\n")


def _make_generic(root: Path) -> None:
    """No host keys, package lists or machine identity in the disk (as the machine image)."""
    for leftover in [*(root / "etc/ssh").glob("ssh_host_*"), *(root / "var/lib/apt/lists").glob("*_*"),
                     root / "etc/hostname"]:
        leftover.unlink(missing_ok=True)
    (root / "etc/machine-id").write_text("")
    (root / "etc/apt/sources.list").write_text(AIR_GAPPED_SOURCES)
    if not (root / "vmlinuz").exists() or not (root / "initrd.img").exists():
        raise LabError(f"the kernel's /vmlinuz and /initrd.img links are missing in {root}: the kernel "
                       "package did not install")
