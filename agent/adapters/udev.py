"""Hardware changes as the kernel and udev announce them: disks and NICs added, removed or changed.

The netlink monitor's socket is read on the event loop (``add_reader``): no thread, nothing to poll. Where
udevd runs (``/run/udev/control`` exists) the monitor listens to udev's events, which arrive after udev's
rules ran (``/dev/disk/by-*`` links exist, ``ID_*`` properties are set). Without udevd (containers, minimal
VMs) it falls back to the kernel's own uevents: the same devices and actions, without udev's properties.
Where even that socket cannot be opened (no libudev, netlink refused), the monitor says so once and does
nothing: host facts are still re-read on their period, only later.

Interfaces Docker creates per container (``veth*``, ``docker*``, ``br-*``) are not hardware and come and go
all day; they are ignored, as in hostInfo.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyudev

from agent.adapters.host import CONTAINER_NIC_PREFIXES

log = logging.getLogger(__name__)

UDEV_CONTROL = Path("/run/udev/control")
SUBSYSTEMS = ("block", "net")
_ACTIONS = {"add": "added", "remove": "removed", "change": "changed", "move": "renamed"}
_WANTED = {"block": frozenset({"add", "remove", "change"}), "net": frozenset({"add", "remove", "move"})}
"""A disk's ``change`` is a resize or new media (a loop device attached); a NIC's is link noise."""
_PROPERTIES = ("DEVNAME", "DEVTYPE", "INTERFACE", "ID_BUS", "ID_MODEL", "ID_SERIAL", "ID_PATH",
               "ID_NET_DRIVER")
"""Properties worth reporting; the rest (SEQNUM, MAJOR, USEC_INITIALIZED...) say nothing to an operator."""


@dataclass(frozen=True)
class HardwareChange:
    """One device event; ``action`` is ``added``, ``removed``, ``changed`` or ``renamed``."""

    action: str
    subsystem: str
    device: str
    devpath: str
    properties: Mapping[str, str]


def change_of(action: str, subsystem: str, name: str, devpath: str,
              properties: Mapping[str, str]) -> HardwareChange | None:
    """The change worth reporting for a raw event, or None for noise."""
    if action not in _WANTED.get(subsystem, ()):
        return None
    if subsystem == "net" and name.startswith(CONTAINER_NIC_PREFIXES):
        return None
    kept = {key: properties[key] for key in _PROPERTIES if properties.get(key)}
    return HardwareChange(_ACTIONS[action], subsystem, name, devpath, kept)


class HardwareMonitor:
    """Calls ``on_change`` on the event loop for every reported change; ``run`` until ``stopping``."""

    def __init__(self, on_change: Callable[[HardwareChange], None], *,
                 udev_control: Path = UDEV_CONTROL) -> None:
        self.on_change = on_change
        self.udev_control = udev_control
        self.source = ""
        """``udev``, ``kernel``, or "" when the monitor could not start."""

    async def run(self, stopping: asyncio.Event) -> None:
        monitor = self._open()
        if monitor is None:
            await stopping.wait()
            return
        loop = asyncio.get_running_loop()
        loop.add_reader(monitor.fileno(), self._drain, monitor)
        try:
            await stopping.wait()
        finally:
            loop.remove_reader(monitor.fileno())

    def _open(self) -> Any:
        """The started monitor, or None (logged once, with what is lost)."""
        self.source = "udev" if self.udev_control.exists() else "kernel"
        try:
            # The Context loads libudev.so, which a minimal host may lack (ImportError).
            monitor = pyudev.Monitor.from_netlink(pyudev.Context(), source=self.source)
            for subsystem in SUBSYSTEMS:
                monitor.filter_by(subsystem)
            monitor.start()
        except (ImportError, OSError) as exc:
            log.warning("hardware monitor disabled (cannot open the uevent socket: %s); disk and NIC "
                        "changes reach hostInfo only with the periodic refresh", exc)
            self.source = ""
            return None
        if self.source == "kernel":
            log.warning("udevd is not running (no %s): hardware monitor reads raw kernel uevents; devices "
                        "are reported without udev's properties (ID_*, /dev/disk links)", self.udev_control)
        else:
            log.info("hardware monitor listening to udev (block, net)")
        return monitor

    def _drain(self, monitor: Any) -> None:
        """Read every queued event without blocking (the socket is readable, maybe more than once)."""
        while True:
            try:
                device = monitor.poll(timeout=0)
            except OSError as exc:
                log.warning("hardware monitor: reading a uevent failed: %s", exc)
                return
            if device is None:
                return
            change = change_of(str(device.action or ""), str(device.subsystem or ""), str(device.sys_name),
                               str(device.device_path), dict(device.properties))
            if change is not None:
                self.on_change(change)
