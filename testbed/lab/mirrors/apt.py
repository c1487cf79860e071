"""A flat apt repository with exactly the packages the machines need beyond their image (Docker Engine).

apt itself decides what is missing: ``apt-get install --download-only`` runs inside the machine image (a
throw-away ``--volatile=overlay`` boot of it, sources pointing at the host's Debian mirror), so the
repository holds the packages' full dependency closure relative to what the machines already have, no more.
``dpkg-scanpackages`` indexes the result. Machines then use it as their only source:

    deb [trusted=yes] http://<bridge>:<port>/apt ./

``trusted=yes`` because the lab does not sign its index; the packages are Debian's own. The repository is
cached per image and package list: it is the same for every run until one of them changes, and checked
before use (every package its index lists is there), so a damaged cache is built again rather than served.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from testbed.lab.machines.host import run
from testbed.lab.machines.rootfs import SUITE, in_overlay

log = logging.getLogger(__name__)

PACKAGES = ("docker.io", "curl", "python3-apt")
"""What the release's playbooks install on a machine beyond the image; apt adds the dependencies
(containerd, runc, iptables, …): ``docker.io`` (prepare/docker-engine), ``curl`` (prepare/packages' base
packages; ca-certificates is in the image, iptables comes with docker.io) and ``python3-apt``, which
Ansible's apt module needs and installs by itself from the same source before its first install."""


def sources_line(url: str) -> str:
    """The apt source a machine needs for the repository served at ``url`` (``.../apt``)."""
    return f"deb [trusted=yes] {url} ./"


async def ensure_apt_repo(
    image: Path, cache_root: Path, *, mirror: str, packages: Sequence[str] = PACKAGES,
) -> Path:
    """The cached repository for ``image`` and ``packages``, downloaded and indexed first if needed."""
    key = hashlib.sha256("\n".join([image.name, *sorted(packages)]).encode()).hexdigest()[:12]
    dest = cache_root / f"apt-{key}"
    if complete(dest):
        return dest
    tmp = dest.with_name(dest.name + ".building")
    _fresh(tmp)
    script = (f"echo {shlex.quote(f'deb {mirror} {SUITE} main')} > /etc/apt/sources.list"
              " && apt-get update -q"
              " && apt-get install -y -q --download-only --no-install-recommends"
              f" -o Dir::Cache::archives=/repo {' '.join(map(shlex.quote, packages))}")
    await in_overlay(image, ["sh", "-c", script], binds=[f"--bind={tmp}:/repo"])
    # Relative file names in the index (./docker.io_….deb): the repository can be served from anywhere.
    await run(["sh", "-c", 'cd "$1" && dpkg-scanpackages --multiversion . /dev/null > Packages.new', "sh",
               str(tmp)])
    _finish(tmp, dest)
    return dest


def complete(repo: Path) -> bool:
    """The index exists and every package it lists is beside it."""
    index = repo / "Packages"
    if not index.is_file():
        return False
    names = re.findall(r"^Filename: (.+)$", index.read_text(errors="replace"), re.MULTILINE)
    lacking = [name for name in names if not (repo / name).is_file()]
    if lacking or not names:
        log.warning("the cached apt repository %s lacks %s; building it again", repo,
                    ", ".join(lacking[:3]) or "every package")
    return bool(names) and not lacking


def _fresh(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def _finish(tmp: Path, dest: Path) -> None:
    shutil.rmtree(tmp / "partial", ignore_errors=True)
    (tmp / "lock").unlink(missing_ok=True)
    (tmp / "Packages.new").rename(tmp / "Packages")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
