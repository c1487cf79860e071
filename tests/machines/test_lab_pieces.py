"""The lab's pure parts: what an operator is told about a stuck machine, where the image is built from,
the package index machines install from, the machines' addresses and names, and what a host lacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.lab.machines.diagnosis import agent_unit_summary, cloud_init_summary, last_agent_error
from testbed.lab.machines.host import LabError
from testbed.lab.machines.machine import Machine
from testbed.lab.machines.network import Subnet, link_name, veth_name
from testbed.lab.machines.rootfs import BOOT_FILES, COMPLETE, NoMirrorError, debian_mirror, usable
from testbed.lab.mirrors.apt import complete as apt_repo_complete
from testbed.lab.mirrors.pypi import project_name, sha256_of, write_simple_index

LCMCTL = str(Path(sys.executable).with_name("lcmctl"))
REFUSED = "the API refuses this machine's credentials: (401) Unauthorized"


def log_line(level: str, msg: str) -> str:
    return json.dumps({"ts": "2026-01-01T00:00:00Z", "level": level, "logger": "agent", "msg": msg})


@pytest.mark.parametrize(("journal", "expected"), [
    ("", ""),
    (log_line("INFO", "registered"), ""),
    ("\n".join([log_line("ERROR", REFUSED), log_line("WARNING", "retrying in 2.0s")]), REFUSED),
    ("\n".join([log_line("ERROR", "old"), log_line("ERROR", "newest")]), "newest"),
    ("lcm-agent: config /etc/lcm-agent/config.yaml has mode 0644: error", "lcm-agent: config "
     "/etc/lcm-agent/config.yaml has mode 0644: error"),
    ("Started lcm-agent.service - LCM node agent.", ""),
])
def test_the_agents_last_error_is_read_from_its_json_journal(journal: str, expected: str) -> None:
    assert last_agent_error(journal) == expected


@pytest.mark.parametrize(("status", "expected"), [
    ("status: done\nboot_status_code: enabled-by-generator\n", "cloud-init done"),
    ("status: running\n", "cloud-init running"),
    ("status: error\ndetail:\n('scripts_user', RuntimeError('Runparts: 1 failures'))\n",
     "cloud-init error: ('scripts_user', RuntimeError('Runparts: 1 failures'))"),
    ("", "cloud-init unknown"),
])
def test_cloud_init_status_is_summarised(status: str, expected: str) -> None:
    assert cloud_init_summary(status) == expected


@pytest.mark.parametrize(("state", "expected"), [
    ("active\n", "lcm-agent runs"),
    ("activating\n", "lcm-agent is starting (it reports ready once registered)"),
    ("failed\n", "lcm-agent failed"),
    ("", "lcm-agent is unknown"),
])
def test_the_agents_unit_state_is_said_in_words(state: str, expected: str) -> None:
    assert agent_unit_summary(state) == expected


DEB822 = """Types: deb
URIs: http://apt-cache.internal/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://apt-cache.internal/debian-security
Suites: bookworm-security
Components: main
"""


@pytest.mark.parametrize(("sources", "expected"), [
    ([DEB822], "http://apt-cache.internal/debian"),
    (["deb [arch=amd64] http://mirror.local/debian bookworm main\n"], "http://mirror.local/debian"),
    (["deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n", DEB822],
     "http://apt-cache.internal/debian"),
])
def test_the_image_is_built_from_the_hosts_debian_mirror(sources: list[str], expected: str) -> None:
    assert debian_mirror(sources) == expected


@pytest.mark.parametrize("sources", [
    [],
    ["deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"],
    [DEB822.replace("bookworm", "trixie")],
])
def test_a_host_without_a_debian_source_for_the_suite_is_told_how_to_name_one(sources: list[str]) -> None:
    with pytest.raises(NoMirrorError) as raised:
        debian_mirror(sources)
    assert "no apt source for Debian bookworm in /etc/apt/sources.list" in str(raised.value)
    assert "--apt-mirror URL" in str(raised.value)


def test_the_package_index_lists_each_wheel_under_its_normalised_name_with_its_digest(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    for name in ("PyYAML-6.0.3-cp311-cp311-manylinux2014_x86_64.whl", "lcm_agent-0.1.0-py3-none-any.whl",
                 "typing_extensions-4.16.0-py3-none-any.whl"):
        (files / name).write_bytes(name.encode())
    write_simple_index(tmp_path)
    assert project_name("PyYAML-6.0.3-cp311-cp311-manylinux2014_x86_64.whl") == "pyyaml"
    page = (tmp_path / "simple" / "lcm-agent" / "index.html").read_text()
    wheel = files / "lcm_agent-0.1.0-py3-none-any.whl"
    assert f'href="../../files/{wheel.name}#sha256={sha256_of(wheel)}"' in page
    root = (tmp_path / "simple" / "index.html").read_text()
    for project in ("pyyaml", "lcm-agent", "typing-extensions"):
        assert f'href="{project}/"' in root


def test_machines_get_addresses_after_the_bridge_and_names_that_fit_an_interface() -> None:
    subnet = Subnet()
    assert str(subnet.gateway) == "10.79.0.1"
    assert [str(subnet.address(i)) for i in (0, 1)] == ["10.79.0.10", "10.79.0.11"]
    with pytest.raises(LabError, match="no address left"):
        subnet.address(250)
    assert (link_name("worker-12"), veth_name("worker-12")) == ("lcmvm-worker-12", "lcmvm-worker-12")
    # The demo's names are longer than an interface name allows: their veth gets a digest, 15 characters.
    assert link_name("demo-control-0") == "lcmvm-demo-control-0"
    assert [len(veth_name(n)) for n in ("demo-control-0", "demo-worker-0")] == [15, 15]
    assert veth_name("demo-control-0") != veth_name("demo-worker-0")
    with pytest.raises(LabError, match="not a host name"):
        link_name("Worker_1")


def test_up_on_a_host_without_the_tools_says_what_is_missing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ip", "nsenter"):  # present; systemd-nspawn, debootstrap, dpkg-scanpackages are not
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    done = subprocess.run([LCMCTL, "machines", "up", "--once", "--state-dir", str(tmp_path / "state")],
                          env={**os.environ, "PATH": str(bin_dir)}, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    assert "cannot run nspawn machines on this host; missing:" in done.stderr
    assert "systemd-nspawn (apt-get install systemd-container)" in done.stderr
    assert "debootstrap (apt-get install debootstrap)" in done.stderr
    assert "ip (" not in done.stderr


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="dropping to another user needs root and setpriv (util-linux)")
def test_up_without_root_says_root_is_needed(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", LCMCTL, "machines",
                           "up", "--once", "--state-dir", str(tmp_path / "state")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "missing: root (machines need namespaces, mounts and network devices)" in done.stderr


def _image(root: Path, *, lacking: str = "") -> Path:
    for name in BOOT_FILES:
        if name != lacking:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text("")
    (root / COMPLETE).write_text("bookworm\n")
    return root


def test_a_cached_image_is_used_only_while_it_holds_what_a_boot_needs(tmp_path: Path) -> None:
    assert usable(_image(tmp_path / "whole"))
    assert not usable(_image(tmp_path / "damaged", lacking="usr/bin/cloud-init"))
    half = tmp_path / "half"  # a build that never finished has no marker
    half.mkdir()
    assert not usable(half)


def test_a_cached_apt_repository_is_used_only_while_every_package_it_lists_is_there(tmp_path: Path) -> None:
    (tmp_path / "Packages").write_text("Package: curl\nFilename: ./curl_7.88_amd64.deb\n\n"
                                       "Package: runc\nFilename: ./runc_1.1_amd64.deb\n")
    (tmp_path / "curl_7.88_amd64.deb").write_bytes(b"deb")
    assert not apt_repo_complete(tmp_path)
    (tmp_path / "runc_1.1_amd64.deb").write_bytes(b"deb")
    assert apt_repo_complete(tmp_path)


@pytest.mark.parametrize("pid", [2, os.getpid()], ids=["a kernel thread", "another process"])
def test_a_pid_file_naming_a_process_that_is_not_the_machines_nspawn_is_not_taken_for_it(
    tmp_path: Path, pid: int,
) -> None:
    machine = Machine("m-1", tmp_path)
    machine.dir.mkdir(parents=True)
    (machine.dir / "nspawn.pid").write_text(f"{pid}\n")
    assert machine.nspawn_pid() is None


_REBOOTS_TWICE = ("n=$(cat runs 2>/dev/null || echo 0); echo $((n + 1)) > runs; "
                  "[ \"$n\" -lt 2 ] && exit 133; exit 0")
"""A stand-in for systemd-nspawn (run in the machine's directory): a machine that reboots twice (exit 133),
then powers off."""


def _supervise(state: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "testbed.lab.machines.supervisor", str(state), "--",
                           "sh", "-c", f"cd {state} && {script}"], capture_output=True, text=True, timeout=60)


def test_the_supervisor_starts_a_machine_again_after_each_reboot_and_stops_when_it_powers_off(
    tmp_path: Path,
) -> None:
    done = _supervise(tmp_path, _REBOOTS_TWICE)
    assert done.returncode == 0
    assert (tmp_path / "runs").read_text().strip() == "3"
    assert len((tmp_path / "boots").read_text().splitlines()) == 3
    assert int((tmp_path / "nspawn.pid").read_text()) > 0


def test_a_machine_held_down_is_not_started_again_after_its_reboot(tmp_path: Path) -> None:
    (tmp_path / "hold-down").touch()
    done = _supervise(tmp_path, _REBOOTS_TWICE)
    assert done.returncode == 133
    assert (tmp_path / "runs").read_text().strip() == "1"
