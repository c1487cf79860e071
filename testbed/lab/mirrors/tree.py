"""The agent as a built tree: ``versions/<version>`` installed once, archived, unpacked by every machine.

A machine that installs the agent from its wheel and the index resolves, unpacks and byte-compiles some
forty wheels (about 9 s of CPU each, three machines sharing two cores in the lab); that was the largest
part of its time from boot to registered. The tree is that same install made once, inside the machines'
own image (their Python, their architecture, the install path ``/opt/lcm-agent/versions/<version>`` the
venv's scripts name), by the very commands a machine without a tree runs (``venv_commands``), then packed
as ``lcm_agent-<version>-py<python>-<arch>.tar.gz`` with its sha256, beside the index that built it.

It is built in a throw-away overlay of the image (``--volatile=overlay``) from the index on disk (file://
URLs, no network), and cached by what decides its bytes: the digests of the index's wheels (hatchling
builds the same agent wheel from the same sources) and the image. A build runs under a lock and is renamed
into place when complete, so concurrent test runs share one and a crash leaves none half-made.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import platform
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from agent.decisions.cloudinit import INSTALL_ROOT, AgentBuild, venv_commands
from testbed.lab.machines.host import run
from testbed.lab.machines.rootfs import in_overlay, lock_build
from testbed.lab.mirrors.pypi import MACHINE_PYTHON, AgentWheel, sha256_of

_INDEX = "/run/lcm-index"
"""Where the build sees the index's directory (read-only)."""


@dataclass(frozen=True)
class AgentTree:
    path: Path
    sha256: str


async def build_tree(
    index: Path, wheel: AgentWheel, version: str, image: Path, cache_root: Path,
) -> AgentTree:
    """The archive of ``versions/<version>`` installed from ``index`` (``build_index``'s ``dest``)."""
    name = f"lcm_agent-{version}-py{MACHINE_PYTHON.replace('.', '')}-{platform.machine()}.tar.gz"
    wheels = sorted(f"{w.name} {sha256_of(w)}" for w in (index / "files").glob("*.whl"))
    key = hashlib.sha256("\n".join([image.name, *wheels]).encode()).hexdigest()[:12]
    cached = cache_root / f"agent-tree-{key}" / name
    lock = await asyncio.to_thread(lock_build, cached.parent)
    try:
        if not cached.is_file():
            await _build(index, wheel, version, image, cached)
    finally:
        os.close(lock)
    return AgentTree(cached, sha256_of(cached))


async def _build(index: Path, wheel: AgentWheel, version: str, image: Path, dest: Path) -> None:
    work = dest.parent.with_name(dest.parent.name + ".building")
    shutil.rmtree(work, ignore_errors=True)
    (work / "versions").mkdir(parents=True)
    agent = AgentBuild(url=f"file://{_INDEX}/files/{wheel.path.name}", sha256=wheel.sha256,
                       index_url=f"file://{_INDEX}/simple/")
    commands = venv_commands(agent, f"{INSTALL_ROOT}/versions/{version}")
    script = " && ".join(shlex.join(argv) for argv in commands)
    await in_overlay(image, ["sh", "-ec", script], binds=[
        f"--bind-ro={index}:{_INDEX}", f"--bind={work / 'versions'}:{INSTALL_ROOT}/versions"])
    packed = work / dest.name
    await run(["tar", "-czf", str(packed), "-C", str(work / "versions"), "--owner=0", "--group=0", version])
    shutil.rmtree(work / "versions")
    shutil.rmtree(dest.parent, ignore_errors=True)
    work.rename(dest.parent)
