"""Turn a pytest run's ``--durations=0`` report into ``tests/slow.txt``: each test whose setup, call and
teardown together took at least ``--seconds``, with its figure. ``tests/conftest.py`` marks those ``slow``, so
``-m "not slow"`` (the fast loop) leaves them to the full suite. Refresh it after the suite's costs move:

    .venv/bin/python -m pytest -n 2 --dist loadgroup -m "not slow" -q --durations=0 > durations.log
    .venv/bin/python tests/slow_from_durations.py durations.log >> tests/slow.txt   # then review and sort

The figures are what one quiet-ish 2-core host measured, not limits: no test asserts on them.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

LINE = re.compile(r"^(?P<seconds>\d+(?:\.\d+)?)s (?:setup|call|teardown)\s+tests/(?P<test>\S+)$")


def slow_tests(report: str, seconds: float) -> dict[str, float]:
    """Per test (its node id under ``tests/`` without parameters: parameters share one entry), the seconds of
    its slowest-summed phases, kept when at least ``seconds``."""
    totals: dict[str, float] = defaultdict(float)
    for line in report.splitlines():
        found = LINE.match(line.strip())
        if found:
            totals[found["test"].split("[")[0]] += float(found["seconds"])
    return {test: total for test, total in totals.items() if total >= seconds}


def listed(path: Path) -> dict[str, float]:
    """What a ``tests/slow.txt`` names: each test with its measured seconds (the figure, then the node id,
    a line each; ``#`` lines are comments). The one reader of the list: conftest marks these slow."""
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            seconds, test = line.split()
            entries[test] = float(seconds)
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="pytest's output with --durations=0")
    parser.add_argument("--seconds", type=float, default=4.5,
                        help="least seconds of a slow test (default 4.5)")
    args = parser.parse_args(argv)
    found = slow_tests(args.report.read_text(), args.seconds)
    for test, total in sorted(found.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{total:6.1f} {test}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
