#!/usr/bin/python
"""What preflight checks, measured on this node: OS, kernel, memory, free disk, clock sync, busy ports.

Reports values only; the playbook compares them with the release's minimums, one named assertion each, so a
failure says which requirement is not met. Ports are read in the node's own network namespace; a port held
by dockerd itself counts as free (a node re-checked after it joined the swarm must still pass), and so does
a kernel socket with no owning process (the VXLAN device dockerd's overlay driver creates on 4789/udp).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import shutil

from ansible.module_utils.basic import AnsibleModule

TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised


def os_release():
    values = {}
    try:
        with open("/etc/os-release") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                values[key] = value.strip('"')
    except OSError:
        pass
    return {"id": values.get("ID", ""), "version_id": values.get("VERSION_ID", ""),
            "name": values.get("PRETTY_NAME", "")}


def memory_mib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0


def disk_free_gib(path):
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    return round(shutil.disk_usage(path or "/").free / 2**30, 1)


class _Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint)] + [(f"f{i}", ctypes.c_long) for i in range(4)] + [
        ("status", ctypes.c_int)] + [(f"g{i}", ctypes.c_long) for i in range(14)] + [
        ("tai", ctypes.c_int), ("pad", ctypes.c_int * 11)]


def clock_synchronised():
    """The kernel's own answer (what timedatectl shows as "System clock synchronized")."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return libc.adjtimex(ctypes.byref(_Timex())) != TIME_ERROR


def busy_ports(ports):
    """``proto/port`` entries of ``ports`` held by a listener other than dockerd."""
    import psutil

    busy = []
    for entry in ports:
        number, _, proto = entry.partition("/")
        kind = "udp" if proto == "udp" else "tcp"
        for conn in psutil.net_connections(kind=kind):
            if conn.laddr and conn.laddr.port == int(number) and (kind == "udp" or conn.status == "LISTEN"):
                if conn.pid is None:
                    continue
                owner = _process_name(conn.pid)
                if owner != "dockerd":
                    busy.append(f"{entry} ({owner or f'pid {conn.pid}'})")
    return sorted(set(busy))


def _process_name(pid):
    if pid is None:
        return ""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def main():
    module = AnsibleModule(argument_spec={
        "disk_path": {"type": "path", "default": "/var/lib/docker"},
        "ports": {"type": "list", "elements": "str", "default": []},
    }, supports_check_mode=True)
    module.exit_json(changed=False, host={
        "os": os_release(), "kernel": platform.release(), "memory_mib": memory_mib(),
        "disk_free_gib": disk_free_gib(module.params["disk_path"]), "clock_synchronised": clock_synchronised(),
        "busy_ports": busy_ports(module.params["ports"]),
    })


if __name__ == "__main__":
    main()
