#!/usr/bin/python
"""Kernel parameters: written to a ``sysctl.d`` file for the next boot and applied now through /proc/sys.

(``ansible.posix.sysctl`` is not part of ansible-core, which is all the agent ships.) Network parameters
are per network namespace: run inside a lab node, they change that node only.
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule


def proc_path(name):
    return "/proc/sys/" + name.replace(".", "/")


def main():
    module = AnsibleModule(argument_spec={
        "values": {"type": "dict", "required": True},
        "conf": {"type": "path", "required": True},
    }, supports_check_mode=True)
    values = {str(k): str(v) for k, v in module.params["values"].items()}
    applied, missing = [], []
    for name, value in sorted(values.items()):
        path = proc_path(name)
        if not os.path.exists(path):
            missing.append(name)
            continue
        with open(path) as f:
            current = " ".join(f.read().split())
        if current != value:
            applied.append(name)
            if not module.check_mode:
                with open(path, "w") as f:
                    f.write(value)
    if missing:
        module.fail_json(msg="kernel parameters unknown to this kernel: " + ", ".join(missing))
    conf = module.params["conf"]
    text = "# Written by lcm-agent (prepare/sysctl): kernel parameters for Swarm.\n" + "".join(
        f"{k} = {v}\n" for k, v in sorted(values.items()))
    current_text = open(conf).read() if os.path.exists(conf) else None
    written = current_text != text
    if written and not module.check_mode:
        os.makedirs(os.path.dirname(conf), exist_ok=True)
        with open(conf, "w") as f:
            f.write(text)
    module.exit_json(changed=bool(applied) or written, applied=applied)


if __name__ == "__main__":
    main()
