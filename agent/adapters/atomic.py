"""Crash-safe file writes: a reader (or the agent after a kill -9 or a power cut) sees the old file or
the new one, never a torn mix, and never a moment where the content is readable with a wider mode.

The recipe is the classic one: write a temporary file in the same directory (so the rename cannot cross a
filesystem), fsync it, rename it over the target, fsync the directory (so the rename itself survives a
power cut). The temporary file is created 0600 by ``mkstemp`` and set to its final mode before any byte is
written.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

_TMP_SUFFIX = ".tmp"


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically; the file has exactly ``mode`` (umask does not apply)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(path), suffix=_TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def remove_stale_tmp(path: Path) -> list[Path]:
    """Delete temporary files a killed writer of ``path`` left behind; returns what was removed.

    Call it once at start-up, before anything writes ``path``: a concurrent writer's temporary file
    would be removed from under it.
    """
    removed = []
    for stale in path.parent.glob(f"{_tmp_prefix(path)}*{_TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            removed.append(stale)
    return removed


def write_json(path: Path, value: Any, mode: int = 0o600) -> None:
    """``value`` as stable, human-diffable JSON (sorted keys, indented), written atomically."""
    write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode(), mode)


def read_json(path: Path) -> Any:
    """The parsed file; raises FileNotFoundError, or ValueError (json's) for a file that is not JSON."""
    return json.loads(path.read_bytes())


def _tmp_prefix(path: Path) -> str:
    # Hidden and named after the target, so a leftover is recognisable and cannot be mistaken for it.
    return f".{path.name}."


def fsync_dir(directory: Path) -> None:
    """Makes a rename in ``directory`` durable: without it a crash can forget the new name."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
