"""The agent's wheel and exactly the wheels it depends on, as a PEP 503 "simple" index.

This is what a release publishes for air-gapped sites: the agent build (the wheel whose URL and sha256 the
user-data names) and an index its dependencies install from. The agent wheel is built from this checkout on
every run (it is what is under test); its dependencies are exactly the node's lock
(``requirements/node.lock``: pinned versions with their hashes, so every machine installs the same
bytes), downloaded once per lock from the host's own package index (pip's configuration) and cached,
binary wheels only, for the machines' Python (Debian bookworm's 3.11), so nothing has to be compiled
inside a machine. A cached set whose marker is
missing or one of whose wheels is not a whole archive is downloaded again.
"""

from __future__ import annotations

import hashlib
import html
import re
import shutil
import sys
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from testbed import CHECKOUT
from testbed.lab.machines.host import LabError, run

NODE_LOCK = Path("requirements") / "node.lock"
"""The node's dependencies, pinned with their hashes (``./dev.sh lock``): what every machine installs."""
MACHINE_PYTHON = "3.11"
"""The machines' python3 (Debian bookworm): the dependency wheels must fit it."""


@dataclass(frozen=True)
class AgentWheel:
    path: Path
    sha256: str


async def build_index(dest: Path, cache_root: Path, *, project: Path = CHECKOUT) -> AgentWheel:
    """``dest/files/`` with the agent's wheel and its dependencies, ``dest/simple/`` indexing them."""
    if not (project / "pyproject.toml").is_file():
        raise LabError(f"{project} is not a source checkout of lcm-agent: the lab builds the agent from it")
    files = dest / "files"
    shutil.rmtree(dest, ignore_errors=True)
    files.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    await run([*pip, "wheel", "--no-deps", "--quiet", "--wheel-dir", str(files), str(project)])
    wheel = _one(files.glob("lcm_agent-*.whl"))
    lock = project / NODE_LOCK
    if not lock.is_file():
        raise LabError(f"{lock} is missing: the machines install exactly the node's locked dependencies "
                       "(./dev.sh lock writes it)")
    deps = cache_root / f"wheels-{_requirements_key(lock)}"
    if not _complete(deps):
        shutil.rmtree(deps, ignore_errors=True)
        await run([*pip, "download", "--quiet", "--only-binary=:all:", "--python-version", MACHINE_PYTHON,
                   "--no-deps", "--require-hashes", "--dest", str(deps), "--requirement", str(lock)])
        (deps / ".complete").touch()
    for dep in deps.glob("*.whl"):
        shutil.copy2(dep, files / dep.name)
    write_simple_index(dest)
    return AgentWheel(wheel, sha256_of(wheel))


def write_simple_index(root: Path) -> None:
    """PEP 503 pages for the wheels in ``root/files``; links carry ``#sha256=`` so pip verifies each one."""
    projects: dict[str, list[Path]] = {}
    for wheel in sorted((root / "files").glob("*.whl")):
        projects.setdefault(project_name(wheel.name), []).append(wheel)
    simple = root / "simple"
    simple.mkdir(parents=True, exist_ok=True)
    links = "".join(f'<a href="{name}/">{name}</a>\n' for name in sorted(projects))
    (simple / "index.html").write_text(_page("lcm-lab index", links))
    for name, wheels in projects.items():
        (simple / name).mkdir(exist_ok=True)
        anchors = "".join(f'<a href="../../files/{html.escape(w.name)}#sha256={sha256_of(w)}">'
                          f"{html.escape(w.name)}</a>\n" for w in wheels)
        (simple / name / "index.html").write_text(_page(name, anchors))


def project_name(wheel_file: str) -> str:
    """The PEP 503 normalized project name of a wheel file: ``PyYAML-6.0-….whl`` → ``pyyaml``."""
    return re.sub(r"[-_.]+", "-", wheel_file.split("-", 1)[0]).lower()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _requirements_key(lock: Path) -> str:
    """A digest of the locked dependencies and the target Python: when to download again."""
    return hashlib.sha256(MACHINE_PYTHON.encode() + b"\n" + lock.read_bytes()).hexdigest()[:12]


def _complete(deps: Path) -> bool:
    """Downloaded to the end (its marker) and every wheel still a whole archive: checked before use."""
    return (deps / ".complete").exists() and all(zipfile.is_zipfile(w) for w in deps.glob("*.whl"))


def _one(paths: Iterable[Path]) -> Path:
    found = list(paths)
    if len(found) != 1:
        raise LabError(f"expected exactly one lcm_agent wheel, found {[str(p) for p in found]}")
    return found[0]


def _page(title: str, body: str) -> str:
    head = f"<head><title>{html.escape(title)}</title></head>"
    return f"<!DOCTYPE html>\n<html>{head}<body>\n{body}</body></html>\n"
