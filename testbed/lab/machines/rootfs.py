"""The machines' root filesystem: Debian with systemd and cloud-init, built once and cached.

``debootstrap`` installs a minimal base with systemd; the rest comes from ``apt-get`` run inside it (through
``systemd-nspawn`` sharing the host's network), because debootstrap's own resolver does not handle virtual
packages (cloud-init's python3-cryptography needs python3-cffi-backend-api-*). The image is then made what a
cloud image is: no apt sources (the machines are air-gapped; the release's mirror is configured by its
playbooks), no package lists, no machine-id or host name of its own, and cloud-init limited to the NoCloud
seed. The cache key is a digest of everything that goes into the image, so a change to the package list or
the lab files builds a new image next to the old one; a build runs under a lock and is renamed into place
only when complete, so concurrent test runs share one build and a crash never leaves a half image in use.
A cached image is checked before use (its marker and the files a boot needs); a damaged one is built again.

The Debian archive both the image and the machines' apt repository (``testbed.lab.mirrors.apt``) come from is
the host's own: the ``deb`` source for the suite in /etc/apt/sources.list(.d), which is what an air-gapped
site points at its mirror. ``--apt-mirror URL`` (``FleetSettings.debian_mirror``) names another one. There
is no built-in archive address: a host with neither gets an error saying so.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from testbed.lab.machines.host import LabError, run

log = logging.getLogger(__name__)

CACHE_ROOT = Path("/var/cache/lcm-lab")
SUITE = "bookworm"
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "ca-certificates")
"""Installed by debootstrap: enough for apt to run inside and for the image to boot."""
PACKAGES = ("cloud-init", "python3-venv", "python3-apt", "iproute2", "netbase", "libudev1", "procps")
"""Installed by apt inside the image: cloud-init and what the user-data and the agent use (venv for the
install without a built tree, python3-apt for Ansible's apt module, libudev for pyudev, iproute2 for
operators). Like a cloud vendor's image: without python3-apt the module installs it first, an index refresh
and an install more in every machine's prepare."""
COMPLETE = ".lcm-lab-complete"
AIR_GAPPED_SOURCES = "# air-gapped: the release's playbooks configure its mirror\n"

CLOUD_CFG = """\
# lcm-lab: settings of the nspawn machines themselves, not part of any machine's user-data.
# Only the NoCloud seed in /var/lib/cloud/seed/nocloud/ (written by the lab before boot) is looked for.
datasource_list: [NoCloud, None]
# The host configures the machine's network namespace before boot, as a hypervisor's DHCP would.
network: {config: disabled}
# The minimal image generates no locales; leave the C.UTF-8 default alone.
locale: false
"""
CGROUPS_UNIT = """\
# lcm-lab: Docker in an nspawn machine on a host with cgroup v1 controllers. nspawn mounts them read-only,
# which lets dockerd start but not create a container's cgroup; a VM has its own kernel and never needs this.
[Unit]
Description=lcm-lab: writable cgroup v1 controllers for Docker inside this nspawn machine
DefaultDependencies=no
Before=containerd.service docker.service
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'findmnt -rn -t cgroup -o TARGET,OPTIONS | while read -r target options; do \
case ",$options," in *,ro,*) umount "$target" && \
mount -t cgroup -o "$(basename "$target")" cgroup "$target";; esac; done'

[Install]
WantedBy=multi-user.target
"""
BOOT_FILES = ("usr/lib/systemd/systemd", "usr/bin/cloud-init", "usr/bin/python3", "usr/bin/apt-get")
"""What a cached image must hold to be used: systemd to boot, cloud-init and Python for the agent, apt."""
_LAB_FILES = {
    "etc/cloud/cloud.cfg.d/90-lcm-lab.cfg": CLOUD_CFG,
    "etc/systemd/system/lcm-lab-cgroups.service": CGROUPS_UNIT,
}
_FORMAT = 1
"""Bump when the build steps change in a way the inputs below do not show."""


def rootfs_key(
    suite: str = SUITE, base: Iterable[str] = BASE_PACKAGES, packages: Iterable[str] = PACKAGES,
) -> str:
    """A digest of everything the image is made of: the cache directory's name."""
    inputs = {"format": _FORMAT, "suite": suite, "base": sorted(base), "packages": sorted(packages),
              "files": _LAB_FILES}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]


class NoMirrorError(LabError):
    """The host's apt configuration has no Debian source for the suite and none was named."""


