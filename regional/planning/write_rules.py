"""The pure rules of the scheduler's writes: which object an action writes, whether the object already says
what a merge patch would write (then the write is superseded and not sent), and which writes are worth an
Event. The writer (``regional.scheduler.writing``) applies them against its caches.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent.api.models import GROUP, KAAS_GROUP
from regional.planning.actions import Action, Create, Delete, Patch

KINDS = {
    "lcmmachines": "LCMMachine", "lcmclusters": "LCMCluster", "lcmclusterstates": "LCMClusterState",
    "nodemaintenancerequests": "NodeMaintenanceRequest",
    "clustermaintenancerequests": "ClusterMaintenanceRequest",
    "nodeworkloadlocks": "NodeWorkloadLock", "clusterworkloadlocks": "ClusterWorkloadLock",
    "gracefulrebootrequests": "GracefulRebootRequest",
}
GROUPS = {"gracefulrebootrequests": KAAS_GROUP}
"""The API group of a resource the planner writes, where it is not ``lcm.mirantis.com``."""
EVENT_REASONS = {Patch: "Updated", Create: "Created", Delete: "Deleted"}


def reflects(obj: Any, patch: Any) -> bool:
    """Whether a JSON merge patch (RFC 7396) of ``obj`` would leave it unchanged."""
    if not isinstance(patch, Mapping):
        return same(obj, patch)
    if not isinstance(obj, Mapping):
        return False
    for key, value in patch.items():
        if value is None:
            if key in obj:
                return False
        elif key not in obj or not reflects(obj[key], value):
            return False
    return True


def same(a: Any, b: Any) -> bool:
    """JSON equality: unlike ``==``, ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def notable(action: Action) -> bool:
    """Worth an Event: every action with a reason, except the cluster's own status, which is its progress
    report (an Event per progress step would bury the ones an operator needs), and a machine's
    ``status.waiting`` alone, which the Waiting column shows (a fleet's first deploy holds every worker
    for the control plane: an Event each would flood the Events' budget)."""
    status = isinstance(action, Patch) and action.subresource == "status"
    cluster_status = status and action.resource == "lcmclusters"
    waiting = status and isinstance(action, Patch) and set(action.patch.get("status", {})) == {"waiting"}
    return bool(action.reason) and not cluster_status and not waiting


def group_of(resource: str) -> str:
    return GROUPS.get(resource, GROUP)


def target(action: Action) -> tuple[str, str, str, str]:
    """(resource, namespace, name, subresource) of the object an action writes."""
    if isinstance(action, Create):
        meta = action.body.get("metadata")
        name = meta.get("name") if isinstance(meta, Mapping) else None
        return action.resource, action.namespace, str(name), ""
    sub = (action.subresource or "") if isinstance(action, Patch) else ""
    return action.resource, action.namespace, action.name, sub


def digest(patch: Mapping[str, Any]) -> str:
    """A patch's identity, to tell the same patch sent again from a new one."""
    return json.dumps(patch, sort_keys=True, separators=(",", ":"))
