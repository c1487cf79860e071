"""Why a lab server cannot listen where it was told to: which process holds the port, or that the address
is not this host's. A bind error alone ("Address already in use") names neither the culprit nor the cure.

The listening sockets come from ``/proc/net/tcp`` and ``tcp6`` (this network namespace's, where the lab's
servers listen) and their owners from each process's ``fd`` links (``socket:[inode]``); as root every
process is visible, otherwise the owner may be unknown and the answer says so.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from pathlib import Path

PROC = Path("/proc")
_LISTEN = "0A"
"""The TCP state LISTEN in /proc/net/tcp."""


def listening_inodes(port: int, proc: Path = PROC) -> set[str]:
    """The inodes of sockets listening on TCP ``port`` (any address)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (proc / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def listens(pid: int, port: int, proc: Path = PROC) -> bool:
    """Whether the process ``pid`` itself holds a socket listening on ``port`` (a server that is up, not
    someone else answering on its port)."""
    return _holds(proc / str(pid), _sockets(port, proc))


def holders(port: int, proc: Path = PROC) -> list[str]:
    """``pid N (command line)`` of each process with a socket listening on ``port``."""
    sockets = _sockets(port, proc)
    found = []
    for entry in proc.iterdir() if sockets else ():
        if entry.name.isdigit() and _holds(entry, sockets):
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                found.append(f"pid {entry.name} ({b' '.join(argv).decode(errors='replace').strip()[:120]})")
    if sockets and not found:
        found.append("a process this user cannot see")
    return found


def why_not_listening(host: str, port: int) -> str:
    """Why ``host:port`` cannot be listened on, in words with the cure; "" when nothing explains it."""
    if port:
        taken = holders(port)
        if taken:
            return f"port {port} is held by {', '.join(taken)}: stop that, or choose another port"
    if not _local(host):
        return (f"{host} is not an address of this host (a configuration from another run, or a network "
                "that is gone)")
    return ""


def _local(host: str) -> bool:
    """Whether a socket can bind ``host`` here (any port)."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    with socket.socket(family) as sock:
        try:
            sock.bind((host, 0))
        except OSError as exc:
            return exc.errno != errno.EADDRNOTAVAIL
    return True


def _sockets(port: int, proc: Path) -> set[str]:
    return {f"socket:[{inode}]" for inode in listening_inodes(port, proc)}


def _holds(process: Path, sockets: set[str]) -> bool:
    """Whether ``/proc/<pid>`` has a descriptor on one of ``sockets``; False when it cannot be read."""
    try:
        return bool(sockets) and any(_link(fd) in sockets for fd in (process / "fd").iterdir())
    except OSError:
        return False


def _link(fd: Path) -> str:
    try:
        return str(fd.readlink())
    except OSError:
        return ""
