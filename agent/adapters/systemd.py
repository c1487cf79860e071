"""systemd's notify protocol (``Type=notify``, ``WatchdogSec=``) without libsystemd or another package.

The protocol is a datagram of ``KEY=value`` lines sent to the unix socket named by ``$NOTIFY_SOCKET``
(``@name`` means Linux's abstract namespace). Outside systemd the variable is unset and every call here is
a no-op, so the daemon calls these unconditionally. A failed send is logged and reported as False, never
raised: losing a status line must not stop the agent (a missed watchdog ping is systemd's to judge).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


def notify(*assignments: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``KEY=value`` lines; True when a message was sent, False when there is no socket or it failed."""
    address = _socket_address((os.environ if env is None else env).get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(assignments).encode(), address)
    except OSError as exc:
        log.warning("sd_notify to %r failed: %s", address, exc)
        return False
    return True


def notify_ready(env: Mapping[str, str] | None = None) -> bool:
    """Start-up is complete: systemd marks the unit active and starts what waits for it."""
    return notify("READY=1", env=env)


def notify_reloading(env: Mapping[str, str] | None = None) -> bool:
    """A reload (SIGHUP) began; send ``notify_ready`` when it is done."""
    # MONOTONIC_USEC lets systemd (253+) match this reload to the one it asked for.
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}", env=env)


def notify_stopping(env: Mapping[str, str] | None = None) -> bool:
    """Shutdown began: systemd shows "deactivating" instead of thinking the service hung."""
    return notify("STOPPING=1", env=env)


def notify_status(text: str, env: Mapping[str, str] | None = None) -> bool:
    """One line for ``systemctl status``; newlines would end the assignment, so they become spaces."""
    return notify("STATUS=" + " ".join(text.splitlines()), env=env)


def notify_watchdog(env: Mapping[str, str] | None = None) -> bool:
    """The liveness ping; send it every ``watchdog_interval() / 2`` seconds."""
    return notify("WATCHDOG=1", env=env)


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds within which systemd expects a ping, or None when the watchdog is off or not for this process.

    systemd sets ``WATCHDOG_PID`` so a child that inherited the environment does not take the variables as
    meant for itself; a malformed value counts as "off", as in ``sd_watchdog_enabled``.
    """
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
        pid = int(env["WATCHDOG_PID"]) if env.get("WATCHDOG_PID") else os.getpid()
    except ValueError:
        return None
    if usec <= 0 or pid != os.getpid():
        return None
    return usec / 1_000_000


def _socket_address(value: str) -> str | bytes | None:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # unset, or a form (vsock:) systemd uses only for VMs and containers we are not
