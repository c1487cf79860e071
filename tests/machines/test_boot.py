"""Real machines: systemd-nspawn boots the image, cloud-init reads the NoCloud seed, installs the agent from
the lab's air-gapped mirror and starts it under systemd; the agent registers its LCMMachine. A machine with
a bad token stays Uninitialized, and the machine's journal and the CLI say why. Docker Engine installs from
the lab's apt mirror and runs containers there.

Two machines boot together for the whole module (one good, one with a bad token): booting is the slow part.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from machines_harness import Lab

from agent import __version__
from testbed.lab.machines.machine import Machine
from testbed.lab.machines.sets import registered

pytestmark = pytest.mark.asyncio(loop_scope="module")

LCMCTL = str(Path(sys.executable).with_name("lcmctl"))
BAD_TOKEN = "this-token-was-never-issued"
BUSYBOX = Path("/bin/busybox")
HAVE_BUSYBOX = BUSYBOX.is_file()


@dataclass(frozen=True)
class Machines:
    good: Machine
    bad: Machine


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def machines(lab: Lab) -> AsyncIterator[Machines]:
    good = await lab.fleet.add(f"{lab.tag}-ok", machine_type="worker")
    # The good machine unpacks the agent's built tree, the bad one installs it from the wheel and the index
    # (a site without a tree): each way must leave an agent that runs.
    bad = await lab.fleet.add(f"{lab.tag}-bad", machine_type="worker", token=BAD_TOKEN, from_wheel=True)
    yield Machines(good, bad)


async def test_cloud_init_installs_the_agent_and_systemd_runs_it_until_it_registers(
    lab: Lab, machines: Machines,
) -> None:
    good = machines.good
    obj = (await lab.fleet.wait_registered([good.name]))[good.name]
    status = obj["status"]
    assert good.record is not None
    assert {"type": "InternalIP", "address": good.record.address} in status["addresses"]
    assert status["agentVersion"] == __version__
    assert status["hostInfo"]["os"]
    assert status["hostInfo"]["kernelVersion"]
    assert status["state"] != "Uninitialized"

    assert "status: done" in (await good.exec(["cloud-init", "status", "--wait"]))[1]
    assert (await good.exec(["systemctl", "is-active", "lcm-agent.service"]))[1].strip() == "active"
    assert (await good.exec(["readlink", "/opt/lcm-agent/current"]))[1].strip() == f"versions/{__version__}"
    marker = f"/opt/lcm-agent/versions/{__version__}/.lcm-agent-wheel-sha256"
    assert (await good.exec(["cat", marker]))[1].strip() == lab.fleet.agent.sha256
    # It unpacked the tree (the release's wheel digest recorded all the same) and kept no archive.
    assert lab.fleet.agent.tree_url
    assert (await good.exec(["ls", "/opt/lcm-agent"]))[1].split() == ["current", "versions"]
    _, modes = await good.exec(["stat", "-c", "%n %a %U", "/etc/lcm-agent", "/etc/lcm-agent/config.yaml",
                                "/etc/lcm-agent/token"])
    assert modes.split("\n")[:3] == ["/etc/lcm-agent 700 root", "/etc/lcm-agent/config.yaml 600 root",
                                     "/etc/lcm-agent/token 600 root"]


async def test_a_bad_token_leaves_the_machine_uninitialized_with_the_401_in_its_journal_and_the_cli(
    lab: Lab, machines: Machines,
) -> None:
    bad = machines.bad
    journal = await _journal_until(bad, "refuses this machine's credentials", within=300)
    assert "401" in journal  # its agent, installed from the wheel, runs and is refused
    assert BAD_TOKEN not in journal  # the agent redacts its own token, even a wrong one
    marker = f"/opt/lcm-agent/versions/{__version__}/.lcm-agent-wheel-sha256"
    assert (await bad.exec(["cat", marker]))[1].strip() == lab.fleet.agent.sha256
    obj = await lab.fleet.lcm_machine(bad.name)
    assert obj is not None
    assert not registered(obj)
    await bad.exec(["cloud-init", "status", "--wait"], check=False)  # exit 1 when cloud-init reports errors

    ls = [LCMCTL, "machines", "ls", "--state-dir", str(lab.state_dir)]
    done = await asyncio.to_thread(subprocess.run, ls, capture_output=True, text=True, timeout=120,
                                   check=False)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith(f"not registered: {bad.name}"))
    assert f"{bad.name}: Uninitialized" in line
    assert "cloud-init done" in line  # the agent's start does not hold cloud-init up
    assert "lcm-agent is starting (it reports ready once registered)" in line
    assert "the agent's last error: the API refuses this machine's credentials" in line


async def test_docker_engine_installs_from_the_lab_mirror_and_runs_containers_under_systemd(
    lab: Lab, machines: Machines,
) -> None:
    good = machines.good
    await good.exec(["cloud-init", "status", "--wait"])  # cloud-init's own apt run is over
    await good.exec(["sh", "-c", f"echo '{lab.fleet.apt_source}' > /etc/apt/sources.list.d/lcm-lab.list"])
    _, update = await good.exec(["apt-get", "update"])
    assert str(lab.fleet.settings.subnet.gateway) in update
    await good.exec(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "docker.io"])
    assert (await good.exec(["systemctl", "is-active", "docker.service"]))[1].strip() == "active"
    _, version = await good.exec(["docker", "version", "--format", "{{.Server.Version}}"])
    assert version.strip()
    if not HAVE_BUSYBOX:
        pytest.skip("/bin/busybox (busybox-static) is missing: the engine runs, no container was tried")
    await good.exec(["docker", "import", "-", "lab-busybox"], stdin=_busybox_tar())
    _, hello = await good.exec(["docker", "run", "--rm", "lab-busybox", "/bin/busybox", "echo", "hello"])
    assert hello.strip() == "hello"


async def _journal_until(machine: Machine, text: str, within: float) -> str:
    deadline = time.monotonic() + within
    journal = ""
    while time.monotonic() < deadline:
        journal = await machine.journal()
        if text in journal:
            return journal
        await asyncio.sleep(2)
    pytest.fail(f"{text!r} never appeared in the journal of lcm-agent on {machine.name}:\n{journal[-3000:]}")


def _busybox_tar() -> bytes:
    """A one-file image (busybox-static) to import: no registry is reachable from a machine."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
    return buffer.getvalue()


