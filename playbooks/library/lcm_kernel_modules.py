#!/usr/bin/python
"""Kernel modules swarm networking needs: loaded now (modprobe when possible) and, given ``conf``, listed in
``modules-load.d`` for the next boot. A module neither loaded nor loadable fails with its name and why.

"Loaded" counts modules built into the kernel too: they show in /sys/module only when they have parameters,
so a module's own sysctl or proc directory (br_netfilter's /proc/sys/net/bridge) also counts.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from ansible.module_utils.basic import AnsibleModule

SIGNS = {"br_netfilter": "/proc/sys/net/bridge", "ip_vs": "/proc/net/ip_vs"}


def loaded(name):
    if os.path.isdir(f"/sys/module/{name}") or os.path.exists(SIGNS.get(name, "/nonexistent")):
        return True
    builtin = f"/lib/modules/{os.uname().release}/modules.builtin"
    for listing in ("/proc/modules", builtin):
        try:
            with open(listing) as f:
                if any(line.split()[0].rsplit("/", 1)[-1].split(".ko")[0] == name for line in f if line.strip()):
                    return True
        except OSError:
            continue
    return False


def load(name):
    """Try modprobe; returns "" on success, else why it could not load."""
    if shutil.which("modprobe") is None:
        return "modprobe is not installed"
    proc = subprocess.run(["modprobe", name], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return proc.stderr.strip() or f"modprobe exited {proc.returncode}"
    return "" if loaded(name) else "modprobe succeeded but the module does not show as loaded"


def main():
    module = AnsibleModule(argument_spec={
        "names": {"type": "list", "elements": "str", "required": True},
        "conf": {"type": "path"},
    }, supports_check_mode=True)
    names = module.params["names"]
    changed, failures, loaded_now = False, [], []
    for name in names:
        if loaded(name):
            continue
        if module.check_mode:
            changed = True
            continue
        reason = load(name)
        if reason:
            failures.append(f"{name} ({reason})")
        else:
            loaded_now.append(name)
            changed = True
    if failures:
        module.fail_json(msg="required kernel modules are neither loaded nor loadable: " + ", ".join(failures))
    conf = module.params["conf"]
    if conf is None:  # preflight: load, do not persist
        module.exit_json(changed=changed, loaded_now=loaded_now)
    text = "# Written by lcm-agent (prepare/sysctl): kernel modules for Swarm overlay networks.\n" + "".join(
        f"{n}\n" for n in names)
    current = open(conf).read() if os.path.exists(conf) else None
    if current != text:
        changed = True
        if not module.check_mode:
            os.makedirs(os.path.dirname(conf), exist_ok=True)
            with open(conf, "w") as f:
                f.write(text)
    module.exit_json(changed=changed, loaded_now=loaded_now)


if __name__ == "__main__":
    main()
