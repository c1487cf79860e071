"""``lcmctl mirror``: what a release publishes for an air-gapped site.

    lcmctl mirror index --dest /srv/mirror/pypi [--project .] [--cache-dir DIR]

``index`` builds the agent's wheel from a checkout and a PEP 503 index of it and its dependencies, and
prints the wheel's path and sha256: the ``spec.agent`` a ClusterRelease names and the index its machines
install from.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from testbed.lab.machines.host import LabError
from testbed.lab.machines.rootfs import CACHE_ROOT
from testbed.lab.mirrors.pypi import build_index


def index(args: argparse.Namespace) -> int:
    try:
        wheel = asyncio.run(build_index(args.dest, args.cache_dir or CACHE_ROOT, project=args.project))
    except LabError as exc:
        print(f"lcmctl mirror index: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"wheel": str(wheel.path.relative_to(args.dest)), "sha256": wheel.sha256}))
    return 0