async def test_a_machine_that_reboots_comes_back_with_a_new_boot_and_its_agent_running(
    lab: Lab, machines: Machines,
) -> None:
    good = machines.good
    await lab.fleet.wait_registered([good.name])
    boot_id = ["cat", "/proc/sys/kernel/random/boot_id"]
    before, boots = (await good.exec(boot_id))[1].strip(), good.boots()
    await good.exec(["sh", "-c", f"echo {before} > /var/lib/before-reboot"])
    await good.exec(["systemctl", "reboot"], check=False)  # systemd inside goes down; nspawn exits 133
    deadline = time.monotonic() + 300
    while good.boots() == boots:
        assert time.monotonic() < deadline, "the lab did not start the machine again after its reboot"
        await asyncio.sleep(0.5)
    agent = ["systemctl", "is-active", "lcm-agent.service"]
    while (await good.exec(agent, check=False))[1].strip() != "active":
        assert time.monotonic() < deadline, "the agent did not come back after the reboot"
        await asyncio.sleep(1)
    assert (await good.exec(boot_id))[1].strip() != before
    assert good.boots() == boots + 1
    # The same overlay (a file written before is there) and network namespace (the agent's API is reached).
    assert (await good.exec(["cat", "/var/lib/before-reboot"]))[1].strip() == before
    assert good.record is not None
    _, addresses = await good.exec(["ip", "-4", "-o", "addr", "show", "eth0"])
    assert good.record.address in addresses


def _pid_namespace(pid: str | int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:  # gone, or a zombie
        return None


def _processes_in(namespace: str | None) -> list[str]:
    return [p.name for p in Path("/proc").glob("[0-9]*") if _pid_namespace(p.name) == namespace]


async def test_a_machine_that_hangs_in_its_poweroff_is_killed_with_all_its_processes(
        machines: Machines) -> None:
    """stop() kills nspawn when the machine has not powered off in time (here a unit that never stops). The
    machine's init is in a session of its own and must be killed too: once it survived, orphaned, a whole
    machine running (its dockerd and agent) with nothing left that named it, past the lab's teardown."""
    bad = machines.bad
    await bad.exec(["systemd-run", "--unit=never-stops", "-p", "TimeoutStopSec=infinity", "--",
                    "sh", "-c", "trap '' TERM; while :; do sleep 1; done"])
    leader = bad.leader()
    assert leader is not None
    inside = _pid_namespace(leader)
    await bad.stop(grace=1)
    assert bad.leader() is None
    deadline = time.monotonic() + 10
    while left := _processes_in(inside):
        assert time.monotonic() < deadline, f"the machine's processes outlived its nspawn: {left}"
        await asyncio.sleep(0.1)
