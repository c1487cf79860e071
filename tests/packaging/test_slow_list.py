"""``tests/slow.txt`` keeps the fast loop fast: every test it names exists and is marked slow (so
``-m "not slow"`` leaves it out), and ``tests/slow_from_durations.py`` reads pytest's ``--durations`` report
as pytest writes it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parents[1]
sys.path.insert(0, str(TESTS))

from slow_from_durations import listed, slow_tests  # noqa: E402 - a script beside the tests, not a package


def collected(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           *args, str(TESTS)], capture_output=True, text=True, check=True, cwd=TESTS.parent)
    return {line.removeprefix("tests/").split("[")[0] for line in done.stdout.splitlines() if "::" in line}


def test_every_listed_test_exists_and_the_fast_loop_leaves_it_out() -> None:
    names = set(listed(TESTS / "slow.txt"))
    assert names
    # A renamed or deleted test leaves a stale line (fix the list); a test is either slow or in the fast loop.
    assert names <= collected("-m", "slow")


def test_durations_are_summed_per_test_across_phases_and_parameters() -> None:
    report = "\n".join([
        "============ slowest durations ============",
        "3.00s call     tests/a/test_x.py::test_one[p1]",
        "2.50s setup    tests/a/test_x.py::test_one[p2]",
        "1.00s call     tests/a/test_x.py::test_two",
        "0.40s teardown tests/a/test_x.py::test_two",
    ])
    assert slow_tests(report, 4.5) == {"a/test_x.py::test_one": 5.5}
    assert slow_tests(report, 1.0) == {"a/test_x.py::test_one": 5.5, "a/test_x.py::test_two": 1.4}
