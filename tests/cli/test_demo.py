"""The README's first command: the demo picks its nodes (nspawn machines when the host can run them, else
network-namespace nodes, saying why), brings up its parts, and ``--down`` from another shell takes every one
of them away. (The rollout the demo shows, to a swarm and beyond, is tests/e2e/test_e2e_machines.py and
test_e2e_rollout.py, on the same composition.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli.demo import choose_nodes, missing_prerequisites
from agent.lab import netns, nodes
from agent.lab.nodes import session_prefix

LCMCTL = str(Path(sys.executable).with_name("lcmctl"))


def demo(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LCMCTL, "demo", "--state-dir", str(state), "--port", "0", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def wait_for_line(stream: list[str], proc: subprocess.Popen[str], text: str, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        stream.append(line)
        if text in line:
            return
        if not line and proc.poll() is not None:
            break
    pytest.fail(f"the demo never said {text!r}; it said:\n{''.join(stream)}")


@pytest.mark.skipif(bool(missing_prerequisites("netns")), reason="; ".join(missing_prerequisites("netns")))
@pytest.mark.parametrize("api", ["sim", "kube"])
def test_demo_comes_up_and_down_removes_everything_it_made(tmp_path: Path, api: str) -> None:
    state, prefix = tmp_path / "demo", session_prefix("dm")
    proc = subprocess.Popen([LCMCTL, "demo", "--state-dir", str(state), "--port", "0", "--prefix", prefix,
                             "--nodes", "netns", "--api", api],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    said: list[str] = []
    try:
        wait_for_line(said, proc, "agents started", within=600.0 if api == "kube" else 120.0)
        pids = {p.stem: json.loads(p.read_text())["pid"] for p in (state / "stack").glob("*.pid")}
        assert {"stack", "scheduler", "mosquitto", "agent-demo-control-0", "agent-demo-worker-1"} <= set(pids)
        kubeconfig = state / "kubeconfig"
        if api == "kube":
            plane = json.loads((state / "kube" / "pids.json").read_text())["pids"]
            assert set(plane) == {"etcd", "kube-apiserver", "kube-controller-manager"}
            pids.update(plane)
            kubeconfig = state / "kube" / "admin.kubeconfig"
            assert any("kube-apiserver" in line for line in said)
        assert kubeconfig.stat().st_mode & 0o077 == 0  # the admin credential is private
        assert nodes.registry_path(prefix).exists()

        down = demo(state, "--down", "--prefix", prefix)
        assert down.returncode == 0, down.stderr
        assert proc.wait(90) == 130, "the running demo stopped before its rollout finished"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(90)
    assert not state.exists()
    assert not nodes.registry_path(prefix).exists()
    assert netns.leftovers(prefix) == ([], [])
    for pid in pids.values():
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} of the demo survived --down"


def test_demo_without_samples_says_what_is_missing(tmp_path: Path) -> None:
    result = demo(tmp_path / "d", "--once", "--samples", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "no sample objects" in result.stderr


def test_down_with_nothing_running_is_harmless(tmp_path: Path) -> None:
    result = demo(tmp_path / "never", "--down", "--prefix", "dmnone")
    assert result.returncode == 0, result.stderr


def test_auto_takes_machines_when_the_host_can_run_them_and_says_why_not_otherwise() -> None:
    assert choose_nodes("auto", [])[0] == "machines"
    kind, line = choose_nodes("auto", ["root (machines need namespaces, mounts and network devices)",
                                       "debootstrap (apt-get install debootstrap)"])
    assert kind == "netns"
    assert "network namespaces" in line
    assert "not nspawn machines: this host lacks root" in line
    assert "apt-get install debootstrap" in line  # how to get machines
    assert choose_nodes("netns", [])[0] == "netns"
    assert choose_nodes("machines", ["debootstrap"])[0] == "machines"  # insisting: the check then refuses


def test_demo_on_machines_names_what_the_host_lacks(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH without systemd-nspawn, debootstrap, dpkg-scanpackages
    bin_dir.mkdir()
    result = subprocess.run([LCMCTL, "demo", "--state-dir", str(tmp_path / "d"), "--nodes", "machines"],
                            capture_output=True, text=True, timeout=120, check=False,
                            env={"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "this host lacks" in result.stderr
    assert "systemd-nspawn (apt-get install systemd-container)" in result.stderr
    assert "debootstrap (apt-get install debootstrap)" in result.stderr
