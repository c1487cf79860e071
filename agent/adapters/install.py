"""The on-disk half of the agent's self-upgrade: one virtualenv per version, and a ``current`` symlink.

    <root>/versions/<version>/     a complete virtualenv of that agent version
    <root>/current -> versions/<version>
                                   systemd runs <root>/current/bin/lcm-agent run

A new version is built by cloning the running virtualenv and installing the verified wheel into the clone
with ``pip install --no-index --no-deps``: the one file the spec names and checksums is all that is needed,
so it works air-gapped, and every dependency is exactly the one the running agent already proved. (A fresh
venv plus ``pip install --find-links`` would need every dependency's wheel on the node, none of them covered
by the spec's checksum.) A virtualenv is tied to its path, so the clone is built where it will live, and the
running venv's path is rewritten to the new one in ``bin/`` (console-script shebangs, activate scripts) and
``pyvenv.cfg``; pip then writes the new agent's own scripts for the new path.

Nothing is switched until the new tree proves itself: ``bin/lcm-agent --version`` must print the requested
version (which also imports the daemon and its dependencies). A build that fails is removed. The switch is a
symlink made under a temporary name and renamed over ``current``: a reader (systemd starting the agent)
sees the old target or the new one, never none. A marker file records the sha256 of the wheel a version
directory was built from, so an operator's rollback to a kept version needs no download and no rebuild.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.adapters.atomic import fsync_dir, write_atomic
from agent.adapters.runners.supervision import communicate_within

MARKER = ".lcm-agent-wheel-sha256"
"""In a version directory: the sha256 of the wheel it was built from, written after its smoke test."""
PIP_TIMEOUT = 600.0
"""Seconds pip may take to install one wheel (no network, so only a sick disk gets near it)."""
SMOKE_TIMEOUT = 120.0
"""Seconds ``lcm-agent --version`` may take in a new tree (cold imports, pyc writes)."""
_OUTPUT_TAIL = 2000


class InstallError(Exception):
    """The new version could not be installed or activated; the active install is untouched."""


@dataclass(frozen=True)
class Layout:
    """Where the agent's versions live; ``root`` is ``/opt/lcm-agent`` on a node."""

    root: Path

    @property
    def versions(self) -> Path:
        return self.root / "versions"

    @property
    def current(self) -> Path:
        return self.root / "current"

    def version_dir(self, version: str) -> Path:
        return self.versions / version

    def active(self) -> Path | None:
        """The version directory ``current`` points at; None when there is no ``current`` link."""
        if not self.current.is_symlink():
            return None
        return self.current.resolve()


def installed(layout: Layout, version: str, sha256: str) -> bool:
    """``version`` was built, and smoke-tested, from the wheel with this digest: reusable as it is."""
    marker = layout.version_dir(version) / MARKER
    try:
        return marker.read_text().strip() == sha256 and (marker.parent / "bin" / "lcm-agent").is_file()
    except OSError:
        return False


async def build(layout: Layout, version: str, wheel: Path, sha256: str, *, source: Path) -> Path:
    """Build and smoke-test ``versions/<version>`` from ``wheel``, cloning the venv at ``source``."""
    dest = _buildable(layout, version, source)
    try:
        await asyncio.to_thread(_clone, source, dest)
        pip = [str(dest / "bin" / "python"), "-m", "pip", "install", "--isolated", "--no-index", "--no-deps",
               "--force-reinstall", "--no-cache-dir", "--disable-pip-version-check", "--no-input", str(wheel)]
        code, output = await _run(pip, dest, PIP_TIMEOUT)
        if code != 0:
            raise InstallError(f"pip could not install {wheel.name} (exit code {code}): {output}")
        await smoke_test(dest, version)
        write_atomic(dest / MARKER, f"{sha256}\n".encode(), 0o644)
    except BaseException:
        # Also on cancellation: a half-built tree must not look like a version to the next attempt.
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


async def smoke_test(tree: Path, version: str) -> None:
    """The tree's agent starts, imports its daemon and says it is ``version``; raises InstallError."""
    code, output = await _run([str(tree / "bin" / "lcm-agent"), "--version"], tree, SMOKE_TIMEOUT)
    if code != 0 or output.strip() != f"lcm-agent {version}":
        raise InstallError(f"smoke test failed: {tree}/bin/lcm-agent --version gave exit code {code} and "
                           f"{output.strip()!r}, expected 'lcm-agent {version}'")


def activate(layout: Layout, version: str) -> Path | None:
    """Point ``current`` at ``versions/<version>`` atomically; returns the previous target, if any."""
    if layout.current.exists() and not layout.current.is_symlink():
        raise InstallError(f"{layout.current} is not a symlink; refusing to replace it")
    previous = layout.active()
    tmp = layout.root / f".current.{secrets.token_hex(4)}.tmp"
    # Relative, so the install root can be moved or mounted elsewhere (an image build, a chroot).
    os.symlink(Path("versions") / version, tmp)
    try:
        os.replace(tmp, layout.current)
    except OSError as exc:
        tmp.unlink()
        raise InstallError(f"cannot switch {layout.current}: {exc}") from exc
    fsync_dir(layout.root)
    return previous


def prune(layout: Layout, keep: Iterable[Path]) -> list[Path]:
    """Remove version directories other than ``keep``; returns what was removed."""
    kept = {p.resolve() for p in keep}
    removed = []
    for entry in sorted(layout.versions.iterdir()):
        if entry.is_dir() and not entry.is_symlink() and entry.resolve() not in kept:
            shutil.rmtree(entry)
            removed.append(entry)
    return removed


def _buildable(layout: Layout, version: str, source: Path) -> Path:
    """The directory to build ``version`` in; never the tree systemd starts or the one running now."""
    dest = layout.version_dir(version)
    if dest.resolve() in {p for p in (layout.active(), source.resolve()) if p is not None}:
        raise InstallError(f"{dest} is the active or the running install; it is not rebuilt in place")
    return dest


def _clone(source: Path, dest: Path) -> None:
    """Copy the venv at ``source`` to ``dest`` and make it refer to ``dest``.

    Byte-code caches are not copied: they record the old path as the source file name, which would send
    every traceback of the new agent to a directory that pruning later deletes.
    """
    if dest.exists():
        shutil.rmtree(dest)  # a build interrupted by a crash; never a tree in use (checked by the caller)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    old = re.compile(re.escape(os.fsencode(source)) + rb"(?=[/'\"\s]|$)", re.MULTILINE)
    for path in [*sorted((dest / "bin").iterdir()), dest / "pyvenv.cfg"]:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" not in data[:4096]:  # text: scripts and config, not a compiled program
            rewritten = old.sub(os.fsencode(dest).replace(b"\\", b"\\\\"), data)
            if rewritten != data:
                path.write_bytes(rewritten)


async def _run(argv: Sequence[str], cwd: Path, limit: float) -> tuple[int, str]:
    """Exit code and the tail of stdout+stderr; the process group is killed on timeout or cancellation."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = await communicate_within(proc, None, limit)
    except TimeoutError:
        raise InstallError(f"{Path(argv[0]).name} timed out after {limit:.0f}s") from None
    return proc.returncode or 0, (out or b"").decode(errors="replace")[-_OUTPUT_TAIL:]
