"""What a machine pays to install the node package: wheels, MiB downloaded, seconds, MiB on disk.

A machine's cloud-init installs the agent's wheel from the site's mirror (``lcmctl mirror index``), with
its dependencies, into a fresh venv; that is most of a machine's time from boot to registered. This
benchmark does the same on this host: it builds the agent's wheel from ``--project`` (a checkout, this one
by default; another commit's worktree to compare), gathers exactly the wheels it depends on for the
machines' Python (binary only, from the host's own package index configuration), then installs them
offline into a fresh venv ``--runs`` times and prints the median. Run it for two checkouts in the same
session to compare: the figure is a ratio only against a run beside it.

    .venv/bin/python bench/node_install.py [--project PATH] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testbed import CHECKOUT
from testbed.lab.mirrors.pypi import MACHINE_PYTHON

BUDGET_WHEELS = 45
"""The node installs at most this many wheels (52 before the testbed and the regional side left it)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=CHECKOUT,
                        help="the checkout whose node package to install")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--quiet"]
    with tempfile.TemporaryDirectory(prefix="lcm-node-install-") as tmp:
        files = Path(tmp) / "files"
        subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", str(files), str(args.project)], check=True)
        (agent,) = files.glob("lcm_agent-*.whl")
        subprocess.run([*pip, "download", "--only-binary=:all:", "--python-version", MACHINE_PYTHON,
                        "--dest", str(files), str(agent)], check=True)
        wheels = sorted(files.glob("*.whl"))
        seconds, disk = [], 0.0
        for run in range(args.runs):
            venv = Path(tmp) / f"venv-{run}"
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
            start = time.monotonic()
            subprocess.run([*pip, "--python", str(venv / "bin" / "python"), "install", "--no-index",
                            "--find-links", str(files), str(agent)], check=True)
            seconds.append(time.monotonic() - start)
            disk = _mib(venv / "lib")
        downloaded = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"node install of {args.project}: {len(wheels)} wheels (budget {BUDGET_WHEELS}), "
          f"{downloaded:.1f} MiB downloaded, "
          f"{statistics.median(seconds):.1f} s median of {args.runs} installs "
          f"({', '.join(f'{s:.1f}' for s in seconds)}), {disk:.0f} MiB installed")
    return 0 if len(wheels) <= BUDGET_WHEELS else 1


def _mib(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


if __name__ == "__main__":
    sys.exit(main())
