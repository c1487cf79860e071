"""Lab nodes: network namespaces on a private bridge, each with its own dockerd, its own hostname, a service
script the playbooks drive, and a teardown that leaves nothing behind, even after a crash."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from testbed.lab.netns import dockerd, nodes
from testbed.lab.netns import namespaces as netns
from testbed.lab.netns.namespaces import LabError
from testbed.lab.netns.nodes import Lab

LabFactory = Callable[..., Lab]
LCMCTL = str(Path(sys.executable).parent / "lcmctl")


def docker(lab_node: nodes.LabNode, *args: str) -> str:
    return subprocess.run(["docker", "-H", lab_node.docker_host, *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def traces(prefix: str, state_dir: Path) -> list[str]:
    """Whatever a lab could leave behind on the host."""
    spaces, links = netns.leftovers(prefix)
    mounts = [p for p in netns.mount_points() if p.startswith(str(state_dir))]
    found = spaces + links + mounts + [str(p) for p in [state_dir, nodes.registry_path(prefix)] if p.exists()]
    running = [str(p) for p in Path("/proc").glob("[0-9]*/cmdline")
               if str(state_dir).encode() in _read(p)]
    return found + running


def configure(node: nodes.LabNode, **settings: object) -> None:
    """Add settings to the node's daemon.json, keeping its own (data-root above all)."""
    node.config_path.write_text(json.dumps({**json.loads(node.config_path.read_text()), **settings}))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_each_node_has_its_own_engine_hostname_and_address(lab_nodes: LabFactory) -> None:
    lab = lab_nodes("alpha", "beta")
    assert [docker(n, "info", "--format", "{{.Name}}") for n in lab.nodes] == ["alpha", "beta"]
    assert docker(lab["alpha"], "info", "--format", "{{.ID}}") != docker(lab["beta"], "info", "--format",
                                                                          "{{.ID}}")
    shown = subprocess.run(lab["beta"].nsenter("ip", "-4", "-o", "addr", "show", "dev", "eth0"),
                           capture_output=True, text=True, check=True).stdout
    assert f"{lab['beta'].address}/24" in shown
    assert lab["alpha"].address != lab["beta"].address


def test_a_process_in_a_node_reaches_the_host_side_of_the_bridge(lab_nodes: LabFactory) -> None:
    lab = lab_nodes("gamma")
    node = lab["gamma"]
    with socket.create_server((node.gateway, 0)) as server:
        port = server.getsockname()[1]
        code = f"import socket as s; s.create_connection(('{node.gateway}', {port}), 5).sendall(b'hi')"
        child = subprocess.Popen([str(node.python), "-c", code])
        conn, (peer, _) = server.accept()
        with conn:
            assert conn.recv(2) == b"hi"
        assert child.wait(timeout=10) == 0
    assert peer == node.address  # it came from inside the node's namespace


def test_the_service_script_stops_starts_reloads_and_reports(lab_nodes: LabFactory) -> None:
    node = lab_nodes("delta")["delta"]

    def ctl(action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(node.service_script), action], capture_output=True, text=True, check=False)

    assert ctl("status").returncode == 0
    assert ctl("stop").returncode == 0
    assert (ctl("status").returncode, dockerd.ping(node)) == (dockerd.EXIT_NOT_RUNNING, False)
    assert ctl("reload").returncode == 1
    assert ctl("start").returncode == 0
    assert dockerd.ping(node)
    configure(node, labels=["zone=b"])
    assert ctl("reload").returncode == 0
    assert _eventually(lambda: docker(node, "info", "--format", "{{json .Labels}}") == '["zone=b"]')
    first = dockerd.pid(node)
    assert ctl("restart").returncode == 0
    assert dockerd.pid(node) not in (None, first)


def test_a_dockerd_that_cannot_start_fails_with_its_own_words(lab_nodes: LabFactory) -> None:
    """As soon as the new dockerd has exited, not at the end of the start timeout (which the old code waited
    out when dockerd died before writing its pidfile)."""
    node = lab_nodes("eps")["eps"]
    dockerd.stop(node)
    configure(node, **{"no-such-option": 1})
    with pytest.raises(LabError, match=r"did not start, it exited with status 1: (.|\n)*no-such-option"):
        dockerd.start(node)


