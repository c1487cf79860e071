"""Coverage per package, from ``coverage json``: statements and branches of each folder of ``agent/``,
``regional/`` and ``testbed/`` (a package's subpackages apart), printed after the suite by ``./dev.sh test``.

The node agent's packages (what machines install) are held to ``FLOOR`` per cent of their lines; one under it
is named on a line of its own, so a drop shows in CI's output rather than in a later audit.

Usage: ``python tests/coverage_by_package.py coverage.json``.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path, PurePosixPath

FLOOR = 85.0
"""Per cent of lines each node-agent package must cover."""
NODE_PACKAGES = (
    "agent/adapters", "agent/api", "agent/cli", "agent/daemon", "agent/decisions", "agent/kits",
    "agent/reconciler",
)
"""The node distribution's packages (subpackages included), held to ``FLOOR``; the testbed's and the regional
packages are reported, not held."""


def by_package(report: dict[str, object]) -> dict[str, list[int]]:
    """Per package folder: [statements, covered, branches, covered branches]."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    files = report["files"]
    assert isinstance(files, dict)
    for name, entry in files.items():
        summary = entry["summary"]
        row = totals[str(PurePosixPath(Path(name).as_posix()).parent)]
        row[0] += summary["num_statements"]
        row[1] += summary["covered_lines"]
        row[2] += summary.get("num_branches", 0)
        row[3] += summary.get("covered_branches", 0)
    return dict(sorted(totals.items()))


def percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 100.0


def held(package: str) -> bool:
    return any(package == p or package.startswith(p + "/") for p in NODE_PACKAGES)


def main(path: str) -> int:
    rows = by_package(json.loads(Path(path).read_text(encoding="utf-8")))
    print(f"\n{'coverage per package':<28} {'lines':>7} {'of':>6} {'branches':>9} {'of':>6}")
    under = []
    for package, (statements, covered, branches, taken) in rows.items():
        lines = percent(covered, statements)
        mark = " *" if held(package) else ""
        print(f"{package + mark:<28} {lines:6.1f}% {statements:6d} "
              f"{percent(taken, branches):8.1f}% {branches:6d}")
        if held(package) and lines < FLOOR:
            under.append(f"{package} {lines:.1f}%")
    total = [sum(r[i] for r in rows.values()) for i in range(4)]
    print(f"{'total':<28} {percent(total[1], total[0]):6.1f}% {total[0]:6d} "
          f"{percent(total[3], total[2]):8.1f}% {total[2]:6d}")
    print(f"* node agent, held to {FLOOR:.0f}% of lines")
    for line in under:
        print(f"coverage under {FLOOR:.0f}%: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
