"""The shipped unit: systemd accepts it, and its stop timeout leaves the agent time to stop gracefully."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.adapters.runners import RunnerSettings
from agent.daemon.app import ExitCode
from agent.daemon.config import TimingSettings

UNIT = Path(__file__).parents[2] / "systemd" / "lcm-agent.service"


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def _seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this host")
    agent = shutil.which("lcm-agent") or str(Path(__file__).parents[2] / ".venv" / "bin" / "lcm-agent")
    # verify checks that ExecStart exists: point it at this checkout's entry point instead of /opt.
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/lcm-agent/current/bin/lcm-agent", agent))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert str(unit) not in done.stderr, done.stderr  # unknown keys and bad values are only warnings


def test_stop_timeout_outlasts_the_grace_period_and_config_errors_are_not_restarted() -> None:
    service = _service()
    grace = TimingSettings().stop_grace_period + 2 * RunnerSettings().grace
    assert _seconds(service["TimeoutStopSec"]) > grace
    assert service["KillMode"] == "mixed"
    assert service["RestartPreventExitStatus"] == str(int(ExitCode.CONFIG))
    assert _seconds(service["WatchdogSec"]) > 0
