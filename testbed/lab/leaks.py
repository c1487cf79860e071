"""Where a secret could leak on a host: the tests of the runners and the playbooks look for a join token or
an API token in every file a run left (artifacts, logs, ansible's home and temp)."""

from __future__ import annotations

import os
from pathlib import Path


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Every file under ``root`` that contains ``needle``. Often scanned while a run writes and removes its
    temp files, so a file or folder gone between listing and reading is skipped (os.walk skips vanished
    folders, where ``Path.rglob`` raises)."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            try:
                if not path.is_symlink() and needle in path.read_bytes():
                    found.append(path)
            except (FileNotFoundError, IsADirectoryError):
                continue
    return found
