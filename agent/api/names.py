"""Names the API fixes by convention, computed the way Mirantis/mcc-api computes them.

LCMClusterState objects are found by name, not by a selector: the scheduler creates ``sd-<machine>`` and the
machine's agent gets exactly that object, which is also what its RBAC (resourceNames) allows. Both sides must
therefore build the name the same way, including for long machine names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

MachineOperation = Literal["cordon-drain", "swarm-drain", "swarm-remove"]
"""The LCMClusterState types that act on one machine (``spec.arg`` names it)."""

CLUSTER_STATE_PREFIXES: Mapping[MachineOperation, str] = {
    "cordon-drain": "cd-",
    "swarm-drain": "sd-",
    "swarm-remove": "sr-",
}

DRAIN_TIMEOUT_ANNOTATION = "lcm.mirantis.com/drain-timeout-seconds"
"""On an ``sd-`` LCMClusterState: the seconds its drain may take from the object's creation (the LCMCluster's
``drainTimeoutSeconds``, or the scheduler's limit); the executor waits no longer for the node to empty."""
DEFAULT_DRAIN_TIMEOUT = 1800
"""The drain timeout of an ``sd-`` object without the annotation, and the scheduler's own default."""

NAME_LENGTH = 63
"""The longest LCMClusterState name (an RFC 1123 label, as in mcc-api)."""


def cluster_state_name(operation: MachineOperation, machine: str) -> str:
    """The LCMClusterState name for ``operation`` on ``machine``: prefix + lower-cased machine name.

    A name that would be too long loses the start of the machine name, not the end: machine names usually
    begin with the shared cluster name and end with what tells them apart.
    """
    prefix = CLUSTER_STATE_PREFIXES[operation]
    return prefix + machine.lower()[-(NAME_LENGTH - len(prefix)) :]


def agent_account(machine: str) -> str:
    """The ServiceAccount of machine ``machine``'s agent, as provisioning (``lcmctl cloud-init provision``)
    creates it; the agent renews tokens for it when its token does not name its account."""
    return f"lcm-agent-{machine}"
