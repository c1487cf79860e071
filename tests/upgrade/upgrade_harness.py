"""Real wheels of this project at other versions, and fake version directories, for the upgrade tests.

The wheels are built from a copy of the source tree whose ``__version__`` is bumped, so the installed agent
really reports another version. A broken wheel is broken the way the clone-the-venv approach can break: it
imports a dependency the running virtualenv does not have.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import agent
from agent.adapters.install import MARKER, Layout

SOURCE = Path(agent.__file__).resolve().parent.parent
RUNNING = agent.__version__


@dataclass(frozen=True)
class Wheel:
    path: Path
    version: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def url(self) -> str:
        return self.path.as_uri()


def build_wheel(work: Path, version: str, *, broken: bool = False) -> Wheel:
    tree = work / f"src-{version}"
    for part in ("agent", "playbooks"):  # the wheel carries the playbooks (pyproject's force-include)
        shutil.copytree(SOURCE / part, tree / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(SOURCE / name, tree / name)
    init = tree / "agent" / "__init__.py"
    init.write_text(re.sub(r'__version__ = ".*"', f'__version__ = "{version}"', init.read_text()))
    if broken:
        with (tree / "agent" / "cli" / "__init__.py").open("a") as f:
            f.write("\nimport lcm_agent_dependency_that_is_not_installed  # noqa: F401\n")
    out = work / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(tree)],
                   check=True)
    return Wheel(next(out.glob(f"lcm_agent-{version}-*.whl")), version)


def fake_version(layout: Layout, version: str, *, sha256: str = "f" * 64, prints: str | None = None) -> Path:
    """A version directory that is not a real venv: its ``lcm-agent --version`` is a shell script. Enough
    for what does not need a real install (switching, reusing a kept version, refusing)."""
    tree = layout.version_dir(version)
    (tree / "bin").mkdir(parents=True)
    script = tree / "bin" / "lcm-agent"
    script.write_text(f"#!/bin/sh\necho 'lcm-agent {prints or version}'\n")
    script.chmod(0o755)
    (tree / MARKER).write_text(f"{sha256}\n")
    return tree
