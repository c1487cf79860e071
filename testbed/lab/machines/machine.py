"""One nspawn machine: an overlay of the cached image, a NoCloud seed, a network namespace, systemd as PID 1.

    /var/lib/lcm-lab/machines/<name>/
        machine.json        name, address, image: what ``ls`` shows and teardown needs
        upper/ work/ root/  the overlay (root/ is the machine's /, mounted on the host)
        docker/             the machine's /var/lib/docker: a plain directory, because Docker's overlay2
                            cannot stack on the overlay root
        nspawn.pid          the systemd-nspawn process; its child is the machine's PID 1
        supervisor.pid      the process that starts nspawn again when the machine reboots (supervisor.py)
        boots               one line per start of the machine
        console.log         the machine's console (boot messages, cloud-init's output)

cloud-init reads the seed from ``/var/lib/cloud/seed/nocloud/`` (written 0600 before boot), exactly the
``meta-data``/``user-data`` pair a NoCloud ISO carries. nspawn runs detached (its own session), so machines
outlive the command that booted them; ``destroy`` is idempotent and works from what is on disk, which is how
``lcmctl machines down`` cleans up after a crashed run.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from testbed.lab.machines.host import LabError, run
from testbed.lab.machines.network import Subnet, leftover_namespaces, link_name, plug, unplug
from testbed.lab.machines.supervisor import HOLD_DOWN
from testbed.lab.processes import alive

STATE_ROOT = Path("/var/lib/lcm-lab/machines")
STOP_TIMEOUT = 30.0
"""Seconds a machine gets to power off (systemd stops its units) before nspawn is killed."""
LEADER_TIMEOUT = 30.0
"""Seconds from nspawn's start to the machine's init, beyond which a command into it gives up."""
_PF_KTHREAD = 0x00200000
MACHINE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_NSPAWN_OPTIONS = (
    "--boot", "--register=no", "--keep-unit", "--console=read-only",
    # Without --private-network, nspawn leaves /proc/sys/net read-only and drops CAP_NET_ADMIN even in the
    # namespace given by path; dockerd needs both (ip_forward, iptables).
    "--private-network",
    # runc joins a session keyring and loads BPF device filters: nspawn's default seccomp filter refuses both.
    "--system-call-filter=add_key keyctl bpf",
    # With --private-network nspawn's /sys is a tmpfs holding a few sysfs directories, not /sys/module: the
    # release's preflight could not see which kernel modules (overlay, vxlan) the shared kernel has loaded.
    "--bind-ro=/sys/module",
)


@dataclass(frozen=True)
class MachineRecord:
    name: str
    address: str
    image: str


class Machine:
    """A machine's files and process; every method works from what is on disk, so any process can stop it."""

    def __init__(self, name: str, state_root: Path = STATE_ROOT) -> None:
        link_name(name)  # refuses a name that cannot name the machine's interface
        self.name = name
        self.dir = state_root / name
        self.root = self.dir / "root"
        self.console = self.dir / "console.log"

    @property
    def record(self) -> MachineRecord | None:
        try:
            return MachineRecord(**json.loads((self.dir / "machine.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    async def create(
        self, image: Path, address: ipaddress.IPv4Address, subnet: Subnet, *, user_data: str,
    ) -> None:
        """Overlay, seed and network, ready to boot; a leftover machine of this name is destroyed first."""
        await self.destroy()
        self._make_dirs(MachineRecord(self.name, str(address), str(image)))
        layers = f"lowerdir={image},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}"
        await run(["mount", "-t", "overlay", "overlay", "-o", layers, str(self.root)])
        self._seed(user_data)
        await plug(self.name, address, subnet)

    def _make_dirs(self, record: MachineRecord) -> None:
        for sub in ("upper", "work", "root", "docker"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "machine.json").write_text(json.dumps(asdict(record)))

    def _seed(self, user_data: str) -> None:
        """The NoCloud seed; a fresh instance-id, so cloud-init treats each new machine as a first boot."""
        seed = self.root / "var/lib/cloud/seed/nocloud"
        seed.mkdir(parents=True, mode=0o700, exist_ok=True)
        meta = f"instance-id: {self.name}-{secrets.token_hex(4)}\nlocal-hostname: {self.name}\n"
        _write_private(seed / "meta-data", meta)
        _write_private(seed / "user-data", user_data)  # it holds the machine's token

    def boot(self) -> None:
        """Start systemd in the machine, under the supervisor that starts it again after a reboot; returns
        once nspawn runs (cloud-init and the agent follow on their own)."""
        argv = ["systemd-nspawn", *_NSPAWN_OPTIONS, f"--machine={self.name}", f"--directory={self.root}",
                f"--network-namespace-path=/run/netns/{link_name(self.name)}",
                f"--bind={self.dir / 'docker'}:/var/lib/docker"]
        (self.dir / "nspawn.pid").unlink(missing_ok=True)
        with self.console.open("ab") as console:
            proc = subprocess.Popen([sys.executable, "-m", "testbed.lab.machines.supervisor", str(self.dir),
                                     "--", *argv], stdin=subprocess.DEVNULL, stdout=console,
                                    stderr=subprocess.STDOUT, start_new_session=True, cwd="/")
        (self.dir / "supervisor.pid").write_text(f"{proc.pid}\n")
        for _ in range(200):  # the supervisor writes nspawn's pid as it starts it
            if (self.dir / "nspawn.pid").exists() or proc.poll() is not None:
                return
            time.sleep(0.05)

    def hold_down(self, held: bool = True) -> None:
        """Keep the machine down after its next reboot (the lab's "it did not come back"), or no longer."""
        if held:
            (self.dir / HOLD_DOWN).touch()
        else:
            (self.dir / HOLD_DOWN).unlink(missing_ok=True)

    def boots(self) -> int:
        """How many times the machine was started (its first boot and every reboot since)."""
        try:
            return len((self.dir / "boots").read_text().splitlines())
        except OSError:
            return 0

    def _supervisor_pid(self) -> int | None:
        try:
            pid = int((self.dir / "supervisor.pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"testbed.lab.machines.supervisor" in cmdline and _alive(pid) else None

    def nspawn_pid(self) -> int | None:
        """The running systemd-nspawn of this machine (checked by its command line, not just the pid file).

        A process in the middle of its exec shows an empty command line for a moment: right after ``boot``
        that is this machine's nspawn starting, not a machine that stopped (a kernel thread, whose command
        line is always empty, is not taken for it)."""
        try:
            pid = int((self.dir / "nspawn.pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        ours = f"--directory={self.root}".encode() in cmdline.split(b"\0") or \
            (not cmdline and not _kernel_thread(pid))
        return pid if ours and _alive(pid) else None

    def leader(self) -> int | None:
        """The machine's PID 1 as the host sees it (for nsenter): the child of its nspawn in a PID namespace
        of its own. None when the machine is not running, and for a moment after each start: nspawn's first
        child is a helper in the host's PID namespace until it has cloned the machine's init."""
        pid = self.nspawn_pid()
        if pid is None:
            return None
        try:
            host_side = os.readlink(f"/proc/{pid}/ns/pid")
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return None
        for child in children:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{child}/ns/pid") != host_side:
                    return int(child)
        return None

    async def _running_leader(self) -> int:
        """The leader, waited for while nspawn runs but has not started the machine's init yet (right after a
        boot or a reboot); LabError once nspawn is gone, or when its init never comes."""
        deadline = time.monotonic() + LEADER_TIMEOUT
        while (leader := self.leader()) is None:
            if self.nspawn_pid() is None:
                raise LabError(f"machine {self.name} is not running")
            if time.monotonic() > deadline:
                raise LabError(f"systemd-nspawn of machine {self.name} runs but started no init within "
                               f"{LEADER_TIMEOUT:g} s (console: {self.console})")
            await asyncio.sleep(0.05)
        return leader

    async def exec(
        self, argv: Sequence[str], *, check: bool = True, limit: float = 300.0, stdin: bytes | None = None,
    ) -> tuple[int, str]:
        """Run a command inside the machine, with the machine's own clean environment."""
        leader = await self._running_leader()
        return await run(["nsenter", "-t", str(leader), "-m", "-u", "-i", "-n", "-p", "--",
                          "env", "-i", f"PATH={MACHINE_PATH}", "LANG=C.UTF-8", *argv],
                         check=check, limit=limit, stdin=stdin)

    async def journal(self, unit: str = "lcm-agent.service", *, lines: int | None = None) -> str:
        """The unit's journal in the machine, one message per line as the unit wrote it."""
        argv = ["journalctl", "--no-pager", "-o", "cat", "-u", unit]
        if lines is not None:
            argv += ["-n", str(lines)]
        return (await self.exec(argv))[1]

    async def stop(self, grace: float = STOP_TIMEOUT) -> None:
        """Power the machine off (nspawn turns SIGTERM into a clean shutdown); kill it after ``grace``. The
        supervisor is told first, so that it does not start the machine again."""
        supervisor = self._supervisor_pid()
        if supervisor is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(supervisor, signal.SIGTERM)
        await self._stop_nspawn(grace)
        if supervisor is not None and not await _exited(supervisor, 10.0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(supervisor, signal.SIGKILL)

    async def _stop_nspawn(self, grace: float) -> None:
        """SIGTERM (nspawn powers the machine off), then SIGKILL to the machine's init and nspawn's group.
        The init goes first: it is in a session of its own, so killing nspawn alone would leave the whole
        machine running, orphaned, with nothing left that names it."""
        pid = self.nspawn_pid()
        if pid is None:
            return
        leader = self.leader()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if await _exited(pid, grace):
            return
        if leader is None:
            leader = self.leader()
        with contextlib.suppress(ProcessLookupError):
            if leader is not None:
                os.kill(leader, signal.SIGKILL)  # the PID namespace's init: the kernel kills all in it
            os.killpg(pid, signal.SIGKILL)
        if not await _exited(pid, 10.0):
            raise LabError(f"systemd-nspawn of machine {self.name} (pid {pid}) survives SIGKILL")

    async def destroy(self) -> None:
        """Stop, unmount, unplug and delete; safe to call on a machine that is half made or already gone."""
        await self.stop()
        if _mounted(self.root):
            await run(["umount", str(self.root)])
        await unplug(self.name)
        shutil.rmtree(self.dir, ignore_errors=True)


def known_machines(state_root: Path = STATE_ROOT) -> list[Machine]:
    """Every machine with files under ``state_root`` or a leftover network namespace."""
    names = set(leftover_namespaces())
    if state_root.is_dir():
        names.update(p.name for p in state_root.iterdir() if p.is_dir())
    return [Machine(name, state_root) for name in sorted(names)]


async def _exited(pid: int, within: float) -> bool:
    for _ in range(int(within * 10)):
        if not _alive(pid):
            return True
        await asyncio.sleep(0.1)
    return not _alive(pid)


def _mounted(path: Path) -> bool:
    return os.path.ismount(path)


def _alive(pid: int) -> bool:
    """Running, not a zombie: a machine this process booted is reaped here once it has exited."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return alive(pid)


def _kernel_thread(pid: int) -> bool:
    """PF_KTHREAD in the process's flags (the ninth field of /proc/<pid>/stat); True when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return bool(int(fields[6]) & _PF_KTHREAD)
    except (OSError, IndexError, ValueError):
        return True


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
