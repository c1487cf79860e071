"""The Vagrantfile is valid for Vagrant (``vagrant validate``), with the VMs the environment asks for. The VMs
really boot in the opt-in smoke test (``tests/machines/test_vagrant_smoke.py``); this one runs everywhere
vagrant is installed and boots nothing (triggers do not run on ``validate``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
VAGRANT = shutil.which("vagrant")

pytestmark = pytest.mark.skipif(VAGRANT is None, reason="vagrant is not installed (apt-get install vagrant)")


def validate(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # Vagrant's state goes to tmp_path, not into the checkout.
    environ = {**os.environ, "VAGRANT_CWD": str(ROOT), "VAGRANT_DOTFILE_PATH": str(tmp_path / ".vagrant"),
               "VAGRANT_CHECKPOINT_DISABLE": "1", **env}
    return subprocess.run([str(VAGRANT), "validate", "--ignore-provider"], env=environ, capture_output=True,
                          text=True, timeout=300, check=False)


def test_vagrant_validates_one_vm_per_node_and_no_regional_vm(tmp_path: Path) -> None:
    done = validate(tmp_path, LCM_NODES="3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Vagrantfile validated successfully" in done.stdout
    for machine in ("node-1", "node-2", "node-3"):
        assert f"==> {machine}:" in done.stdout
    assert "==> regional:" not in done.stdout  # the regional side runs on the host


def test_a_node_count_that_is_not_a_number_is_refused_before_any_vm_boots(tmp_path: Path) -> None:
    done = validate(tmp_path, LCM_NODES="three")
    assert done.returncode != 0
    assert 'invalid value for Integer(): "three"' in done.stdout + done.stderr
