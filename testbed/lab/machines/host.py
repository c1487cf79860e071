"""What the nspawn machines need from the host, and the one way the lab runs host commands.

Machines need root (namespaces, mounts, veths), ``systemd-nspawn`` (systemd-container), ``debootstrap``,
``ip`` (iproute2), ``nsenter`` (util-linux) and overlayfs. ``missing_prerequisites`` names each thing that is
absent in words an operator can act on, so the CLI and the test fixture say exactly what to install instead
of failing half-way through a boot.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from agent.adapters.runners.supervision import communicate_within

COMMAND_TIMEOUT = 900.0
"""Seconds a host command may take: the slowest is debootstrap on a cold cache (about two minutes)."""

_TOOLS = {
    "systemd-nspawn": "systemd-nspawn (apt-get install systemd-container)",
    "debootstrap": "debootstrap (apt-get install debootstrap)",
    "ip": "ip (apt-get install iproute2)",
    "nsenter": "nsenter (apt-get install util-linux)",
    "dpkg-scanpackages": "dpkg-scanpackages (apt-get install dpkg-dev), to index the machines' apt mirror",
}


class LabError(Exception):
    """A lab step failed; the message says which and why (the command's own error included)."""


def missing_prerequisites(*, tools: Sequence[str] = tuple(_TOOLS)) -> list[str]:
    """What this host lacks to run machines; empty when nothing is missing."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (machines need namespaces, mounts and network devices)")
    missing += [_TOOLS.get(tool, tool) for tool in tools if shutil.which(tool) is None]
    if not _has_overlayfs():
        missing.append("overlayfs in the kernel (modprobe overlay): each machine is an overlay of one rootfs")
    return missing


def _has_overlayfs() -> bool:
    try:
        lines = Path("/proc/filesystems").read_text().splitlines()
    except OSError:
        return False
    return any(line.split()[-1] == "overlay" for line in lines if line.strip())


async def run(
    argv: Sequence[str], *, limit: float = COMMAND_TIMEOUT, env: Mapping[str, str] | None = None,
    check: bool = True, stdin: bytes | None = None,
) -> tuple[int, str]:
    """Exit code and output (stdout then stderr) of a host command; LabError on failure when ``check``.

    The command runs in its own process group, killed on timeout or cancellation, so an interrupted boot
    or build never leaves a debootstrap or an apt behind.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv, env={**os.environ, **(env or {})}, start_new_session=True,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await communicate_within(proc, stdin, limit)
    except TimeoutError:
        raise LabError(f"{' '.join(argv[:3])} … timed out after {limit:.0f}s") from None
    code = proc.returncode or 0
    text = (out or b"").decode(errors="replace") + (err or b"").decode(errors="replace")
    if check and code != 0:
        raise LabError(f"{' '.join(argv)} failed with exit code {code}: {text.strip()[-2000:]}")
    return code, text
