"""The README's first command: the demo picks its nodes (nspawn machines when the host can run them, else
network-namespace nodes, saying why), brings up its parts, and ``--down`` from another shell takes every one
of them away. It runs again in the same state folder, also after a run killed with SIGKILL, and ``--once``
ends saying only what is still true, with each stage's time. (The rollout the demo shows, to a swarm and
beyond, is tests/e2e/test_e2e_machines.py and test_e2e_rollout.py, on the same composition.)"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.cli.demo import choose_nodes, missing_prerequisites
from testbed.lab.netns import namespaces as netns
from testbed.lab.netns import nodes
from testbed.lab.netns.nodes import session_prefix

LCMCTL = str(Path(sys.executable).with_name("lcmctl"))


def demo(state: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LCMCTL, "demo", "--state-dir", str(state), "--port", "0", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


@contextlib.contextmanager
def demo_started(state: Path, prefix: str, *, api: str = "sim",
                 said: list[str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """A netns demo in the background, once its agents are started (what it said until then goes to
    ``said``); Ctrl-C on exit if it still runs. The real control plane may be built on its first use."""
    proc = subprocess.Popen([LCMCTL, "demo", "--state-dir", str(state), "--port", "0", "--prefix", prefix,
                             "--nodes", "netns", "--api", api],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_line([] if said is None else said, proc, "agents started",
                      within=600.0 if api == "kube" else 120.0)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(90)


def recorded_pids(state: Path) -> dict[str, int]:
    return {p.stem: json.loads(p.read_text())["pid"] for p in (state / "stack").glob("*.pid")}


def assert_once_ended_cleanly(run: subprocess.CompletedProcess[str], state: Path) -> None:
    """All Ready with the swarm shown and each stage timed; then only what is true after the teardown (no
    commands for a cluster that is gone), and the scheduler released its Lease with no error logged."""
    assert run.returncode == 0, run.stdout + run.stderr
    assert "all 3 machines Ready on swarm-1.0.0" in run.stdout
    stages = next(line for line in run.stdout.splitlines() if line.startswith("stages: "))
    assert "agents' start → all registered" in stages
    assert "registered → all Ready" in stages
    assert "demo-worker-1" in run.stdout.split("The swarm, from demo-control-0's engine:")[1]
    assert "taken down in" in run.stdout.splitlines()[-1]
    assert "Look around" not in run.stdout
    assert "export KUBECONFIG" not in run.stdout
    scheduler = [json.loads(line) for line in (state / "stack" / "scheduler.log").read_text().splitlines()
                 if line.startswith("{")]
    assert [e["msg"] for e in scheduler if e["level"] == "ERROR"] == []
    assert any(e["msg"] == "released the lease" for e in scheduler)
    assert recorded_pids(state) == {}


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
    said: list[str] = []
    with demo_started(state, prefix, api=api, said=said) as proc:
        pids = recorded_pids(state)
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
    assert not state.exists()
    assert not nodes.registry_path(prefix).exists()
    assert netns.leftovers(prefix) == ([], [])
    for pid in pids.values():
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} of the demo survived --down"


@pytest.mark.skipif(bool(missing_prerequisites("netns")), reason="; ".join(missing_prerequisites("netns")))
def test_demo_runs_again_in_the_same_state_dir_and_after_a_run_killed_with_sigkill(tmp_path: Path) -> None:
    state, prefix = tmp_path / "demo", session_prefix("dr")
    once = ("--once", "--nodes", "netns", "--prefix", prefix)
    assert_once_ended_cleanly(demo(state, *once, timeout=600), state)

    with demo_started(state, prefix) as killed:  # the second run gets as far as its agents, then is killed
        left = recorded_pids(state)
        killed.kill()
        killed.wait()
    assert {"scheduler", "mosquitto", "agent-demo-control-0"} <= set(left)
    assert Path(f"/proc/{left['scheduler']}").exists()  # its own session: it outlives the demo

    third = demo(state, *once, timeout=600)
    assert_once_ended_cleanly(third, state)
    assert "the previous run in" in third.stderr
    assert "ended without its teardown" in third.stderr
    for name, pid in left.items():
        if name != "stack":
            assert not Path(f"/proc/{pid}").exists(), f"{name} (pid {pid}) of the killed run survived"
    assert netns.leftovers(prefix) == ([], [])


@pytest.mark.skipif(bool(missing_prerequisites("netns")), reason="; ".join(missing_prerequisites("netns")))
def test_a_second_demo_on_a_running_ones_state_dir_names_it_and_how_to_stop_it(tmp_path: Path) -> None:
    state, prefix = tmp_path / "demo", session_prefix("dp")
    with demo_started(state, prefix) as first:
        second = demo(state, "--once", "--nodes", "netns", "--prefix", session_prefix("dq"))
        assert second.returncode == 1
        assert f"a run with state dir {state} is still running (pid {first.pid})" in second.stderr
        assert f"lcmctl demo --down --state-dir {state}" in second.stderr
        assert first.poll() is None  # untouched


@pytest.mark.skipif(bool(missing_prerequisites("netns")), reason="; ".join(missing_prerequisites("netns")))
def test_an_api_port_someone_holds_is_named_with_its_holder_and_the_cure(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))  # noqa: S104 - every address, the bridge's among them
        holder.listen()
        port = holder.getsockname()[1]
        run = subprocess.run([LCMCTL, "demo", "--state-dir", str(tmp_path / "demo"), "--port", str(port),
                              "--once", "--nodes", "netns", "--prefix", session_prefix("dh")],
                             capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "the API simulator cannot listen on 10.77." in run.stderr
    assert f"port {port} is held by pid {os.getpid()}" in run.stderr
    assert "--port 0 takes any free port" in run.stderr


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
