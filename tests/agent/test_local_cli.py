"""``lcm-agent apply``, ``status`` and ``--version``: what an operator types on the node itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from agent_harness import RELEASE

from agent import __version__


def _agent(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli.node", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def _items(tmp: Path, *, marker: Path) -> list[dict[str, Any]]:
    def item(name: str, phase: str, playbook: str = "step.yml", **params: str) -> dict[str, Any]:
        return {"runner": "ansible", "name": name, "version": "1", "phase": phase,
                "params": {"playbook": playbook, "counter": str(tmp / f"{name}.count"), **params}}
    return [item("second", "deploy"), item("first", "prepare"),
            item("flaky", "deploy", playbook="flaky.yml", marker=str(marker))]


def _runs(tmp: Path, name: str) -> list[str]:
    path = tmp / f"{name}.count"
    return path.read_text().splitlines() if path.exists() else []


def test_apply_runs_items_in_phase_order_and_a_second_apply_skips_what_is_done(tmp_path: Path) -> None:
    marker = tmp_path / "broken"
    marker.touch()
    items = tmp_path / "items.yaml"
    items.write_text(yaml.safe_dump(_items(tmp_path, marker=marker)))
    state = tmp_path / "state"
    args = ("apply", "--file", str(items), "--release-dir", str(RELEASE), "--state-dir", str(state))

    failed = _agent(*args, cwd=tmp_path)
    assert failed.returncode == 1
    assert "refuse while the marker exists" in failed.stderr
    assert (_runs(tmp_path, "first"), _runs(tmp_path, "second")) == (["first 1"], ["second 1"])

    marker.unlink()
    fixed = _agent(*args, cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert _runs(tmp_path, "first") == ["first 1"], "done items are skipped"
    assert _runs(tmp_path, "second") == ["second 1"]
    assert len(_runs(tmp_path, "flaky")) == 2

    again = _agent(*args, cwd=tmp_path)
    assert again.returncode == 0
    assert "all items done" in again.stdout
    assert _runs(tmp_path, "first") == ["first 1"]

    shown = _agent("status", "--state-dir", str(state), cwd=tmp_path)
    journal = json.loads(shown.stdout)
    assert journal["inProgress"] is None
    assert {name: f["exitCode"] for name, f in journal["finished"].items()} == {
        "first": 0, "second": 0, "flaky": 0}


def test_apply_refuses_a_file_that_is_not_items(tmp_path: Path) -> None:
    items = tmp_path / "items.yaml"
    items.write_text("- {runner: ansible, name: [not, a, name]}\n")
    bad = _agent("apply", "--file", str(items), "--release-dir", str(RELEASE), "--state-dir",
                 str(tmp_path / "state"), cwd=tmp_path)
    assert bad.returncode == 2
    assert "lcm-agent apply:" in bad.stderr


def test_status_of_an_agent_that_never_ran_is_empty(tmp_path: Path) -> None:
    shown = _agent("status", "--state-dir", str(tmp_path), cwd=tmp_path)
    assert shown.returncode == 0
    assert json.loads(shown.stdout) == {"inProgress": None, "finished": {}}


def test_version(tmp_path: Path) -> None:
    shown = _agent("--version", cwd=tmp_path)
    assert shown.returncode == 0
    assert shown.stdout.strip() == f"lcm-agent {__version__}"
