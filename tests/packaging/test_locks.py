"""The locks the machines, dev.sh and CI install from agree with what the pyprojects declare.

A dependency added to a pyproject without ``./dev.sh lock`` would reach a machine as a missing wheel on its
mirror, at boot; these tests say so at once, naming the requirement and the command that fixes it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECTS = {"lcm-agent": ROOT / "pyproject.toml", "lcm-regional": ROOT / "regional" / "pyproject.toml",
              "lcm-testbed": ROOT / "testbed" / "pyproject.toml"}
OURS = set(PYPROJECTS)


def pins(lock: Path) -> dict[str, str]:
    """``name → version`` of every ``name==version`` line of a pip-compile output."""
    found = {}
    for line in lock.read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, version = line.split("==", 1)
            found[canonicalize_name(name)] = version.split()[0].rstrip("\\").strip()
    return found


def declared(project: str, *, extras: bool = False) -> list[Requirement]:
    meta = tomllib.loads(PYPROJECTS[project].read_text())["project"]
    reqs = [Requirement(r) for r in meta["dependencies"]]
    if extras:
        reqs += [Requirement(r) for group in meta.get("optional-dependencies", {}).values() for r in group]
    return [r for r in reqs if canonicalize_name(r.name) not in OURS]


def unsatisfied(requirements: list[Requirement], locked: dict[str, str]) -> list[str]:
    return [f"{r} (locked: {locked.get(canonicalize_name(r.name), 'absent')})" for r in requirements
            if not r.specifier.contains(locked.get(canonicalize_name(r.name), "0.dev0"), prereleases=True)
            or canonicalize_name(r.name) not in locked]


def test_the_node_lock_pins_every_node_dependency_with_hashes() -> None:
    lock = ROOT / "requirements" / "node.lock"
    assert unsatisfied(declared("lcm-agent"), pins(lock)) == [], "run ./dev.sh lock"
    entries = lock.read_text().split("\n")
    pinned = [i for i, line in enumerate(entries) if "==" in line and not line.startswith((" ", "#"))]
    assert all("--hash=sha256:" in entries[i + 1] for i in pinned), "node.lock must carry hashes"


@pytest.mark.parametrize("project", sorted(PYPROJECTS))
def test_the_dev_lock_satisfies_every_distribution_and_its_extras(project: str) -> None:
    assert unsatisfied(declared(project, extras=True), pins(ROOT / "requirements" / "dev.lock")) == [], \
        "run ./dev.sh lock"


def test_dev_and_node_locks_agree_on_every_shared_package() -> None:
    node, dev = pins(ROOT / "requirements" / "node.lock"), pins(ROOT / "requirements" / "dev.lock")
    assert {n: (v, dev.get(n)) for n, v in node.items() if dev.get(n) != v} == {}


def test_a_requirement_the_lock_lacks_is_named(tmp_path: Path) -> None:
    """The check itself: a lock without a declared package, or at a version outside its range, fails."""
    lock = tmp_path / "node.lock"
    lock.write_text("psutil==5.0.0 \\\n    --hash=sha256:00\n")
    missing = unsatisfied([Requirement("psutil>=5.9"), Requirement("PyYAML>=6")], pins(lock))
    assert missing == ["psutil>=5.9 (locked: 5.0.0)", "PyYAML>=6 (locked: absent)"]