def test_an_engine_killed_with_its_pidfile_left_behind_restarts(lab_nodes: LabFactory) -> None:
    """kill -9 leaves dockerd's pidfile; when its number is alive again (a zombie nobody reaps, or a pid
    reused), a new dockerd refuses to start until the file is gone. The service script's restart, which the
    reconciler runs after a killed engine, must start it anyway."""
    node = lab_nodes("theta")["theta"]
    killed = dockerd.pid(node)
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    assert _eventually(lambda: dockerd.pid(node) is None)
    squatter = subprocess.Popen(["sleep", "infinity"])
    try:
        node.pid_file.write_text(f"{squatter.pid}\n")
        restarted = subprocess.run([str(node.service_script), "restart"], capture_output=True, text=True,
                                   check=False)
        assert restarted.returncode == 0, restarted.stderr
        assert dockerd.ping(node)
        assert dockerd.pid(node) not in (None, killed, squatter.pid)
    finally:
        squatter.kill()
        squatter.wait()


def test_a_dockerd_whose_containerd_hangs_is_started_again_with_a_fresh_one(
        lab_nodes: LabFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dockerd exits when the containerd it starts has not answered in 15 s (a loaded host: seen in CI). A
    ``containerd`` first on PATH that hangs the first time (and is the real one after) makes the real dockerd
    give up for real; the service manager stops the hung one and starts dockerd again, as systemd restarts
    docker.service."""
    node = lab_nodes("iota")["iota"]
    dockerd.stop(node)
    hung_once = tmp_path / "hung-once"
    fake = tmp_path / "bin" / "containerd"
    fake.parent.mkdir()
    fake.write_text(f"""#!/bin/bash
if [ ! -e {hung_once} ]; then touch {hung_once}; exec -a containerd sleep infinity; fi
exec {shutil.which("containerd")} "$@"
""")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    dockerd.start(node)
    assert dockerd.ping(node)
    assert hung_once.exists()
    said = node.log_file.read_text()
    assert dockerd.CONTAINERD_TIMEOUT in said
    assert "containerd stopped, dockerd started again (attempt 2 of 3)" in said
    hung = [p for p in Path("/proc").glob("[0-9]*/cmdline") if _read(p).startswith(b"containerd\0infinity")]
    assert not hung


def test_an_imported_busybox_image_runs(lab_nodes: LabFactory, tmp_path: Path) -> None:
    node = lab_nodes("zeta")["zeta"]
    image = dockerd.import_image(node, dockerd.busybox_rootfs(tmp_path / "rootfs.tar"), "busybox:lab")
    assert image.startswith("sha256:")
    assert docker(node, "run", "--rm", "busybox:lab", "sh", "-c", "echo from $(hostname)").startswith("from ")


def test_teardown_leaves_nothing_and_can_run_twice() -> None:
    if nodes.missing_requirements():
        pytest.skip(nodes.missing_requirements())
    prefix = nodes.session_prefix()
    lab = nodes.up(["one", "two"], prefix=prefix)
    subprocess.run(["docker", "-H", lab["one"].docker_host, "swarm", "init", "--advertise-addr",
                    lab["one"].address], capture_output=True, check=True)
    assert traces(prefix, lab.state_dir)
    lab.down()
    assert traces(prefix, lab.state_dir) == []
    assert nodes.teardown(prefix, lab.state_dir) == []


def test_down_after_a_crash_finds_the_lab_by_its_prefix(tmp_path: Path) -> None:
    """The process that built the lab is killed; its record is lost too: ``lcmctl nodes down`` still
    finds namespaces, links, dockerds, mounts and the state directory."""
    if nodes.missing_requirements():
        pytest.skip(nodes.missing_requirements())
    prefix = nodes.session_prefix()
    up = subprocess.run([LCMCTL, "nodes", "up", "crash-1", "crash-2", "--prefix", prefix],
                        capture_output=True, text=True, check=True)
    state_dir = Path(json.loads(up.stdout)["state_dir"])
    nodes.registry_path(prefix).unlink()
    assert traces(prefix, state_dir)
    down = subprocess.run([LCMCTL, "nodes", "down", "--prefix", prefix], capture_output=True, text=True,
                          check=True)
    assert down.stdout.startswith(f"{prefix}: removed")
    assert traces(prefix, state_dir) == []


@pytest.mark.parametrize(
    ("names", "message"),
    [(["Bad_Name"], "must be a DNS label"), (["dup", "dup"], "exists already")],
)
def test_bad_node_names_are_refused_and_nothing_is_left(names: list[str], message: str) -> None:
    if nodes.missing_requirements():
        pytest.skip(nodes.missing_requirements())
    prefix = nodes.session_prefix()
    with pytest.raises(LabError, match=message):
        nodes.up(names, prefix=prefix)
    assert netns.leftovers(prefix) == ([], [])
    assert not nodes.registry_path(prefix).exists()


def test_a_second_lab_with_the_same_prefix_is_refused(lab_nodes: LabFactory) -> None:
    lab = lab_nodes("eta")
    with pytest.raises(LabError, match="exists"):
        nodes.up(["theta"], prefix=lab.net.prefix)
    assert dockerd.ping(lab["eta"])  # the refusal did not touch the running lab


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()