def debian_mirror(sources: Iterable[str], suite: str = SUITE) -> str:
    """The host's Debian mirror for ``suite`` (one-line ``deb`` lists or deb822 ``.sources`` texts), so
    debootstrap uses the mirror or proxy apt is already configured with; NoMirrorError when none is."""
    for text in sources:
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.+)$", stanza, re.MULTILINE))
            if "deb" in fields.get("Types", "").split() and suite in fields.get("Suites", "").split() \
                    and fields.get("URIs", "").split():
                return str(fields["URIs"].split()[0])
        for line in text.splitlines():
            words = re.sub(r"\[[^]]*\]", "", line).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1]
    raise NoMirrorError(
        f"no apt source for Debian {suite} in {' or '.join(map(str, APT_SOURCES))}: the machine image and "
        f"its package mirror are built from the host's Debian mirror; add a 'deb' source for {suite} there, "
        "or name a mirror with --apt-mirror URL")


def host_sources(places: Iterable[Path] = APT_SOURCES) -> list[str]:
    """The texts of the host's apt source files."""
    paths = [p for place in places for p in ([place] if place.is_file() else sorted(place.glob("*")))]
    return [p.read_text(errors="replace") for p in paths if p.is_file() and p.suffix in (".list", ".sources")]


def rootfs_path(cache_root: Path = CACHE_ROOT) -> Path:
    """Where the image of this code's inputs is cached."""
    return cache_root / f"rootfs-{rootfs_key()}"


async def ensure_rootfs(cache_root: Path = CACHE_ROOT, *, mirror: str | None = None) -> Path:
    """The cached image, built first if there is none yet (about two minutes); shared by every machine."""
    dest = rootfs_path(cache_root)
    if usable(dest):
        return dest
    lock = await asyncio.to_thread(lock_build, dest)
    try:
        if not usable(dest):  # another process may have built it while we waited
            await _build(dest, mirror or debian_mirror(host_sources()))
    finally:
        os.close(lock)
    return dest


def usable(image: Path) -> bool:
    """Built to the end (its marker) and still holding what a boot needs; a damaged image says why."""
    if not (image / COMPLETE).exists():
        return False
    lacking = [name for name in BOOT_FILES if not (image / name).exists()]
    if lacking:
        log.warning("the cached machine image %s lacks %s; building it again", image, ", ".join(lacking))
    return not lacking


def lock_build(image: Path) -> int:
    """An exclusive lock on building ``image`` (the machine image, the Vagrant box), held until the descriptor
    is closed."""
    image.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(image.with_name(image.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


async def _build(dest: Path, mirror: str) -> None:
    tmp = dest.with_name(dest.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("building the machine image %s from %s (a few minutes, once)", dest, mirror)
    try:
        await run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE,
                   str(tmp), mirror])
        await in_image(tmp, ["apt-get", "update", "-q"])
        await in_image(tmp, ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES])
        await in_image(tmp, ["apt-get", "clean"])
        _make_generic(tmp)
        _install(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


async def in_image(root: Path, argv: list[str]) -> None:
    """A command inside the image being built, with the host's network (apt reaches the mirror)."""
    await run(["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", str(root), *argv],
              env={"DEBIAN_FRONTEND": "noninteractive", "SYSTEMD_LOG_LEVEL": "err"})


def _install(tmp: Path, dest: Path) -> None:
    (tmp / COMPLETE).write_text(f"{SUITE} {' '.join(PACKAGES)}\n")
    shutil.rmtree(dest, ignore_errors=True)  # an image left incomplete by a crash (no marker)
    tmp.rename(dest)


def _make_generic(root: Path) -> None:
    """What a cloud image is: no sources, no lists, no identity; plus the lab's two files."""
    for name, text in _LAB_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "lcm-lab-cgroups.service").symlink_to("/etc/systemd/system/lcm-lab-cgroups.service")
    (root / "etc/apt/sources.list").write_text(AIR_GAPPED_SOURCES)
    for leftover in [root / "usr/sbin/policy-rc.d", root / "etc/hostname",
                     *(root / "var/lib/apt/lists").glob("*_*")]:
        leftover.unlink(missing_ok=True)
    (root / "etc/machine-id").write_text("")  # each machine's systemd makes its own at first boot


async def cloud_init_schema(image: Path, user_data: Path) -> tuple[int, str]:
    """``cloud-init schema`` of the machines' own cloud-init on a user-data file: exit code and report."""
    return await in_overlay(image, ["cloud-init", "schema", "--config-file", "/run/user-data"],
                            binds=[f"--bind-ro={user_data}:/run/user-data"], check=False)


async def in_overlay(
    image: Path, argv: Sequence[str], *, binds: Sequence[str] = (), check: bool = True,
) -> tuple[int, str]:
    """A command in a throw-away overlay of ``image`` (``--volatile=overlay``), with the host's network and
    ``binds`` (nspawn's ``--bind``/``--bind-ro`` options): the cached image is left untouched."""
    return await run(["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--volatile=overlay",
                      *binds, "-D", str(image), *argv],
                     env={"DEBIAN_FRONTEND": "noninteractive", "SYSTEMD_LOG_LEVEL": "err"}, check=check)
