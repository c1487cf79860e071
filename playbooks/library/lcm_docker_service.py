#!/usr/bin/python
"""dockerd started, restarted or reloaded through the node's service manager (docs/swarm.md): systemd on a
real host (the unit also enabled at boot), or the executable ``lcm_docker_service`` taking start, stop,
restart, reload and status (exit 0 running, 3 stopped) where there is no systemd (lab nodes).

One task instead of one per manager and step: every task costs the agent a worker process.
"""

from __future__ import annotations

import subprocess

from ansible.module_utils.basic import AnsibleModule

VERBS = {"started": "start", "restarted": "restart", "reloaded": "reload"}


def _run(module, argv):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).strip()
        module.fail_json(msg=f"{' '.join(argv)} failed (exit {proc.returncode}): {output}",
                         stderr=output, rc=proc.returncode)
    return proc


def systemd(module, unit, action):
    changed = False
    if subprocess.run(["systemctl", "is-enabled", "--quiet", unit], check=False).returncode != 0:
        changed = True
        if not module.check_mode:
            _run(module, ["systemctl", "enable", unit])
    running = subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False).returncode == 0
    if action != "started" or not running:
        changed = True
        if not module.check_mode:
            verb = "start" if not running and action == "reloaded" else VERBS[action]
            _run(module, ["systemctl", verb, unit])
    return changed


def command(module, service, action):
    status = subprocess.run([service, "status"], capture_output=True, text=True, check=False)
    if status.returncode not in (0, 3):
        module.fail_json(msg=f"{service} status failed (exit {status.returncode}): {status.stderr.strip()}")
    running = status.returncode == 0
    if action == "started" and running:
        return False
    if not module.check_mode:
        verb = "start" if not running and action == "reloaded" else VERBS[action]
        _run(module, [service, verb])
    return True


def main():
    module = AnsibleModule(argument_spec={
        "manager": {"type": "str", "required": True, "choices": ["systemd", "command"]},
        "service": {"type": "str", "default": ""},
        "unit": {"type": "str", "default": "docker"},
        "action": {"type": "str", "required": True, "choices": sorted(VERBS)},
    }, supports_check_mode=True)
    params = module.params
    if params["manager"] == "systemd":
        changed = systemd(module, params["unit"], params["action"])
    elif not params["service"]:
        module.fail_json(msg="lcm_service_manager is command, but lcm_docker_service names no executable")
    else:
        changed = command(module, params["service"], params["action"])
    module.exit_json(changed=changed)


if __name__ == "__main__":
    main()
