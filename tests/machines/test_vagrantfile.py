"""The Vagrantfile is valid for Vagrant (``vagrant validate``). No provider (libvirt, VirtualBox) runs on the
test hosts, so provider options are not checked and no VM boots here: docs/machines.md says so."""

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


def test_vagrant_validates_the_regional_vm_and_the_nodes(tmp_path: Path) -> None:
    done = validate(tmp_path, LCM_NODES="3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Vagrantfile validated successfully" in done.stdout
    for machine in ("regional", "node-1", "node-2", "node-3"):
        assert f"==> {machine}:" in done.stdout


def test_a_kubeconfig_that_does_not_exist_is_caught_before_any_vm_boots(tmp_path: Path) -> None:
    done = validate(tmp_path, LCM_KUBECONFIG=str(tmp_path / "missing.kubeconfig"))
    assert done.returncode != 0
    assert f"{tmp_path / 'missing.kubeconfig'} must exist" in done.stdout + done.stderr
