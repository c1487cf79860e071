"""A lab node's dockerd: started inside the node's namespaces, stopped, reloaded, and its service script.

The script ``<node>/dockerd-ctl start|stop|restart|reload|status`` (``python -m testbed.lab.netns.dockerd
NODE_DIR ACTION``) is the node's service manager: the release's playbooks call it as ``lcm_docker_service``
where a real host would use systemd, and the lab starts dockerd through the same code. dockerd gets the node's
own data-root, exec-root, pidfile and socket, no default bridge and no iptables (the host's firewall is not
the lab's), and ``daemon.json`` as its config file, which the playbooks own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

from testbed.lab.netns.namespaces import LabError
from testbed.lab.netns.node import LabNode
from testbed.lab.processes import alive

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
_POLL = 0.1
CONTAINERD_ATTEMPTS = 3
CONTAINERD_TIMEOUT = "timeout waiting for containerd to start"
"""What dockerd 20.10 says when it exits because its containerd did not answer in 15 s."""
EXIT_NOT_RUNNING = 3
"""``status`` exit code when dockerd is not running (the LSB convention systemctl uses too)."""


def dockerd_argv(node: LabNode) -> list[str]:
    return node.nsenter(
        "dockerd", "--bridge", "none", "--iptables=false", "--ip6tables=false",
        "--exec-root", str(node.exec_root),
        "--pidfile", str(node.pid_file), "-H", node.docker_host, "--config-file", str(node.config_path),
    )


def seed_config(node: LabNode) -> dict[str, str]:
    """The node-local part of ``daemon.json``, written once when the node is made; the playbooks keep keys
    they do not own. ``data-root`` lives here rather than on the command line so that a release may still
    set it (dockerd refuses an option given both ways); the key file would otherwise be the host's
    ``/etc/docker/key.json``, shared by every node (one engine ID for all)."""
    return {"data-root": str(node.data_root), "deprecated-key-path": str(node.dir / "key.json")}


def pid(node: LabNode) -> int | None:
    """The running dockerd's pid, from its pidfile, checked against the process table."""
    return _live(node.pid_file, b"dockerd")


def _containerd_pid_file(node: LabNode) -> Path:
    """Where dockerd keeps the pid of the containerd it started (``<exec-root>/containerd``)."""
    return node.exec_root / "containerd" / "containerd.pid"


def _live(pid_file: Path, program: bytes) -> int | None:
    """The pid in ``pid_file`` if that process runs ``program`` (a zombie has no command line)."""
    try:
        value = int(pid_file.read_text().strip())
        with open(f"/proc/{value}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0")[0]
    except (OSError, ValueError):
        return None
    return value if argv0.endswith(program) else None


