#!/usr/bin/python
"""This node's swarm membership through the local engine's API: ``info``, ``init``, ``join``, ``leave``.

Idempotent: a node already where it should be reports no change. Never leaves a half-joined node behind:
a join that fails (an unreachable manager, a bad token) is cancelled with a forced leave before the module
fails, and a node found ``pending`` or ``error`` by a retry is cleaned up the same way before it joins. The
join token is read from the environment variable named by ``token_env`` (the agent's
``LCM_SECRET_JOIN_TOKEN``), so it is not even a task argument: it travels to the engine in an API request
body over the local socket, never on a command line, and the task's failures stay readable.
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.lcm_docker import client, host_of, swarm_info, wait_for

HALF_JOINED = ("pending", "error")


def _in_swarm_of(info, remote_addrs):
    """True when the node's managers include one of ``remote_addrs`` (the swarm the item means)."""
    wanted = {host_of(a) for a in remote_addrs}
    return bool(wanted & {host_of(a) for a in info["remote_managers"]})


def _cancel(api, module):
    """Abort a join still trying in the background: a forced leave of a node that never became a member."""
    try:
        api.swarm.leave(force=True)
    except Exception as exc:
        module.fail_json(msg=f"could not cancel a half-finished join: {exc}")


def init(module, api, info):
    params = module.params
    if info["state"] == "active":
        if not info["manager"]:
            managers = ", ".join(info["remote_managers"]) or "unknown"
            module.fail_json(msg=f"this node is already a worker of another swarm (managers: {managers}); "
                                 "it must leave that swarm before it can initialise one", swarm=info)
        module.exit_json(changed=False, swarm=info)
    if info["state"] in HALF_JOINED:
        module.fail_json(msg=f"this node is trying to join another swarm (state {info['state']}: "
                             f"{info['error'] or 'no error yet'}); it must leave before it can initialise one",
                         swarm=info)
    if module.check_mode:
        module.exit_json(changed=True, swarm=info)
    try:
        api.swarm.init(advertise_addr=params["advertise_addr"] or None, listen_addr=params["listen_addr"])
    except Exception as exc:
        module.fail_json(msg=f"swarm init failed: {exc}")
    finish(module, api, True)


def join(module, api, info):
    params = module.params
    remote = params["remote_addrs"]
    if not remote:
        module.fail_json(msg="no manager address to join (managerAddresses is empty)")
    if info["state"] == "active":
        if not _in_swarm_of(info, remote):
            managers = ", ".join(info["remote_managers"]) or "unknown"
            module.fail_json(msg=f"this node is already in another swarm (managers: {managers}); it must "
                                 "leave that swarm first", swarm=info)
        if info["manager"] != (params["role"] == "manager"):
            have = "manager" if info["manager"] else "worker"
            module.fail_json(msg=f"this node is already in the swarm as a {have}, not a {params['role']}; "
                                 "a manager must change its role", swarm=info)
        finish(module, api, False)
    if module.check_mode:
        module.exit_json(changed=True, swarm=info)
    if info["state"] in HALF_JOINED:  # an earlier attempt still trying in the background
        _cancel(api, module)
    token = os.environ.get(params["token_env"], "")
    if not token:
        module.fail_json(msg=f"no join token in {params['token_env']} (the agent hands it over from the "
                             "Secret named by joinTokenSecret)")
    try:
        api.swarm.join(remote_addrs=remote, join_token=token,
                       advertise_addr=params["advertise_addr"] or None, listen_addr=params["listen_addr"])
    except Exception as exc:
        reason = str(exc).replace(token, "***")
        if swarm_info(api)["state"] != "active":
            _cancel(api, module)
            module.fail_json(msg=f"could not join the swarm at {', '.join(remote)}: {reason}; the attempt was "
                                 "cancelled, the node is in no swarm")
        module.warn(f"the join call reported {reason}, but the node became a member")
    if not wait_for(lambda: swarm_info(api)["manager"] == (params["role"] == "manager"), params["timeout"]):
        module.fail_json(msg=f"joined, but the node did not become a {params['role']} in time",
                         swarm=swarm_info(api))
    finish(module, api, True)


def finish(module, api, changed):
    """Exit with the membership done; a manager also gets the ``availability`` the item asks for (control
    machines of a dedicated control plane run no workloads: ``drain``)."""
    wanted = module.params["availability"]
    info = swarm_info(api)
    if wanted and info["manager"]:
        node = api.nodes.get(info["node_id"])
        if node.attrs["Spec"]["Availability"] != wanted:
            changed = True
            if not module.check_mode:
                node.update(dict(node.attrs["Spec"], Availability=wanted))
    module.exit_json(changed=changed, swarm=info)


def leave(module, api, info):
    """Leave the swarm; a manager first demotes itself, so the remaining managers keep their quorum."""
    if info["state"] == "inactive":
        module.exit_json(changed=False, swarm=info)
    if module.check_mode:
        module.exit_json(changed=True, swarm=info)
    if info["state"] == "active" and info["manager"] and not module.params["force"]:
        managers = [n for n in api.nodes.list(filters={"role": "manager"})
                    if n.attrs["ID"] != info["node_id"]
                    and (n.attrs.get("Status") or {}).get("State") == "ready"]
        if not managers:
            module.fail_json(msg="this node is the swarm's last manager; leaving would destroy the swarm "
                                 "(set force to do so anyway)", swarm=info)
        node = api.nodes.get(info["node_id"])
        spec = dict(node.attrs["Spec"], Role="worker")
        node.update(spec)
        if not wait_for(lambda: not swarm_info(api)["manager"], module.params["timeout"]):
            module.fail_json(msg="demoting this manager before leaving did not finish in time", swarm=info)
    try:
        api.swarm.leave(force=module.params["force"] or info["state"] in HALF_JOINED)
    except Exception as exc:
        module.fail_json(msg=f"swarm leave failed: {exc}")
    module.exit_json(changed=True, swarm=swarm_info(api))


def main():
    module = AnsibleModule(
        argument_spec={
            "docker_host": {"type": "str", "default": ""},
            "state": {"type": "str", "default": "info", "choices": ["info", "init", "join", "leave"]},
            "advertise_addr": {"type": "str", "default": ""},
            "listen_addr": {"type": "str", "default": "0.0.0.0:2377"},
            "remote_addrs": {"type": "list", "elements": "str", "default": []},
            "token_env": {"type": "str", "default": "LCM_SECRET_JOIN_TOKEN"},
            "role": {"type": "str", "default": "worker", "choices": ["manager", "worker"]},
            "availability": {"type": "str", "default": "", "choices": ["", "active", "drain", "pause"]},
            "force": {"type": "bool", "default": False},
            "timeout": {"type": "float", "default": 60.0},
        },
        supports_check_mode=True,
    )
    api = client(module, module.params["docker_host"])
    info = swarm_info(api)
    actions = {"init": init, "join": join, "leave": leave}
    action = actions.get(module.params["state"])
    if action is None:
        module.exit_json(changed=False, swarm=info)
    action(module, api, info)


if __name__ == "__main__":
    main()
