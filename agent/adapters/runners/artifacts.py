"""Per-item, per-attempt artifact directories: ``work_dir/artifacts/<item>/<attempt>``, private and rotated.

Artifacts are what an operator reads after a failure (the full log, Ansible's job events), so the last few
attempts of each item are kept; older ones are removed so a flapping item cannot fill the disk, and an item
that leaves the spec takes its directory with it, so item churn cannot either. Everything
is owner-only (dirs 0700, files 0600): logs of a node's provisioning are nobody else's business.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Collection
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def directory_name(item: str) -> str:
    """A file-system-safe, collision-free directory name for an item name taken from the spec.

    Plain names stay readable; anything else (``/``, ``..``, spaces, very long) becomes a sanitised prefix
    plus a digest of the original, so two different items never share a directory.
    """
    if _SAFE.fullmatch(item):
        return item
    digest = hashlib.sha256(item.encode()).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", item).lstrip(".")[:60]
    return f"{readable}-{digest}" if readable else digest


def _ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    path.chmod(DIR_MODE)


def prepare(work_dir: Path, item: str, attempt: int, *, keep: int) -> Path:
    """Create a fresh, empty directory for this attempt and drop all but the ``keep`` newest attempts.

    A leftover directory of the same attempt (the agent died mid-run) is wiped: its content belongs to a
    run whose status was never committed.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    root = work_dir / "artifacts"
    _ensure_private_dir(root)
    item_dir = root / directory_name(item)
    _ensure_private_dir(item_dir)
    path = item_dir / str(attempt)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=DIR_MODE)
    rotate(item_dir, keep=keep)
    return path


def rotate(item_dir: Path, *, keep: int) -> None:
    """Keep the ``keep`` highest-numbered attempt directories; anything not an attempt number is removed."""
    attempts: list[tuple[int, Path]] = []
    for entry in item_dir.iterdir():
        if entry.name.isdigit() and entry.is_dir() and not entry.is_symlink():
            attempts.append((int(entry.name), entry))
        else:
            _remove(entry)
    attempts.sort()
    for _, stale in attempts[:-keep]:
        _remove(stale)


def forget_others(work_dir: Path, items: Collection[str]) -> list[str]:
    """Remove the artifact directories of every item but ``items`` (those left the spec): their attempts
    are history the status no longer shows, and item churn must not fill the disk. The names removed."""
    keep = {directory_name(item) for item in items}
    try:
        stale = [entry for entry in (work_dir / "artifacts").iterdir() if entry.name not in keep]
    except FileNotFoundError:
        return []
    for entry in stale:
        _remove(entry)
    return sorted(entry.name for entry in stale)


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def tighten(path: Path) -> None:
    """Force owner-only modes on a tree that other code (ansible-runner) wrote with its own umask."""
    # os.walk does not descend into symlinked directories, and symlinked files are skipped: only what the
    # run itself created is touched.
    for dirpath, _, filenames in os.walk(path):
        os.chmod(dirpath, DIR_MODE)
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, FILE_MODE)


def private_opener(path: str, flags: int) -> int:
    """An ``open(..., opener=)`` that creates files owner-only from the start, never through a symlink."""
    return os.open(path, flags | os.O_NOFOLLOW, FILE_MODE)


def write_private(path: Path, data: str) -> None:
    with open(path, "w", encoding="utf-8", opener=private_opener) as f:
        f.write(data)
