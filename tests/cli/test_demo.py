"""The README's first command: the demo regional cluster comes up, shows itself, reruns, and cleans up."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LCMCTL = str(Path(sys.executable).with_name("lcmctl"))


def demo(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LCMCTL, "demo", "--state-dir", str(state), "--port", "0", *args],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(shutil.which("kubectl") is None,
                    reason="kubectl is not installed (./dev.sh setup adds it)")
def test_demo_shows_the_sample_cluster_reruns_and_cleans_up(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    first = demo(state, "--once")
    assert first.returncode == 0, first.stderr
    for expected in ("TYPE", "STATE", "ITEMS", "demo-control-0", "demo-worker-1", "swarm-1.0.0"):
        assert expected in first.stdout
    assert (state / "kubeconfig").stat().st_mode & 0o077 == 0  # the admin credential is private

    again = demo(state, "--once")  # a second run reuses the state and its objects
    assert again.returncode == 0, again.stderr
    assert "demo-worker-0" in again.stdout

    down = demo(state, "--down")
    assert down.returncode == 0
    assert not state.exists()


def test_demo_without_samples_says_what_is_missing(tmp_path: Path) -> None:
    result = demo(tmp_path / "d", "--once", "--samples", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "no sample objects" in result.stderr
