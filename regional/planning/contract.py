"""Names the planner shares with playbooks, agents and operators (docs/swarm.md, docs/scheduler.md).

Each is part of a contract with another side: the release's item names and the params the playbooks read,
the finalizer and label the agents look for, the annotations an operator sets. Renaming one here breaks
that side, so they live in one place.
"""

from __future__ import annotations

from collections.abc import Mapping

SWARM_INIT = "swarm-init"
"""The item that creates the swarm; only the first control machine runs it."""
SWARM_JOIN = "swarm-join"
"""The item that joins a machine to the swarm, as a manager (control) or a worker."""
NODE_LABELS = "node-labels"
"""The item that applies the machine's engine labels from its ``labels`` param."""
SWARM_ITEMS = (SWARM_INIT, SWARM_JOIN)

PLANNED_PARAMS: Mapping[str, frozenset[str]] = {
    SWARM_INIT: frozenset({"advertiseAddress", "managerTokenSecret", "workerTokenSecret", "availability"}),
    SWARM_JOIN: frozenset(
        {"role", "managerAddresses", "joinTokenSecret", "advertiseAddress", "availability"}
    ),
    NODE_LABELS: frozenset({"labels"}),
}
"""The ``stateItemsOverwrites`` keys the planner owns, per item; every other key is the operator's."""

FINALIZER = "lcm.mirantis.com/swarm-member"
"""Holds a machine whose node is in the swarm until it has been drained, has left and has been removed."""
EXECUTOR_LABEL = "lcm.mirantis.com/executor"
"""Names the machine whose agent carries out an LCMClusterState (a swarm manager)."""
INDEX_ANNOTATION = "lcm.mirantis.com/index"
"""An integer on a machine; the lowest-indexed control machine creates the swarm."""
PAUSED_ANNOTATION = "lcm.mirantis.com/paused"
"""``"true"`` on an LCMCluster: the planner changes nothing in it until the annotation goes."""
SCHEDULER_NAME = "lcm-scheduler"
"""How the scheduler names itself in the objects it makes for others: its workload locks'
``controllerName``, the ``app.kubernetes.io/managed-by`` label of its maintenance requests."""
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
"""Marks the maintenance requests the scheduler made itself (value ``lcm-scheduler``)."""
SKIP_MAINTENANCE_ANNOTATION = "lcm.mirantis.com/skip-maintenance"
"""``"true"`` on an LCMMachine or LCMCluster: Mirantis' "evacuation is skipped": no workload lock of another
controller is waited for before the machine is disrupted."""
NODE_LABEL_PREFIX = "swarm.lcm.mirantis.com/"
"""LCMMachine labels under this prefix become the node's engine labels, the prefix stripped."""

SWARM_PORT = 2377
"""The swarm managers' cluster management port, in ``managerAddresses``."""


def manager_token_secret(cluster: str) -> str:
    """The Secret the first control machine publishes the manager join token in."""
    return f"{cluster}-swarm-manager-token"


def worker_token_secret(cluster: str) -> str:
    """The Secret the first control machine publishes the worker join token in."""
    return f"{cluster}-swarm-worker-token"
GRACEFUL_REBOOT_ANNOTATION = "lcm.mirantis.com/graceful-reboot"
"""Mirantis' own mark (``LCMMachineGracefulRebootAnnotation``): ``"true"`` on an LCMMachine while the planner
takes it through a reboot (drain, reboot, undrain); the reboot rule's state between plans."""
REBOOT_REQUESTED_ANNOTATION = "lcm.mirantis.com/reboot-requested-at"
"""When the planner wrote ``spec.rebootRequired: true`` (RFC 3339): the reboot's time limit counts from it."""
