"""Prints the end-to-end scenario's wall time per stage in pytest's summary, captured output or not."""

from __future__ import annotations

import pytest
from stages import STAGES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if STAGES:
        terminalreporter.section("end-to-end wall time per stage")
        for name, seconds in STAGES:
            terminalreporter.write_line(f"{name:<52} {seconds:7.1f}s")
        terminalreporter.write_line(f"{'total':<52} {sum(s for _, s in STAGES):7.1f}s")
