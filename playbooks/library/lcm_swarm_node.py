#!/usr/bin/python
"""Another swarm node, seen from a manager: drain it, make it active again, or remove it from the list.

Nodes are found by address (``Status.Addr``, what the node advertised), not by hostname: hostnames repeat,
an address is what the LCMMachine reports. ``drain`` returns only once the node runs no tasks any more
(a container still stopping counts: one that ignores SIGTERM with a long stop grace period keeps the drain
waiting, until ``timeout`` ends it with the services named);
``removed`` removes a node that has left (status ``down``), demoting it first if it was a manager, and
refuses a node that is still up unless ``force`` is set.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.lcm_docker import client, host_of, swarm_info, wait_for

ACTIVE_TASK_STATES = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"}
STOPPING_TASK_STATES = {"starting", "running"}
"""A task told to shut down whose container may still run: ``docker service ps`` shows it Running."""


def _nodes_at(api, address):
    host = host_of(address)
    return [n for n in api.nodes.list() if (n.attrs.get("Status") or {}).get("Addr") == host]


def _describe(node):
    attrs = node.attrs
    return {"id": attrs["ID"], "hostname": attrs["Description"]["Hostname"],
            "role": attrs["Spec"]["Role"], "availability": attrs["Spec"]["Availability"],
            "state": attrs["Status"]["State"]}


def _running_tasks(api, node_id):
    """Tasks meant to run on the node, and those whose container still runs while it stops (a drain is
    done only when the node's workloads are gone, not merely told to go)."""
    tasks = api.api.tasks(filters={"node": node_id})
    return sorted(t["ID"] for t in tasks if t["Status"]["State"] in STOPPING_TASK_STATES
                  or (t["Status"]["State"] in ACTIVE_TASK_STATES and t.get("DesiredState") == "running"))


def _services_of(api, task_ids):
    """``service NAME (N tasks)`` for the services of these tasks, by name: what an operator must move."""
    counts = {}
    for task_id in task_ids:
        service_id = api.api.inspect_task(task_id).get("ServiceID", "")
        counts[service_id] = counts.get(service_id, 0) + 1
    named = []
    for service_id, count in counts.items():
        try:
            name = api.api.inspect_service(service_id)["Spec"]["Name"]
        except Exception:  # gone meanwhile: its id is all there is
            name = service_id
        named.append(f"service {name} ({count} task{'s' if count > 1 else ''})")
    return sorted(named)


def availability(module, api, target):
    nodes = [n for n in _nodes_at(api, module.params["address"]) if n.attrs["Status"]["State"] != "down"]
    if not nodes:
        module.fail_json(msg=f"no swarm node with address {module.params['address']} is up")
    changed = False
    for node in nodes:
        if node.attrs["Spec"]["Availability"] != target:
            changed = True
            if not module.check_mode:
                node.update(dict(node.attrs["Spec"], Availability=target))
    if target == "drain" and not module.check_mode:
        timeout = module.params["timeout"]
        left = wait_for(lambda: not any(_running_tasks(api, n.attrs["ID"]) for n in nodes) or None, timeout)
        if not left:
            busy = {n.attrs["ID"]: _running_tasks(api, n.attrs["ID"]) for n in nodes}
            services = ", ".join(_services_of(api, [t for tasks in busy.values() for t in tasks]))
            module.fail_json(msg=f"node {module.params['address']} still runs tasks of {services} after "
                                 f"{timeout:.0f} s of draining; it stays drained (availability drain)",
                             tasks=busy)
    for node in nodes:
        node.reload()
    module.exit_json(changed=changed, nodes=[_describe(n) for n in nodes])


def removed(module, api):
    address = module.params["address"]
    nodes = _nodes_at(api, address)
    if not nodes:
        module.exit_json(changed=False, nodes=[])
    me = swarm_info(api)["node_id"]
    if any(n.attrs["ID"] == me for n in nodes):
        module.fail_json(msg=f"{address} is this manager itself; another manager must remove it")
    if not module.params["force"]:
        timeout = module.params["timeout"]

        def all_down():
            for n in nodes:
                n.reload()
            return all(n.attrs["Status"]["State"] == "down" for n in nodes) or None

        if not wait_for(all_down, timeout):
            up = [_describe(n) for n in nodes if n.attrs["Status"]["State"] != "down"]
            module.fail_json(msg=f"node {address} is still up after {timeout:.0f} s; it must leave the swarm "
                                 "before it is removed (or set force)", nodes=up)
    if module.check_mode:
        module.exit_json(changed=True, nodes=[_describe(n) for n in nodes])
    for node in nodes:
        if node.attrs["Spec"]["Role"] == "manager":
            node.update(dict(node.attrs["Spec"], Role="worker"))
        try:
            node.remove(force=module.params["force"])
        except Exception as exc:
            module.fail_json(msg=f"could not remove node {node.attrs['ID']} ({address}): {exc}")
    module.exit_json(changed=True, nodes=[])


def main():
    module = AnsibleModule(
        argument_spec={
            "docker_host": {"type": "str", "default": ""},
            "address": {"type": "str", "required": True},
            "state": {"type": "str", "required": True, "choices": ["drain", "active", "removed"]},
            "force": {"type": "bool", "default": False},
            "timeout": {"type": "float", "default": 300.0},
        },
        supports_check_mode=True,
    )
    api = client(module, module.params["docker_host"])
    if not swarm_info(api)["manager"]:
        module.fail_json(msg="this node is not a swarm manager; drain and remove run on a manager")
    if module.params["state"] == "removed":
        removed(module, api)
    availability(module, api, module.params["state"])


if __name__ == "__main__":
    main()
