"""Prints the end-to-end scenario's wall time per stage in pytest's summary, captured output or not, and under
pytest-xdist too: each stage travels from the worker that timed it on its test's report (user_properties)."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from stages import STAGES

STAGE = "e2e stage"
_reported = [0]
"""How many of STAGES this process has put on a report already."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None],
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    report.user_properties.extend((STAGE, stage) for stage in STAGES[_reported[0]:])
    _reported[0] = len(STAGES)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    stages = [value for reports in terminalreporter.stats.values() for report in reports
              for key, value in getattr(report, "user_properties", ()) if key == STAGE]
    if stages:
        terminalreporter.section("end-to-end wall time per stage")
        for name, seconds in stages:
            terminalreporter.write_line(f"{name:<52} {seconds:7.1f}s")
        terminalreporter.write_line(f"{'total':<52} {sum(s for _, s in stages):7.1f}s")
