"""What the benchmarks on nspawn machines share: their ``--runs`` argument, and the host check before it."""

from __future__ import annotations

import argparse
import sys

from testbed.cli.demo import missing_prerequisites


def machine_runs(doc: str) -> int | None:
    """``--runs`` from the command line (its help the benchmark's first line); None, said on stderr, when
    this host cannot run nspawn machines."""
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    runs: int = parser.parse_args().runs
    missing = missing_prerequisites("machines")
    if missing:
        print("cannot run nspawn machines: " + "; ".join(missing), file=sys.stderr)
        return None
    return runs