def ping(node: LabNode) -> bool:
    """True when the engine answers ``GET /_ping`` on its socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(node.socket_path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return sock.recv(64).split(b"\r\n")[0].endswith(b" 200 OK")
    except OSError:
        return False


def start(node: LabNode, *, timeout: float = START_TIMEOUT) -> None:
    """Start dockerd (a no-op when it runs) and wait until it answers. A dockerd that exits instead (a bad
    daemon.json) raises LabError with its exit status and the end of its log as soon as it has exited.

    dockerd gives the containerd it starts a fixed 15 s to answer, and exits when it does not; on a loaded
    host (two cores, a suite under coverage, machines booting) that happens with nothing wrong. systemd
    restarts such a dockerd (``Restart=always`` in docker.service); the lab's service manager does too, after
    stopping the containerd left behind, at most ``CONTAINERD_ATTEMPTS`` times within ``timeout``."""
    if pid(node) is not None:
        if ping(node):
            return
    else:
        _drop_stale_pid_files(node)
    deadline = time.monotonic() + timeout
    attempt = 1
    while True:
        offset = node.log_file.stat().st_size if node.log_file.exists() else 0
        returncode = _launch_and_wait(node, deadline, offset)
        if returncode is None:
            return
        said = _log_since(node, offset)
        if CONTAINERD_TIMEOUT not in said or attempt == CONTAINERD_ATTEMPTS or time.monotonic() >= deadline:
            raise LabError(f"dockerd of {node.name} did not start, it exited with status {returncode}: "
                           f"{said}")
        _stop_pid(_live(_containerd_pid_file(node), b"containerd"), STOP_TIMEOUT)
        _drop_stale_pid_files(node)
        with open(node.log_file, "a") as log:
            log.write(f"lab: dockerd exited waiting for its containerd; containerd stopped, dockerd started "
                      f"again (attempt {attempt + 1} of {CONTAINERD_ATTEMPTS})\n")
        attempt += 1


def _launch_and_wait(node: LabNode, deadline: float, offset: int) -> int | None:
    """One dockerd, waited for until it answers (None) or exits (its status); LabError at the deadline,
    with its log from ``offset`` on."""
    with open(node.log_file, "ab") as log:
        # A session of its own, so that the caller's Ctrl-C or exit does not reach it; the child is ours,
        # so its exit is seen at once and reaped (a zombie's pid would look alive to the next dockerd).
        process = subprocess.Popen(dockerd_argv(node), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True)
    threading.Thread(target=process.wait, name=f"reap-dockerd-{node.name}", daemon=True).start()
    while time.monotonic() < deadline:
        if ping(node):
            return None
        if process.poll() is not None:
            return process.returncode
        time.sleep(_POLL)
    containerd = _live(_containerd_pid_file(node), b"containerd")
    raise LabError(f"dockerd of {node.name} (pid {process.pid}) did not answer in time; its containerd "
                   f"{'is pid ' + str(containerd) if containerd else 'is not running'}: "
                   f"{_log_since(node, offset)}")


def _drop_stale_pid_files(node: LabNode) -> None:
    """Pidfiles left by a killed dockerd and its containerd make the next dockerd refuse to start (or wait
    for a containerd that is not there) while the number is alive: a zombie nobody reaps, or another
    process that reused it. A file whose pid runs no such program is stale."""
    for pid_file, program in ((node.pid_file, b"dockerd"), (_containerd_pid_file(node), b"containerd")):
        if _live(pid_file, program) is None:
            pid_file.unlink(missing_ok=True)


def _log_since(node: LabNode, offset: int) -> str:
    with open(node.log_file, "rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").strip().splitlines()
    return "\n".join(lines[-5:]) or "no output"


def stop(node: LabNode, *, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, wait (dockerd stops its containerd), SIGKILL after ``timeout``; a no-op when stopped."""
    _stop_pid(pid(node), timeout)


def _stop_pid(target: int | None, timeout: float) -> None:
    """SIGTERM ``target``, SIGKILL after ``timeout``, back once it is gone (or a zombie: a dead pid whose
    /proc entry no longer names the program)."""
    if target is None:
        return
    os.kill(target, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(target):
        if time.monotonic() > deadline:
            os.kill(target, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(_POLL)


def reload(node: LabNode) -> None:
    """SIGHUP: dockerd re-reads daemon.json and applies the options it can change live (labels, mirrors)."""
    target = pid(node)
    if target is None:
        raise LabError(f"dockerd of {node.name} is not running; nothing to reload")
    os.kill(target, signal.SIGHUP)


def busybox_rootfs(dest: Path, *, busybox: Path = Path("/bin/busybox")) -> Path:
    """A root filesystem tarball of a static busybox and its applet links, for ``import_image``: an image
    with no registry and no network."""
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout
    with tarfile.open(dest, "w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in sorted(set(applets.split()) - {"busybox"}):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return dest


def import_image(node: LabNode, tarball: Path, reference: str) -> str:
    """``docker import`` of a rootfs tarball into the node's engine as ``reference`` (``name:tag``)."""
    import docker  # the SDK is heavy; only this helper needs it

    repository, _, tag = reference.partition(":")
    client = docker.APIClient(base_url=node.docker_host, version="auto")
    try:
        client.import_image_from_file(str(tarball), repository=repository, tag=tag or "latest")
        image_id: str = client.inspect_image(reference)["Id"]
    finally:
        client.close()
    return image_id


ACTIONS = ("start", "stop", "restart", "reload", "status")


def main(argv: list[str]) -> int:
    """The node's service script: ``dockerd-ctl NODE_DIR start|stop|restart|reload|status``."""
    if len(argv) != 2 or argv[1] not in ACTIONS:
        print(f"usage: dockerd-ctl NODE_DIR {{{'|'.join(ACTIONS)}}}", file=sys.stderr)
        return 2
    node = LabNode.load(Path(argv[0]))
    action = argv[1]
    try:
        if action == "status":
            running = pid(node) is not None and ping(node)
            print(f"dockerd of {node.name}: {'running' if running else 'stopped'}")
            return 0 if running else EXIT_NOT_RUNNING
        if action in ("stop", "restart"):
            stop(node)
        if action in ("start", "restart"):
            start(node)
        if action == "reload":
            reload(node)
    except LabError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
